"""Telemetry's hooks into a job's life: around an enqueue, and along one delivery.

``queue()``, the sync driver and the worker call these at a few points. Each hook
records spans (when a tracer provider is configured) and metrics (when a meter provider
is). Callers check ``active()`` first and skip the hooks while neither is configured,
so that costs them one cheap check and nothing more.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from contextvars import Token
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from fast_app.core.queue.envelope import JobEnvelope
from fast_app.core.queue.handle import JobOutcome, JobStatus

from ._propagation import extract_headers, inject_headers, traceparent_of, with_context_baggage
from ._state import queue_metrics, tracer
from .metrics import DEAD_LETTER_REASON, FailureReason, QueueMetrics
from .tracing import (
    HARD_TIMEOUT_EVENT,
    JOB_ATTEMPT,
    JOB_DELIVERY_COUNT,
    JOB_FUNCTION,
    JOB_QUEUE_WAIT,
    MESSAGING_MESSAGE_ID,
    SOFT_TIMEOUT_EVENT,
    WORKER_ID,
    mark_failed,
    start_process_span,
    start_publish_span,
    start_refused_publish_span,
)

__all__ = ["EnqueueObservation", "JobObservation", "observe_enqueue", "observe_job"]


def observe_enqueue(
    queue: str, system: str, baggage_keys: Iterable[str] = ()
) -> EnqueueObservation:
    """Hooks around one ``queue()`` call."""
    return EnqueueObservation(tracer(), queue_metrics(), queue, system, tuple(baggage_keys))


class EnqueueObservation:
    """One ``queue()`` call: a ``publish <queue>`` span around it, and its metrics.

    Use it as a context manager around validating and submitting the job, and call
    ``published`` once the job is encoded: from then on the span is the current one; it
    starts back-dated to the ``with``, and records the exception if the block raises.
    """

    __slots__ = (
        "_baggage_keys",
        "_function",
        "_metrics",
        "_queue",
        "_span",
        "_started",
        "_started_ns",
        "_system",
        "_token",
        "_tracer",
    )

    def __init__(
        self,
        span_tracer: trace.Tracer | None,
        metrics: QueueMetrics | None,
        queue: str,
        system: str,
        baggage_keys: tuple[str, ...],
    ) -> None:
        self._tracer = span_tracer
        self._metrics = metrics
        self._queue = queue
        self._system = system
        self._baggage_keys = baggage_keys
        self._span: Span | None = None
        self._token: Token[Context] | None = None
        self._function: str | None = None
        self._started = 0.0
        self._started_ns = 0

    def __enter__(self) -> EnqueueObservation:
        self._started = time.perf_counter()
        self._started_ns = time.time_ns()
        return self

    def published(
        self, envelope: JobEnvelope, queue: str | None = None, *, attach: bool = True
    ) -> dict[str, str] | None:
        """Note the encoded job: start its span; return the headers that carry it to the job.

        ``queue``: the queue it goes to, when routing chose another than the one given
        at the start (``messaging.destination.name`` and the metrics' queue).
        ``attach``: make the span current until the observation ends (not for a job of
        a batch, whose observations end in another order than they start).

        Context keys listed in ``QUEUE_BAGGAGE_KEYS`` travel as baggage too (the
        caller's own baggage always does, as with any instrumented call).
        """
        self._function = envelope.function
        if queue is not None:
            self._queue = queue
        if self._tracer is None:
            return None
        span = start_publish_span(
            self._tracer, self._queue, self._system, envelope, self._started_ns
        )
        self._span = span
        current = trace.set_span_in_context(span)
        # Current while the driver submits the job: the sync driver's run, or spans of an
        # instrumented AMQP client, are its children.
        if attach:
            self._token = otel_context.attach(current)
        if self._baggage_keys:
            current = with_context_baggage(current, envelope.context, self._baggage_keys)
        return inject_headers(current)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        span = self._span
        if span is None and error is not None and self._tracer is not None:
            span = start_refused_publish_span(
                self._tracer, self._queue, self._system, self._started_ns
            )
        if span is not None:
            if error is not None:
                error_type = f"{type(error).__module__}.{type(error).__qualname__}"
                mark_failed(span, error_type, f"{type(error).__name__}: {error}", exception=error)
            span.end()
            if self._token is not None:
                otel_context.detach(self._token)
        if error is None and self._metrics is not None and self._function is not None:
            self._metrics.enqueued(self._queue, self._function, time.perf_counter() - self._started)


def observe_job(
    *,
    queue: str,
    system: str,
    envelope: JobEnvelope | None,
    message_id: str | None,
    headers: Mapping[str, Any] | None,
    link_after_s: float | None = None,
    delivery_count: int | None = None,
    worker_id: str | None = None,
    due_at: float | None = None,
) -> JobObservation:
    """Hooks along one delivery of a job.

    Args:
        queue: the jobs queue.
        system: ``rabbitmq`` on workers, ``fast_app.sync`` in-process.
        envelope: the decoded job; ``None`` for a message that is not one.
        message_id: the job id (the message's, when it could not be decoded).
        headers: the message headers, carrying the producer's trace context.
        link_after_s: a job enqueued longer ago than this starts a new trace linked to
            the producer's instead of continuing it (``QUEUE_TRACE_LINK_AFTER_S``).
        delivery_count: the broker's ``x-delivery-count``, when it sent one.
        worker_id: the worker handling it.
        due_at: Unix time the job became due (enqueued, or its delay or backoff over),
            for its queue wait; ``None`` for a delivery that will not run.
    """
    return JobObservation(
        tracer(),
        queue_metrics(),
        queue=queue,
        system=system,
        envelope=envelope,
        message_id=message_id,
        headers=headers,
        link_after_s=link_after_s,
        delivery_count=delivery_count,
        worker_id=worker_id,
        due_at=due_at,
    )


class JobObservation:
    """One delivery of a job, from receipt to settlement: a ``process <queue>`` span and
    the job metrics. The runtime calls ``started``, then ``finished`` (or ``failed`` /
    ``rejected``), ``retried`` or ``dead_lettered``, and ``end`` once settled.

    Attributes:
        trace_context: the context the job's code runs in (the process span and the
            producer's baggage), so its own spans are children of the process span;
            ``None`` when not tracing.
    """

    def __init__(
        self,
        span_tracer: trace.Tracer | None,
        metrics: QueueMetrics | None,
        *,
        queue: str,
        system: str,
        envelope: JobEnvelope | None,
        message_id: str | None,
        headers: Mapping[str, Any] | None,
        link_after_s: float | None,
        delivery_count: int | None,
        worker_id: str | None,
        due_at: float | None,
    ) -> None:
        now = time.time()
        self._metrics = metrics
        self._queue = queue
        self._function = None if envelope is None else envelope.function
        self._queue_wait_s = None if due_at is None else max(0.0, now - due_at)
        self._run_started: float | None = None
        self._span: Span | None = None
        self._traceparent: str | None = None
        self._producer: Context | None = None
        self._producer_traceparent: str | None = None
        self._ended = False
        self.trace_context: Context | None = None
        if span_tracer is None:
            return
        producer = self._producer = extract_headers(headers)
        attributes: dict[str, AttributeValue] = {}
        if message_id:
            attributes[MESSAGING_MESSAGE_ID] = message_id
        link_only = False
        if envelope is not None:
            attributes[JOB_FUNCTION] = envelope.function
            attributes[JOB_ATTEMPT] = envelope.attempt
            link_only = link_after_s is not None and now - envelope.enqueued_at > link_after_s
        if delivery_count is not None:
            attributes[JOB_DELIVERY_COUNT] = delivery_count
        if worker_id is not None:
            attributes[WORKER_ID] = worker_id
        if self._queue_wait_s is not None:
            attributes[JOB_QUEUE_WAIT] = self._queue_wait_s
        span = start_process_span(
            span_tracer,
            queue=queue,
            system=system,
            producer=producer,
            link_only=link_only,
            attributes=attributes,
        )
        self._span = span
        self.trace_context = trace.set_span_in_context(span, producer)

    def _live(self) -> Span | None:
        """The span, while it can still take events and attributes."""
        span = self._span
        if span is None or self._ended or not span.is_recording():
            return None
        return span

    @property
    def traceparent(self) -> str | None:
        """The process span's W3C ``traceparent`` (for heartbeats), if tracing."""
        if self._traceparent is None and self._span is not None:
            self._traceparent = traceparent_of(self._span)
        return self._traceparent

    @property
    def producer_traceparent(self) -> str | None:
        """The W3C ``traceparent`` of the span that enqueued the job, if it carried one.

        A supervisor that kills the worker at the job's hard timeout records the kill as
        that span's child (linked to this run's span, which dies with the worker), so the
        trace stays whole.
        """
        if self._producer_traceparent is None and self._producer is not None:
            self._producer_traceparent = traceparent_of(trace.get_current_span(self._producer))
        return self._producer_traceparent

    def started(self) -> None:
        """The job's code starts now."""
        self._run_started = time.time()
        if self._metrics is not None and self._function is not None:
            self._metrics.started(self._queue, self._function, self._queue_wait_s or 0.0)

    def finished(self, outcome: JobOutcome, soft_timeout_s: float | None = None) -> None:
        """The job's code ended with ``outcome``."""
        metrics, function, span = self._metrics, self._function, self._live()
        status = outcome.status
        if status is JobStatus.SUCCEEDED:
            if metrics is not None and function is not None:
                metrics.succeeded(self._queue, function, outcome.duration_s)
            return
        error = outcome.error
        description = f"{error.type}: {error.message}" if error else status.value
        if status is JobStatus.SOFT_TIMEOUT:
            reason = FailureReason.SOFT_TIMEOUT
            if span is not None:
                fired = None
                if self._run_started is not None and soft_timeout_s is not None:
                    fired = self._run_started + soft_timeout_s
                mark_failed(
                    span,
                    reason.value,
                    description,
                    event=SOFT_TIMEOUT_EVENT,
                    event_attributes={
                        "fast_app.job.soft_timeout_s": soft_timeout_s or 0.0,
                        "fast_app.job.still_running": outcome.still_running,
                    },
                    event_time_s=fired,
                )
        else:
            reason = (
                FailureReason.INVALID if status is JobStatus.INVALID else FailureReason.EXCEPTION
            )
            if span is not None:
                error_type = error.type if error else reason.value
                mark_failed(span, error_type, description, exception=outcome.exception)
        if metrics is not None:
            metrics.failed(self._queue, function, reason, outcome.duration_s)

    def failed(self, reason: FailureReason, description: str) -> None:
        """The job failed without its code ending normally (its hard timeout, mostly)."""
        span = self._live()
        if span is not None:
            event = HARD_TIMEOUT_EVENT if reason is FailureReason.HARD_TIMEOUT else None
            mark_failed(span, reason.value, description, event=event)
        if self._metrics is not None:
            duration = None if self._run_started is None else time.time() - self._run_started
            self._metrics.failed(self._queue, self._function, reason, duration)

    def rejected(self, reason: FailureReason, description: str) -> None:
        """The delivery cannot run: not a job, a bad signature, a function not allowed.

        Its function name is not trusted, so metrics leave it out.
        """
        self._function = None
        span = self._live()
        if span is not None:
            mark_failed(span, reason.value, description)
        if self._metrics is not None:
            self._metrics.failed(self._queue, None, reason)

    def retry_headers(self) -> dict[str, str] | None:
        """Headers for the job's retry: its next run continues this span's trace."""
        if self.trace_context is None:
            return None
        return inject_headers(self.trace_context)

    def retried(self) -> None:
        """The job was published again, to be retried."""
        span = self._live()
        if span is not None:
            span.add_event("fast_app.job.retry_scheduled")
        if self._metrics is not None and self._function is not None:
            self._metrics.retried(self._queue, self._function)

    def dead_lettered(self, reason: str) -> None:
        """The job was stored in the dead-letter queue."""
        span = self._live()
        if span is not None:
            span.add_event("fast_app.job.dead_lettered", {DEAD_LETTER_REASON: reason})
        if self._metrics is not None:
            self._metrics.dead_lettered(self._queue, reason)

    def cancelled(self) -> None:
        """The run was abandoned (shutdown, lost connection); the broker delivers it again."""
        span = self._live()
        if span is not None:
            span.add_event("fast_app.job.abandoned")

    def end(self) -> None:
        """The delivery is settled: end the span (once)."""
        if self._span is not None and not self._ended:
            self._ended = True
            self._span.end()
