"""FastApp's queue: defer a function call as a job.

::

    from fast_app.core.queue import queue

    await queue(send_welcome_email, user_id="66f2d3...", __soft_timeout_s=300)
    await queue_many(job_call(send_welcome_email, user_id=u) for u in user_ids)

``QUEUE_DRIVER=sync`` (the default) runs the job at once, in-process.

This is the application's API. What a worker needs besides (the job format, running a
job, retry decisions) is in ``fast_app.core.queue.worker_side``; hooks for cross-cutting
work (``Hook``, ``add_hook``) in ``fast_app.core.queue.hooks``.
"""

from .api import JobPortabilityWarning, close, queue
from .bulk import BatchResult, JobCall, job_call, queue_many
from .errors import (
    BatchError,
    FunctionNotAllowedError,
    InvalidJobError,
    JobSoftTimeoutError,
    JobValidationError,
    PayloadTooLargeError,
    QueueConfigurationError,
    QueueError,
    QueueUnavailableError,
    UnencodableArgumentError,
)
from .handle import Job, JobError, JobOutcome, JobStatus
from .running import RunningJob, current_job
from .settings import QueueSettings, configure, get_settings, override_settings, reset_settings

__all__ = [
    "BatchError",
    "BatchResult",
    "FunctionNotAllowedError",
    "InvalidJobError",
    "Job",
    "JobCall",
    "JobError",
    "JobOutcome",
    "JobPortabilityWarning",
    "JobSoftTimeoutError",
    "JobStatus",
    "JobValidationError",
    "PayloadTooLargeError",
    "QueueConfigurationError",
    "QueueError",
    "QueueSettings",
    "QueueUnavailableError",
    "RunningJob",
    "UnencodableArgumentError",
    "close",
    "configure",
    "current_job",
    "get_settings",
    "job_call",
    "override_settings",
    "queue",
    "queue_many",
    "reset_settings",
]
