"""Every error the queue raises; catch ``QueueError`` for all of them."""

from __future__ import annotations

__all__ = [
    "BatchError",
    "FunctionNotAllowedError",
    "InvalidJobError",
    "JobSoftTimeoutError",
    "JobValidationError",
    "PayloadTooLargeError",
    "QueueConfigurationError",
    "QueueError",
    "QueueUnavailableError",
    "UnencodableArgumentError",
]


class QueueError(Exception):
    """Base class of the errors raised by ``fast_app.core.queue``."""


class JobValidationError(QueueError, TypeError):
    """``queue()`` was called with something that cannot become a job."""


class UnencodableArgumentError(JobValidationError):
    """An argument (or context value) cannot be encoded by the job codec."""


class PayloadTooLargeError(JobValidationError, ValueError):
    """The encoded job is larger than the configured limit."""


class QueueConfigurationError(QueueError, ValueError):
    """A queue setting is missing or invalid."""


class InvalidJobError(QueueError):
    """A message is not a job this version can run (bad envelope, arguments that do not bind)."""


class FunctionNotAllowedError(InvalidJobError):
    """A job names a function that cannot be imported or is outside the allow-list."""


class JobSoftTimeoutError(QueueError, TimeoutError):
    """A job ran past its soft timeout and was cancelled (or, in a thread, abandoned)."""

    def __init__(self, message: str, *, still_running: bool = False) -> None:
        super().__init__(message)
        #: The job could not be stopped (a thread, or a task ignoring cancellation).
        self.still_running = still_running


class QueueUnavailableError(QueueError):
    """The broker could not be reached, or did not confirm a job, within the time allowed."""


class BatchError(QueueError):
    """Some jobs of a ``queue_many()`` batch were not enqueued (``BatchResult.raise_failures``)."""

    def __init__(self, failures: list[tuple[int, QueueError]], total: int) -> None:
        shown = "; ".join(f"[{index}] {error}" for index, error in failures[:3])
        more = f"; and {len(failures) - 3} more" if len(failures) > 3 else ""
        super().__init__(f"{len(failures)} of {total} jobs were not enqueued: {shown}{more}")
        #: ``(position in the batch, error)`` of each job that was not enqueued.
        self.failures = failures
