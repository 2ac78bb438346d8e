"""A worker killed by its supervisor at a job's hard timeout, recorded on the job's trace.

The killed worker cannot end its ``process`` span (it is SIGKILLed), so the supervisor
records the kill: a short ``hard_timeout <queue>`` span, child of that process span,
whose context the worker's heartbeats carry (``traceparent`` of each job in flight).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode
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

__all__ = ["KILL_REASON", "SCOPE", "record_hard_timeout_kill"]

SCOPE = "fast_app.farm"
KILL_REASON = "fast_app.kill.reason"


def record_hard_timeout_kill(
    queue: str, job: Mapping[str, Any], worker_id: str, reason: str
) -> None:
    """Record that ``worker_id`` is killed because ``job`` (a heartbeat entry) overran.

    Does nothing without a configured tracer provider or a ``traceparent`` in ``job``.
    """
    provider = tracer_provider()
    traceparent = job.get("traceparent")
    if provider is None or not traceparent:
        return
    attributes: dict[str, AttributeValue] = {
        MESSAGING_DESTINATION: queue,
        MESSAGING_MESSAGE_ID: str(job.get("id")),
        JOB_FUNCTION: str(job.get("function")),
        WORKER_ID: worker_id,
        ERROR_TYPE: "hard_timeout",
        KILL_REASON: reason,
    }
    attempt = job.get("attempt")
    if type(attempt) is int:
        attributes[JOB_ATTEMPT] = attempt
    span = provider.get_tracer(SCOPE).start_span(
        f"hard_timeout {queue}",
        context=context_from_traceparent(traceparent),
        kind=SpanKind.INTERNAL,
        attributes=attributes,
    )
    span.add_event(HARD_TIMEOUT_EVENT, {KILL_REASON: reason})
    span.set_status(Status(StatusCode.ERROR, reason))
    span.end()
