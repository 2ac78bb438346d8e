"""What a process that runs jobs needs, apart from what an application uses.

An application needs ``fast_app.core.queue`` only (``queue()``, handles, errors,
settings, ``current_job``). A worker, a driver or a tool that reads jobs off the broker
needs the job format and the code that runs a job; those names are here, so that the
application API stays small:

- the job format: ``JobEnvelope``, ``JobOptions``, ``FORMAT_VERSION``,
  ``encode_envelope``, ``decode_envelope``;
- job functions: ``describe_function``, ``FunctionSpec``;
- validating a call as ``queue()`` does, without a driver: ``prepare``;
- running a decoded job: ``run_job``, ``describe_exception``;
- what to do after a run: ``decide_after_run``, ``decide_after_failure`` and their
  answers ``Done``, ``Retry``, ``Bury``.

The AMQP side (publisher, topology, headers) is in ``fast_app.core.queue.amqp``, the
hook interface in ``fast_app.core.queue.hooks``.
"""

from .api import prepare
from .envelope import FORMAT_VERSION, JobEnvelope, JobOptions, decode_envelope, encode_envelope
from .execution import describe_exception, run_job
from .functions import FunctionSpec, describe_function
from .retry import Bury, Done, Retry, RetryDecision, decide_after_failure, decide_after_run

__all__ = [
    "FORMAT_VERSION",
    "Bury",
    "Done",
    "FunctionSpec",
    "JobEnvelope",
    "JobOptions",
    "Retry",
    "RetryDecision",
    "decide_after_failure",
    "decide_after_run",
    "decode_envelope",
    "describe_exception",
    "describe_function",
    "encode_envelope",
    "prepare",
    "run_job",
]
