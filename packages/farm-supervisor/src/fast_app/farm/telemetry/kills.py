"""A worker killed by its supervisor at a job's hard timeout, recorded on the job's trace.

The killed worker cannot end its ``process`` span (it is SIGKILLed, and that span is
lost with it), so the supervisor records the kill: a short ``hard_timeout <queue>``
span on the job's trace, child of the span that enqueued the job and linked to the lost
run's span. Worker heartbeats carry both contexts for each job in flight
(``parent_traceparent`` and ``traceparent``).
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from fast_app.core.queue.telemetry import context_from_traceparent, tracer_provider
from fast_app.core.queue.telemetry.tracing import (
    ERROR_TYPE,
    HARD_TIMEOUT_EVENT,
    JOB_ATTEMPT,
    JOB_FUNCTION,
    MESSAGING_DESTINATION,
    MESSAGING_MESSAGE_ID,
    WORKER_ID,
)
from fast_app.farm.messages import InFlightEntry

__all__ = ["KILL_REASON", "SCOPE", "record_hard_timeout_kill"]

SCOPE = "fast_app.farm"
KILL_REASON = "fast_app.kill.reason"


def record_hard_timeout_kill(queue: str, job: InFlightEntry, worker_id: str, reason: str) -> None:
    """Record that ``worker_id`` is killed because ``job`` (a heartbeat entry) overran.

    Does nothing without a configured tracer provider or a trace context in ``job``.
    Without the producer's context (an older worker), the span is the lost run's child.
    """
    provider = tracer_provider()
    traceparent = job.traceparent
    parent_traceparent = job.parent_traceparent
    if provider is None or not (traceparent or parent_traceparent):
        return
    run = trace.get_current_span(context_from_traceparent(traceparent)).get_span_context()
    if parent_traceparent:
        parent = context_from_traceparent(parent_traceparent)
        links = [Link(run)] if run.is_valid else []
    else:
        parent, links = context_from_traceparent(traceparent), []
    attributes: dict[str, AttributeValue] = {
        MESSAGING_DESTINATION: queue,
        MESSAGING_MESSAGE_ID: job.id,
        JOB_FUNCTION: job.function,
        WORKER_ID: worker_id,
        ERROR_TYPE: "hard_timeout",
        KILL_REASON: reason,
    }
    attributes[JOB_ATTEMPT] = job.attempt
    span = provider.get_tracer(SCOPE).start_span(
        f"hard_timeout {queue}",
        context=parent,
        kind=SpanKind.INTERNAL,
        attributes=attributes,
        links=links,
    )
    span.add_event(HARD_TIMEOUT_EVENT, {KILL_REASON: reason})
    span.set_status(Status(StatusCode.ERROR, reason))
    span.end()
