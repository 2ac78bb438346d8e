"""What ``queue()`` returns: a handle on the job, and its outcome where the driver knows it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Job", "JobError", "JobOutcome", "JobStatus"]


class JobStatus(StrEnum):
    """How a run of a job ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SOFT_TIMEOUT = "soft_timeout"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class JobError:
    """Why a run failed, in a form that can be logged, stored and sent.

    Attributes:
        type: qualified name of the exception class (or of the failure, e.g. a timeout).
        message: the exception's message.
        traceback: the formatted traceback, when there is one.
    """

    type: str
    message: str
    traceback: str | None = None


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """How one run of a job ended.

    Attributes:
        status: succeeded, failed, soft_timeout or invalid.
        duration_s: wall time of the run, in seconds.
        error: what went wrong, unless it succeeded.
        exception: the exception object itself, in the process that ran the job.
        still_running: after a soft timeout, the job could not be stopped (a function in
            a thread, or a task that ignores cancellation) and may still be running.
    """

    status: JobStatus
    duration_s: float
    error: JobError | None = None
    exception: BaseException | None = None
    still_running: bool = False

    @property
    def succeeded(self) -> bool:
        """Whether the job ran to completion without raising."""
        return self.status is JobStatus.SUCCEEDED


@dataclass(frozen=True, slots=True)
class Job:
    """Handle on an enqueued job.

    Attributes:
        id: the job id (UUID hex), the same across retries and redeliveries.
        function: dotted path of the job function.
        driver: name of the driver that took the job.
        outcome: how it ended, for drivers that run it before returning (``sync``).
        queue: the queue it went to (``QUEUE_NAME``, or the one named or routed).
    """

    id: str
    function: str
    driver: str
    outcome: JobOutcome | None = None
    queue: str | None = None
