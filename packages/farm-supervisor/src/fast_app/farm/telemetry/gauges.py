"""The farm's gauges, observed from the supervisor's latest snapshot.

Metric readers call the callbacks on their own thread: they only read the snapshot the
supervisor last built (a fresh dict each time, never changed afterwards).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from fast_app.core.queue.telemetry import meter_provider
from fast_app.core.queue.telemetry.metrics import QUEUE

__all__ = ["QUEUE_KIND", "WORKER_STATE", "WORKER_STATES", "FarmGauges"]

WORKER_STATE = "fast_app.worker.state"
QUEUE_KIND = "fast_app.queue.kind"
WORKER_STATES = ("starting", "idle", "busy", "paused", "draining")
_QUEUE_KINDS = (("jobs", "ready"), ("delayed", "delayed"), ("dead", "dead"))

Snapshot = Mapping[str, Any]


class FarmGauges:
    """Registers ``fast_app.farm.workers``, ``fast_app.queue.depth`` and
    ``fast_app.farm.jobs_in_flight`` on the meter in use.

    Args:
        queue: the jobs queue (the ``messaging.destination.name`` attribute).
        snapshot: returns the supervisor's latest snapshot, or ``None`` before the first.
        meter: where to register them; by default the ``fast_app.farm`` meter of the
            configured provider (or of the global proxy, until one is configured).
    """

    def __init__(
        self,
        queue: str,
        snapshot: Callable[[], Snapshot | None],
        meter: metrics.Meter | None = None,
    ) -> None:
        self._queue = queue
        self._snapshot = snapshot
        if meter is None:
            provider = meter_provider() or metrics.get_meter_provider()
            meter = provider.get_meter("fast_app.farm")
        meter.create_observable_gauge(
            "fast_app.farm.workers",
            callbacks=[self._workers],
            unit="{worker}",
            description="Live worker processes of this supervisor, by state.",
        )
        meter.create_observable_gauge(
            "fast_app.queue.depth",
            callbacks=[self._depths],
            unit="{job}",
            description=(
                "Jobs waiting in the queue (jobs), in its delay queues (delayed) and in its "
                "dead-letter queue (dead); the same for every supervisor of the farm."
            ),
        )
        meter.create_observable_gauge(
            "fast_app.farm.jobs_in_flight",
            callbacks=[self._in_flight],
            unit="{job}",
            description="Jobs running on this supervisor's workers.",
        )

    def _workers(self, options: CallbackOptions) -> Iterable[Observation]:
        snapshot = self._snapshot()
        if snapshot is None:
            return []
        counts = dict.fromkeys(WORKER_STATES, 0)
        for worker in snapshot.get("workers", []):
            state = str(worker.get("state"))
            if state in counts:  # the supervisor's own states only: low cardinality
                counts[state] += 1
        return [
            Observation(count, {QUEUE: self._queue, WORKER_STATE: state})
            for state, count in counts.items()
        ]

    def _depths(self, options: CallbackOptions) -> Iterable[Observation]:
        snapshot = self._snapshot()
        if snapshot is None:
            return []
        depths = snapshot.get("queue", {})
        return [
            Observation(depths[key], {QUEUE: self._queue, QUEUE_KIND: kind})
            for kind, key in _QUEUE_KINDS
            if isinstance(depths.get(key), int)
        ]

    def _in_flight(self, options: CallbackOptions) -> Iterable[Observation]:
        snapshot = self._snapshot()
        if snapshot is None:
            return []
        running = sum(len(worker.get("in_flight", [])) for worker in snapshot.get("workers", []))
        return [Observation(running, {QUEUE: self._queue})]
