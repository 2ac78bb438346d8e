"""``queue()``: defer a function call as a job."""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable
from typing import Any

from fast_app.core.context import context

from .drivers import Submission, driver_for
from .drivers.base import QueueDriver
from .envelope import (
    FORMAT_VERSION,
    MAX_CONTEXT_BYTES,
    JobEnvelope,
    encode_envelope,
    encode_value,
    new_job_id,
)
from .errors import JobValidationError, PayloadTooLargeError, UnencodableArgumentError
from .functions import FunctionSpec, describe_function
from .handle import Job
from .hooks import Enqueueing, HookChain, current_hooks
from .options import split_options
from .queues import QueueRoutes
from .settings import QueueSettings, get_settings
from .telemetry import SYSTEM_IN_PROCESS, SYSTEM_RABBITMQ

__all__ = ["JobPortabilityWarning", "close", "prepare", "queue"]


_NO_ROUTES = QueueRoutes()


class JobPortabilityWarning(UserWarning):
    """A job runs in-process (sync driver) but workers could not import its function."""


async def queue(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Job:
    """Run ``function(*args, **kwargs)`` as a job, on the driver ``QUEUE_DRIVER`` selects.

    Special keyword arguments set job options and are not passed to the function:
    ``__soft_timeout_s`` (warn and cancel the job's task), ``__hard_timeout_s`` (end
    the worker running it; must be greater than the soft timeout), ``__delay_s`` (start
    no earlier than this many seconds later) and ``__retries`` (run a job that raised
    again, up to this many times, with exponential backoff). Other names starting with
    ``__`` are reserved. The current context's snapshot travels with the job.

    Returns:
        A handle with the job id; with the ``sync`` driver, the job has run and the handle
        holds its outcome.

    Raises:
        JobValidationError: the call cannot become a job (see the message for why).
        QueueConfigurationError: the queue settings are invalid.
    """
    settings = get_settings()
    driver = driver_for(settings)
    hooks = current_hooks()
    if hooks.hooks:
        return await _queue_with_hooks(hooks, settings, driver, function, args, kwargs)
    # No hook to call (no OpenTelemetry SDK, none added): the common case pays for none.
    return await driver.submit(_prepare_call(settings, driver, function, args, kwargs))


async def _queue_with_hooks(
    hooks: HookChain,
    settings: QueueSettings,
    driver: QueueDriver,
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Job:
    """``queue()`` with its hooks called around validating and submitting the job."""
    system = SYSTEM_IN_PROCESS if driver.runs_in_process else SYSTEM_RABBITMQ
    call = Enqueueing(settings, settings.name, system)
    hooks.before_enqueue(call)
    try:
        submission = _prepare_call(settings, driver, function, args, kwargs, stacklevel=5)
        call.envelope = submission.envelope
        call.queue = submission.queue or settings.name
        # The hooks' headers (trace context) travel with the job to its run.
        if (headers := hooks.job_prepared(call)) is not None:
            submission = dataclasses.replace(submission, headers=headers)
        job = await driver.submit(submission)
    except BaseException as error:
        hooks.after_enqueue(call, None, error)
        raise
    hooks.after_enqueue(call, job, None)
    return job


def _prepare_call(
    settings: QueueSettings,
    driver: QueueDriver,
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    stacklevel: int = 4,
) -> Submission:
    """``prepare`` with the settings' limits; ``stacklevel`` points a warning at the line
    that called ``queue()``."""
    return prepare(
        function,
        args,
        kwargs,
        max_payload_bytes=settings.max_payload_bytes,
        allow_unportable=driver.runs_in_process and not settings.strict,
        routes=settings.routes,
        stacklevel=stacklevel,
    )


async def close() -> None:
    """Close the current driver's broker connection (call it when your app shuts down).

    Safe to call at any time: the next ``queue()`` opens a new connection if it needs one.
    """
    await driver_for(get_settings()).close()


def prepare(
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    max_payload_bytes: int,
    allow_unportable: bool,
    routes: QueueRoutes = _NO_ROUTES,
    stacklevel: int = 3,
    snapshot: dict[str, Any] | None = None,
) -> Submission:
    """Validate a call and encode it as a job, the way ``queue()`` does before any driver.

    The job's queue is the one ``__queue`` names, else the one ``routes`` give its
    function, else ``None``: the driver's default (``QUEUE_NAME``).
    ``stacklevel`` points the portability warning at the caller's line (as ``warnings``).
    ``snapshot``: the context to send with the job (``queue_many`` takes it once for the
    batch); ``None``: the current context's.

    Raises:
        JobValidationError: naming the problem.
    """
    spec = describe_function(function)
    if spec.portability_problem is not None:
        message = (
            f"{spec.function.__qualname__} {spec.portability_problem}: "
            "workers import job functions by their dotted path, so define it at the top "
            "level of an importable module"
        )
        if not allow_unportable:
            raise JobValidationError(message)
        warnings.warn(
            message + " (it runs here only because the sync driver runs jobs in-process; "
            "QUEUE_STRICT=1 makes this an error)",
            JobPortabilityWarning,
            stacklevel=stacklevel,
        )
    function_kwargs, options, named_queue = split_options(kwargs)
    spec.check_arguments(args, function_kwargs)
    if snapshot is None:
        snapshot = context.snapshot()
    enqueued_at = time.time()
    envelope = JobEnvelope(
        format=FORMAT_VERSION,
        id=new_job_id(),
        function=spec.path,
        args=list(args),
        kwargs=function_kwargs,
        context=snapshot,
        options=options,
        enqueued_at=enqueued_at,
        not_before=None if options.delay_s is None else enqueued_at + options.delay_s,
    )
    try:
        body = encode_envelope(envelope)
    except (TypeError, ValueError, OverflowError) as error:
        raise _unencodable(spec, args, function_kwargs, error) from None
    # Only a large job can carry a large context: the common case costs nothing.
    if len(body) > MAX_CONTEXT_BYTES:
        context_bytes = len(encode_value(snapshot))
        if context_bytes > MAX_CONTEXT_BYTES:
            raise PayloadTooLargeError(
                f"the context of job {spec.path} encodes to {context_bytes} bytes, over "
                f"the limit of {MAX_CONTEXT_BYTES}: keep ids, not data, in the context"
            )
    if len(body) > max_payload_bytes:
        raise PayloadTooLargeError(
            f"job {spec.path} encodes to {len(body)} bytes, over the limit of "
            f"{max_payload_bytes} (QUEUE_MAX_PAYLOAD_BYTES); pass a reference (an id, a "
            "URL) instead of the data itself"
        )
    queue_name = named_queue if named_queue is not None else routes.queue_of(spec.path)
    return Submission(spec, envelope, body, queue=queue_name)


def _unencodable(
    spec: FunctionSpec,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    error: Exception,
) -> UnencodableArgumentError:
    """Name the argument that the codec refused (slow path, only on error)."""
    for name, value in spec.name_arguments(args, kwargs).items():
        try:
            encode_value(value)
        except (TypeError, ValueError, OverflowError) as value_error:
            return UnencodableArgumentError(
                f"argument {name!r} of {spec.path} is {_a(type(value).__qualname__)}, which "
                f"the job codec cannot encode ({value_error}); pass JSON-like data, "
                "dataclasses or pydantic models"
            )
    return UnencodableArgumentError(f"a job of {spec.path} cannot be encoded: {error}")


def _a(noun: str) -> str:
    """``noun`` with its indefinite article: ``an object``, ``a set``."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"
