"""The queue's spans: ``publish <queue>`` (PRODUCER) and ``process <queue>`` (CONSUMER).

Names and attributes follow the OpenTelemetry messaging semantic conventions; what only
a job has (its function, attempt, queue wait) is under ``fast_app.job.*``.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from fast_app.core.queue.envelope import JobEnvelope

__all__ = [
    "ERROR_TYPE",
    "HARD_TIMEOUT_EVENT",
    "JOB_ATTEMPT",
    "JOB_DELIVERY_COUNT",
    "JOB_FUNCTION",
    "JOB_QUEUE_WAIT",
    "MESSAGING_DESTINATION",
    "MESSAGING_MESSAGE_ID",
    "MESSAGING_OPERATION_NAME",
    "MESSAGING_OPERATION_TYPE",
    "MESSAGING_SYSTEM",
    "SOFT_TIMEOUT_EVENT",
    "SYSTEM_IN_PROCESS",
    "SYSTEM_RABBITMQ",
    "WORKER_ID",
    "mark_failed",
    "start_process_span",
    "start_publish_span",
    "start_refused_publish_span",
]

MESSAGING_SYSTEM = "messaging.system"
MESSAGING_OPERATION_NAME = "messaging.operation.name"
MESSAGING_OPERATION_TYPE = "messaging.operation.type"
MESSAGING_DESTINATION = "messaging.destination.name"
MESSAGING_MESSAGE_ID = "messaging.message.id"
JOB_FUNCTION = "fast_app.job.function"
JOB_ATTEMPT = "fast_app.job.attempt"
JOB_DELAY = "fast_app.job.delay_s"
JOB_DELIVERY_COUNT = "fast_app.job.delivery_count"
JOB_QUEUE_WAIT = "fast_app.job.queue_wait_s"
WORKER_ID = "fast_app.worker.id"
ERROR_TYPE = "error.type"

SOFT_TIMEOUT_EVENT = "fast_app.job.soft_timeout"
HARD_TIMEOUT_EVENT = "fast_app.job.hard_timeout"

SYSTEM_RABBITMQ = "rabbitmq"
SYSTEM_IN_PROCESS = "fast_app.sync"


def start_publish_span(
    tracer: trace.Tracer, queue: str, system: str, envelope: JobEnvelope, start_time_ns: int
) -> Span:
    """Start the PRODUCER span of a ``queue()`` call, child of the current span.

    It starts once the job is encoded, with every attribute at once (the SDK validates
    attributes on each call, so one call is cheaper than two), and is back-dated to when
    ``queue()`` was called.
    """
    attributes = _publish_attributes(queue, system)
    attributes[MESSAGING_MESSAGE_ID] = envelope.id
    attributes[JOB_FUNCTION] = envelope.function
    if envelope.attempt > 1:
        attributes[JOB_ATTEMPT] = envelope.attempt
    if envelope.options.delay_s is not None:
        attributes[JOB_DELAY] = envelope.options.delay_s
    return tracer.start_span(
        f"publish {queue}", kind=SpanKind.PRODUCER, attributes=attributes, start_time=start_time_ns
    )


def start_refused_publish_span(
    tracer: trace.Tracer, queue: str, system: str, start_time_ns: int
) -> Span:
    """Start the PRODUCER span of a ``queue()`` call that failed before it had a job."""
    return tracer.start_span(
        f"publish {queue}",
        kind=SpanKind.PRODUCER,
        attributes=_publish_attributes(queue, system),
        start_time=start_time_ns,
    )


def _publish_attributes(queue: str, system: str) -> dict[str, AttributeValue]:
    """What every ``publish`` span says, job or not."""
    return {
        MESSAGING_SYSTEM: system,
        MESSAGING_DESTINATION: queue,
        MESSAGING_OPERATION_NAME: "publish",
        MESSAGING_OPERATION_TYPE: "send",
    }


def start_process_span(
    tracer: trace.Tracer,
    *,
    queue: str,
    system: str,
    producer: Context,
    link_only: bool,
    attributes: Mapping[str, AttributeValue],
) -> Span:
    """Start the CONSUMER span of one run (or delivery) of a job.

    Args:
        tracer: the queue's tracer.
        queue: the jobs queue, for the span's name.
        system: ``rabbitmq`` on workers, ``fast_app.sync`` in-process.
        producer: the context the job's headers carry (the ``publish`` span).
        link_only: start a new trace linked to the producer's span instead of a child.
        attributes: the job's attributes (see ``JobObservation``).
    """
    producer_span = trace.get_current_span(producer).get_span_context()
    parent = producer
    links: list[Link] = []
    if link_only and producer_span.is_valid:
        # A root span (the parent is an explicitly invalid span), keeping the baggage.
        parent = trace.set_span_in_context(trace.INVALID_SPAN, producer)
        links.append(Link(producer_span))
    return tracer.start_span(
        f"process {queue}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={
            MESSAGING_SYSTEM: system,
            MESSAGING_DESTINATION: queue,
            MESSAGING_OPERATION_NAME: "process",
            MESSAGING_OPERATION_TYPE: "process",
            **attributes,
        },
        links=links,
    )


def mark_failed(
    span: Span,
    error_type: str,
    description: str,
    *,
    exception: BaseException | None = None,
    event: str | None = None,
    event_attributes: Mapping[str, AttributeValue] | None = None,
    event_time_s: float | None = None,
) -> None:
    """Set ``span``'s status to error, with ``error.type``, the exception and an event."""
    if not span.is_recording():
        return
    span.set_attribute(ERROR_TYPE, error_type)
    if exception is not None:
        span.record_exception(exception)
    if event is not None:
        timestamp = None if event_time_s is None else int(event_time_s * 1e9)
        span.add_event(event, event_attributes or {}, timestamp=timestamp)
    span.set_status(Status(StatusCode.ERROR, description))
