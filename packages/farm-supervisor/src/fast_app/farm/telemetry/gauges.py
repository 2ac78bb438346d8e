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

__all__ = ["QUEUE_KIND", "WAIT_STATISTIC", "WORKER_STATE", "WORKER_STATES", "FarmGauges"]

WORKER_STATE = "fast_app.worker.state"
QUEUE_KIND = "fast_app.queue.kind"
WAIT_STATISTIC = "fast_app.wait.statistic"
WORKER_STATES = ("starting", "idle", "busy", "paused", "draining")
_QUEUE_KINDS = (("jobs", "ready"), ("delayed", "delayed"), ("dead", "dead"))

Snapshot = Mapping[str, Any]


class FarmGauges:
    """Registers ``fast_app.farm.workers``, ``fast_app.queue.depth``,
    ``fast_app.farm.jobs_in_flight``, ``fast_app.queue.wait`` and
    ``fast_app.queue.time_to_clear`` on the meter in use, each by queue
    (``messaging.destination.name``).

    Args:
        queue: the farm's jobs queue (for workers and figures that name no queue).
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
        meter.create_observable_gauge(
            "fast_app.queue.wait",
            callbacks=[self._waits],
            unit="s",
            description=(
                "How long the jobs this supervisor's workers started in the last minute "
                "waited in the queue (from due to started): p50 and max."
            ),
        )
        meter.create_observable_gauge(
            "fast_app.queue.time_to_clear",
            callbacks=[self._time_to_clear],
            unit="s",
            description=(
                "Estimated time to clear the queue's backlog at the drain rate of all its "
                "consumers (not reported while unknown)."
            ),
        )

    def _queue_of(self, item: Mapping[str, Any]) -> str:
        queue = item.get("queue") or item.get("name")
        return queue if isinstance(queue, str) else self._queue

    def _workers(self, options: CallbackOptions) -> Iterable[Observation]:
        snapshot = self._snapshot()
        if snapshot is None:
            return []
        queues = [self._queue_of(entry) for entry in snapshot.get("queues", [])] or [self._queue]
        counts = {(queue, state): 0 for queue in queues for state in WORKER_STATES}
        for worker in snapshot.get("workers", []):
            key = (self._queue_of(worker), str(worker.get("state")))
            if key in counts:  # the supervisor's own queues and states: low cardinality
                counts[key] += 1
        return [
            Observation(count, {QUEUE: queue, WORKER_STATE: state})
            for (queue, state), count in counts.items()
        ]

    def _entries(self, snapshot: Snapshot) -> list[tuple[str, Mapping[str, Any]]]:
        """Each queue's entry; a snapshot without them: its totals, as the farm's queue."""
        entries = snapshot.get("queues") or []
        if not entries:
            return [(self._queue, {"figures": snapshot.get("queue", {})})]
        return [(self._queue_of(entry), entry) for entry in entries]

    def _depths(self, options: CallbackOptions) -> Iterable[Observation]:
        snapshot = self._snapshot()
        if snapshot is None:
            return []
        return [
            Observation(depths[key], {QUEUE: queue, QUEUE_KIND: kind})
            for queue, entry in self._entries(snapshot)
            for depths in [entry.get("figures", {})]
            for kind, key in _QUEUE_KINDS
            if isinstance(depths.get(key), int)
        ]

    def _in_flight(self, options: CallbackOptions) -> Iterable[Observation]:
        snapshot = self._snapshot()
        if snapshot is None:
            return []
        running: dict[str, int] = {queue: 0 for queue, _ in self._entries(snapshot)}
        for worker in snapshot.get("workers", []):
            queue = self._queue_of(worker)
            if queue in running:
                running[queue] += int(
                    worker.get("in_flight_count", len(worker.get("in_flight", [])))
                )
        return [Observation(count, {QUEUE: queue}) for queue, count in running.items()]

    def _waits(self, options: CallbackOptions) -> Iterable[Observation]:
        snapshot = self._snapshot()
        if snapshot is None:
            return []
        return [
            Observation(entry[key], {QUEUE: queue, WAIT_STATISTIC: statistic})
            for queue, entry in self._entries(snapshot)
            for statistic, key in (("p50", "wait_p50_s"), ("max", "wait_max_s"))
            if isinstance(entry.get(key), int | float)
        ]

    def _time_to_clear(self, options: CallbackOptions) -> Iterable[Observation]:
        snapshot = self._snapshot()
        if snapshot is None:
            return []
        return [
            Observation(entry["clear_s"], {QUEUE: queue})
            for queue, entry in self._entries(snapshot)
            if isinstance(entry.get("clear_s"), int | float)
        ]
