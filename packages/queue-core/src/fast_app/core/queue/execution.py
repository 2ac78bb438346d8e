"""Running one decoded job: the code shared by the sync driver and the workers.

The job runs in a fresh ``contextvars.Context`` holding only its snapshot, so nothing of
the caller's (or another job's) context is visible to it, in-process or on a worker.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
import traceback
import types
from collections.abc import Coroutine, Generator
from concurrent.futures import Executor
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context as TraceContext

from fast_app.core.context import context

from .envelope import JobEnvelope
from .errors import InvalidJobError, JobSoftTimeoutError
from .functions import FunctionSpec
from .handle import JobError, JobOutcome, JobStatus
from .running import running_job

__all__ = ["describe_exception", "run_job"]

logger = logging.getLogger("fast_app.queue")


def describe_exception(error: BaseException) -> JobError:
    """A ``JobError`` for an exception, with its formatted traceback."""
    kind = type(error)
    return JobError(
        type=f"{kind.__module__}.{kind.__qualname__}",
        message=str(error),
        traceback="".join(traceback.format_exception(error)),
    )


async def run_job(
    spec: FunctionSpec,
    envelope: JobEnvelope,
    *,
    executor: Executor | None = None,
    cancel_grace_s: float = 1.0,
    inline: bool = False,
    trace_context: TraceContext | None = None,
    queue: str | None = None,
) -> JobOutcome:
    """Run ``envelope``'s call of ``spec.function`` and report how it ended; never raises.

    ``async def`` functions run in a task of their own on the current loop; plain
    functions run in ``executor`` (the loop's default one when ``None``). Past the soft
    timeout the task is cancelled; a function in a thread cannot be cancelled and keeps
    running, only the wait for it ends.

    Args:
        spec: the job's function.
        envelope: the decoded job.
        executor: thread pool for plain functions.
        cancel_grace_s: how long to wait for a cancelled task to finish.
        inline: run an ``async def`` job without a soft timeout inside the caller's task
            (still in its own context) instead of a task of its own, saving the ~10 µs
            round trip through the event loop that a task costs. For callers that await
            one job at a time, like the sync driver.
        trace_context: the OpenTelemetry context the job's code runs in (its process
            span), so that spans it makes are that span's children.
        queue: the queue the job was delivered from (``current_job().queue``).
    """
    started = time.perf_counter()
    try:
        args, kwargs = spec.restore(envelope.args, envelope.kwargs)
    except InvalidJobError as error:
        return JobOutcome(
            JobStatus.INVALID, time.perf_counter() - started, describe_exception(error), error
        )
    job_context = contextvars.Context()
    job_context.run(_enter_job, envelope, queue, trace_context)
    soft_timeout = envelope.options.soft_timeout_s
    try:
        if spec.is_async:
            if inline and soft_timeout is None:
                await _step_in_context(spec.function(*args, **kwargs), job_context)
                return JobOutcome(JobStatus.SUCCEEDED, time.perf_counter() - started)
            loop = asyncio.get_running_loop()
            task = loop.create_task(spec.function(*args, **kwargs), context=job_context)
            if soft_timeout is None:
                await task
            else:
                await _await_with_soft_timeout(task, envelope, soft_timeout, cancel_grace_s)
        else:
            call = functools.partial(job_context.run, spec.function, *args, **kwargs)
            future = asyncio.get_running_loop().run_in_executor(executor, call)
            if soft_timeout is None:
                await future
            else:
                await _await_with_soft_timeout(future, envelope, soft_timeout, 0.0)
    except JobSoftTimeoutError as timeout:
        return JobOutcome(
            JobStatus.SOFT_TIMEOUT,
            time.perf_counter() - started,
            JobError("soft_timeout", str(timeout)),
            timeout,
            still_running=timeout.still_running,
        )
    except Exception as error:
        return JobOutcome(
            JobStatus.FAILED, time.perf_counter() - started, describe_exception(error), error
        )
    return JobOutcome(JobStatus.SUCCEEDED, time.perf_counter() - started)


def _enter_job(
    envelope: JobEnvelope, queue: str | None, trace_context: TraceContext | None
) -> None:
    """Set what the job's code sees, inside the job's own ``contextvars.Context``."""
    context.install(envelope.context)
    running_job.set((envelope, queue))
    if trace_context is not None:
        # Never detached: the job's whole contextvars.Context is dropped when it ends.
        otel_context.attach(trace_context)


@types.coroutine
def _step_in_context(
    coroutine: Coroutine[Any, Any, Any], job_context: contextvars.Context
) -> Generator[Any, Any, Any]:
    """Drive ``coroutine`` from the current task, each step inside ``job_context``.

    What the coroutine yields (futures it waits on) passes through to the enclosing task
    unchanged, and what the task sends or throws back (results, cancellation) passes
    back in, so it behaves as ``await coroutine`` would, but sees only the job's context.
    """
    run = job_context.run
    sent: Any = None
    thrown: BaseException | None = None
    while True:
        try:
            step = (coroutine.send, sent) if thrown is None else (coroutine.throw, thrown)
            yielded = run(*step)
        except StopIteration as stop:
            return stop.value
        try:
            sent = yield yielded
            thrown = None
        except GeneratorExit:
            run(coroutine.close)
            raise
        except BaseException as error:
            sent = None
            thrown = error


async def _await_with_soft_timeout(
    running: asyncio.Future[Any],
    envelope: JobEnvelope,
    soft_timeout: float,
    cancel_grace_s: float,
) -> None:
    try:
        done, _ = await asyncio.wait({running}, timeout=soft_timeout)
    except asyncio.CancelledError:
        running.cancel()
        raise
    if done:
        running.result()
        return
    in_thread = not isinstance(running, asyncio.Task)
    logger.warning(
        "job %s (%s) passed its soft timeout of %gs: %s",
        envelope.id,
        envelope.function,
        soft_timeout,
        "no longer waiting for it; its thread cannot be cancelled and keeps running"
        if in_thread
        else "cancelling it",
        extra={"job_id": envelope.id, "job_function": envelope.function},
    )
    running.cancel()
    if not in_thread:
        # A job may catch CancelledError; wait a little, never without a bound.
        await asyncio.wait({running}, timeout=cancel_grace_s)
        if running.done() and not running.cancelled():
            running.exception()  # retrieved, so asyncio does not report it as lost
    raise JobSoftTimeoutError(
        f"job {envelope.id} ({envelope.function}) passed its soft timeout of {soft_timeout:g}s",
        still_running=in_thread or not running.done(),
    )
