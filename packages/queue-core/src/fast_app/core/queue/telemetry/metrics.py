"""The queue's metrics: jobs enqueued, started, ended; durations, waits, enqueue latency.

Instruments are created once per meter. Attributes stay low-cardinality: the queue, the
job function's dotted path, and a reason from a fixed set; never job ids. Attribute
mappings are built once per combination and reused.

The counters are counted here, in plain integers, and reported by observable counters
when a reader collects: the SDK's synchronous ``Counter.add`` validates and hashes the
attributes on every call (about 10 µs, as much as the job itself for small jobs), an
increment here costs a fraction of a microsecond. Exported, they are the same monotonic
sums. Histograms have no observable form and are recorded through the SDK.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from enum import StrEnum

from opentelemetry.metrics import CallbackOptions, Meter, Observation

__all__ = [
    "DEAD_LETTER_REASON",
    "ERROR_TYPE",
    "FUNCTION",
    "QUEUE",
    "FailureReason",
    "QueueMetrics",
]

QUEUE = "messaging.destination.name"
FUNCTION = "fast_app.job.function"
ERROR_TYPE = "error.type"
DEAD_LETTER_REASON = "fast_app.dead_letter.reason"

# Seconds, from a millisecond job to an hour-long one (the API's default buckets are
# meant for milliseconds).
_SECONDS_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)
_MAX_CACHED_ATTRIBUTE_SETS = 10_000


class FailureReason(StrEnum):
    """Why a job failed (the ``error.type`` of ``fast_app.jobs.failed``)."""

    EXCEPTION = "exception"
    SOFT_TIMEOUT = "soft_timeout"
    HARD_TIMEOUT = "hard_timeout"
    INVALID = "invalid"
    CONSUMER_TIMEOUT = "consumer_timeout"


_AttributeKey = tuple[str, str | None, str, str]


class _Counts:
    """Monotonic counts by attribute set, reported by an observable counter."""

    def __init__(self, meter: Meter, name: str, description: str) -> None:
        self._counts: dict[_AttributeKey, int] = {}
        self._attributes: dict[_AttributeKey, Mapping[str, str]] = {}
        self._lock = threading.Lock()
        meter.create_observable_counter(
            name, callbacks=[self._observe], unit="{job}", description=description
        )

    def add(self, key: _AttributeKey, attributes: Mapping[str, str]) -> None:
        with self._lock:
            count = self._counts.get(key)
            if count is None:
                self._attributes[key] = attributes
                self._counts[key] = 1
            else:
                self._counts[key] = count + 1

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        # Called on the metric reader's thread.
        with self._lock:
            counts = list(self._counts.items())
        return [Observation(count, self._attributes[key]) for key, count in counts]


class QueueMetrics:
    """The queue's instruments on one meter.

    Args:
        meter: where to create them (the SDK's meter of the ``fast_app.queue`` scope).
    """

    def __init__(self, meter: Meter) -> None:
        self._enqueued = _Counts(meter, "fast_app.jobs.enqueued", "Jobs accepted by queue().")
        self._started = _Counts(meter, "fast_app.jobs.started", "Job runs started.")
        self._succeeded = _Counts(meter, "fast_app.jobs.succeeded", "Job runs that succeeded.")
        self._failed = _Counts(
            meter,
            "fast_app.jobs.failed",
            "Job runs or deliveries that failed, by reason (error.type).",
        )
        self._retried = _Counts(meter, "fast_app.jobs.retried", "Failed jobs sent to run again.")
        self._dead_lettered = _Counts(
            meter, "fast_app.jobs.dead_lettered", "Jobs stored in the dead-letter queue, by reason."
        )
        self._duration = meter.create_histogram(
            "fast_app.job.duration",
            unit="s",
            description="How long job runs took, from start to end.",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        self._queue_wait = meter.create_histogram(
            "fast_app.job.queue_wait",
            unit="s",
            description="How long jobs waited in the queue between being due and starting.",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        self._enqueue_duration = meter.create_histogram(
            "fast_app.job.enqueue_duration",
            unit="s",
            description="How long queue() took (for the sync driver, including the run).",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        self._attribute_sets: dict[_AttributeKey, Mapping[str, str]] = {}

    def _attributes(self, key: _AttributeKey) -> Mapping[str, str]:
        found = self._attribute_sets.get(key)
        if found is not None:
            return found
        queue, function, name, value = key
        attributes = {QUEUE: queue}
        if function is not None:
            attributes[FUNCTION] = function
        if name:
            attributes[name] = value
        if len(self._attribute_sets) >= _MAX_CACHED_ATTRIBUTE_SETS:
            self._attribute_sets.clear()
        self._attribute_sets[key] = attributes
        return attributes

    def enqueued(self, queue: str, function: str, seconds: float) -> None:
        """A job was accepted by ``queue()``, which took ``seconds``."""
        key = (queue, function, "", "")
        attributes = self._attributes(key)
        self._enqueued.add(key, attributes)
        self._enqueue_duration.record(seconds, attributes)

    def started(self, queue: str, function: str, queue_wait_s: float) -> None:
        """A job's run started after waiting ``queue_wait_s`` since it was due."""
        key = (queue, function, "", "")
        attributes = self._attributes(key)
        self._started.add(key, attributes)
        self._queue_wait.record(max(0.0, queue_wait_s), attributes)

    def succeeded(self, queue: str, function: str, duration_s: float) -> None:
        """A job's run succeeded."""
        key = (queue, function, "", "")
        attributes = self._attributes(key)
        self._succeeded.add(key, attributes)
        self._duration.record(duration_s, attributes)

    def failed(
        self,
        queue: str,
        function: str | None,
        reason: FailureReason,
        duration_s: float | None = None,
    ) -> None:
        """A job failed; ``function`` is ``None`` for a delivery that named no runnable one."""
        key = (queue, function, ERROR_TYPE, reason.value)
        attributes = self._attributes(key)
        self._failed.add(key, attributes)
        if duration_s is not None:
            self._duration.record(duration_s, attributes)

    def retried(self, queue: str, function: str) -> None:
        """A failed job was published again to be retried."""
        key = (queue, function, "", "")
        self._retried.add(key, self._attributes(key))

    def dead_lettered(self, queue: str, reason: str) -> None:
        """A job was stored in the dead-letter queue for ``reason`` (a dead-letter reason)."""
        key = (queue, None, DEAD_LETTER_REASON, reason)
        self._dead_lettered.add(key, self._attributes(key))
