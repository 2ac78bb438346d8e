"""FastApp's queue: defer a function call as a job.

::

    from fast_app.core.queue import queue

    await queue(send_welcome_email, user_id="66f2d3...", __soft_timeout_s=300)

``QUEUE_DRIVER=sync`` (the default) runs the job at once, in-process.
"""

from .api import JobPortabilityWarning, close, prepare, queue
from .envelope import FORMAT_VERSION, JobEnvelope, JobOptions, decode_envelope, encode_envelope
from .errors import (
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
from .functions import FunctionSpec, describe_function
from .handle import Job, JobError, JobOutcome, JobStatus
from .running import RunningJob, current_job
from .settings import QueueSettings, configure, get_settings, override_settings, reset_settings

__all__ = [
    "FORMAT_VERSION",
    "FunctionNotAllowedError",
    "FunctionSpec",
    "InvalidJobError",
    "Job",
    "JobEnvelope",
    "JobError",
    "JobOptions",
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
    "decode_envelope",
    "describe_function",
    "encode_envelope",
    "get_settings",
    "override_settings",
    "prepare",
    "queue",
    "reset_settings",
]
