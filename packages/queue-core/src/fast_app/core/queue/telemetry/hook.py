"""Telemetry as a hook: spans and metrics along each enqueue and each delivery.

``fast_app.core.queue.hooks`` puts ``TELEMETRY`` first in the chain while an SDK is
configured. Its state per call is the ``EnqueueObservation`` or ``JobObservation`` of
``lifecycle``, kept in the call's ``hook_state``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fast_app.core.queue.hooks.base import Enqueueing, Hook, JobRun

from ._state import queue_metrics
from .lifecycle import EnqueueObservation, JobObservation, observe_enqueue, observe_job
from .metrics import FailureReason

if TYPE_CHECKING:
    from fast_app.core.queue.handle import Job, JobOutcome

__all__ = ["TELEMETRY", "TelemetryHook", "job_traceparents"]


class TelemetryHook(Hook):
    """Records a ``publish`` span per enqueue and a ``process`` span per delivery, and
    the queue's metrics (see ``fast_app.core.queue.telemetry``)."""

    def before_enqueue(self, call: Enqueueing) -> None:
        observation = observe_enqueue(call.queue, call.system, call.settings.baggage_keys)
        call.hook_state[self] = observation.__enter__()

    def job_prepared(self, call: Enqueueing, headers: dict[str, str]) -> None:
        observation: EnqueueObservation | None = call.hook_state.get(self)
        if observation is not None and call.envelope is not None:
            # In a batch, the jobs' spans are siblings: none is made current.
            published = observation.published(call.envelope, call.queue, attach=not call.in_batch)
            headers.update(published or {})

    def after_enqueue(self, call: Enqueueing, job: Job | None, error: BaseException | None) -> None:
        observation: EnqueueObservation | None = call.hook_state.pop(self, None)
        if observation is not None:
            observation.__exit__(None if error is None else type(error), error, None)

    def delivered(self, run: JobRun) -> None:
        envelope = run.envelope
        observation = observe_job(
            queue=run.queue,
            system=run.system,
            envelope=envelope,
            message_id=run.message_id,
            headers=run.headers,
            link_after_s=run.settings.trace_link_after_s,
            delivery_count=run.delivery_count,
            worker_id=run.worker_id,
            due_at=run.due_at,
        )
        run.hook_state[self] = observation
        run.trace_context = observation.trace_context

    def refused(self, run: JobRun, reason: str, description: str) -> None:
        if (observation := _job(self, run)) is not None:
            observation.rejected(FailureReason.INVALID, f"{reason}: {description}")

    def before_run(self, run: JobRun) -> None:
        if (observation := _job(self, run)) is not None:
            observation.started()

    def after_run(self, run: JobRun, outcome: JobOutcome) -> None:
        if (observation := _job(self, run)) is not None:
            soft = run.envelope.options.soft_timeout_s if run.envelope is not None else None
            observation.finished(outcome, soft)

    def hard_timeout(self, run: JobRun, description: str) -> None:
        if (observation := _job(self, run)) is not None:
            observation.failed(FailureReason.HARD_TIMEOUT, description)

    def consumer_timeout(self, run: JobRun, description: str) -> None:
        if (observation := _job(self, run)) is not None:
            observation.failed(FailureReason.CONSUMER_TIMEOUT, description)

    def before_retry(self, run: JobRun, headers: dict[str, str]) -> None:
        if (observation := _job(self, run)) is not None:
            headers.update(observation.retry_headers() or {})

    def retried(self, run: JobRun) -> None:
        if (observation := _job(self, run)) is not None:
            observation.retried()

    def dead_lettered(self, run: JobRun, reason: str) -> None:
        if (observation := _job(self, run)) is not None:
            observation.dead_lettered(reason)
        elif (metrics := queue_metrics()) is not None:
            # A delivery that failed before it was observed (an unexpected error).
            metrics.dead_lettered(run.queue, reason)

    def cancelled(self, run: JobRun) -> None:
        if (observation := _job(self, run)) is not None:
            observation.cancelled()

    def settled(self, run: JobRun) -> None:
        if (observation := _job(self, run)) is not None:
            observation.end()


def _job(hook: TelemetryHook, run: JobRun) -> JobObservation | None:
    observation: JobObservation | None = run.hook_state.get(hook)
    return observation


TELEMETRY = TelemetryHook()


def job_traceparents(run: JobRun) -> tuple[str | None, str | None]:
    """The W3C ``traceparent`` of the run's ``process`` span and of the span that
    enqueued the job (each ``None`` when not traced); heartbeats carry both, so that a
    supervisor killing the worker can record it on the job's trace."""
    observation = _job(TELEMETRY, run)
    if observation is None:
        return None, None
    return observation.traceparent, observation.producer_traceparent
