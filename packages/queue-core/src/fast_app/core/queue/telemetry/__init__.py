"""OpenTelemetry instrumentation of the queue: one trace from ``queue()`` to the job's run.

The queue depends on ``opentelemetry-api`` only. Until the application configures an SDK
(a real tracer or meter provider), nothing is recorded and the hot paths skip all work.

- ``queue()`` starts a PRODUCER span ``publish <queue>`` and puts its context (W3C
  ``traceparent``, ``tracestate``, baggage) in the job's message headers.
- Running the job (on a worker, or in-process with the sync driver) is a CONSUMER span
  ``process <queue>``, child of the publish span (or, past ``QUEUE_TRACE_LINK_AFTER_S``,
  the root of a new trace linked to it). Spans the job makes are its children.
- Metrics: ``fast_app.jobs.*`` counters and ``fast_app.job.*`` histograms.

See docs/tracing.md.
"""

from ._propagation import context_from_traceparent, extract_headers, trace_headers
from ._state import (
    SCOPE,
    active,
    flush,
    meter_provider,
    queue_metrics,
    tracer,
    tracer_provider,
    use_providers,
)
from .hook import TELEMETRY, TelemetryHook, job_traceparents
from .lifecycle import EnqueueObservation, JobObservation, observe_enqueue, observe_job
from .metrics import FailureReason, QueueMetrics
from .tracing import SYSTEM_IN_PROCESS, SYSTEM_RABBITMQ

__all__ = [
    "SCOPE",
    "SYSTEM_IN_PROCESS",
    "SYSTEM_RABBITMQ",
    "TELEMETRY",
    "EnqueueObservation",
    "FailureReason",
    "JobObservation",
    "QueueMetrics",
    "TelemetryHook",
    "active",
    "context_from_traceparent",
    "extract_headers",
    "flush",
    "job_traceparents",
    "meter_provider",
    "observe_enqueue",
    "observe_job",
    "queue_metrics",
    "trace_headers",
    "tracer",
    "tracer_provider",
    "use_providers",
]
