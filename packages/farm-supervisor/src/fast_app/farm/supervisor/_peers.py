"""The other supervisors of the queue, as their snapshots show them: jobs they are running.

The broker tells a supervisor how many jobs are ready and how many consumers there are,
not how many jobs those consumers hold (AMQP has no "unacknowledged" count). Without it,
a supervisor would count the other hosts' slots as free and under-react to a backlog
they cannot take. Each supervisor already publishes its jobs in flight in its snapshots;
this keeps the latest count of each peer, and forgets a peer that stopped or fell silent.
"""

from __future__ import annotations

from dataclasses import dataclass

from fast_app.farm.messages import Snapshot

__all__ = ["PeerLoads"]


@dataclass(frozen=True, slots=True)
class _Heard:
    at: float  # monotonic time the snapshot arrived
    in_flight: int


class PeerLoads:
    """The latest jobs in flight of each other supervisor of the queue.

    Args:
        own_id: this supervisor's id (its own snapshots come back too: ignored).
    """

    def __init__(self, own_id: str) -> None:
        self._own_id = own_id
        self._heard: dict[str, _Heard] = {}

    def heard(self, snapshot: Snapshot, now: float) -> None:
        """Note a snapshot from the events exchange, received at monotonic time ``now``.

        A peer's count is capped by what its own snapshot says it can hold (its workers
        times its concurrency): a snapshot cannot claim more slots than it describes.
        """
        if snapshot.supervisor_id == self._own_id:
            return
        if snapshot.stopped:
            self._heard.pop(snapshot.supervisor_id, None)
            return
        capacity = len(snapshot.workers) * snapshot.settings.concurrency
        in_flight = sum(worker.in_flight_count for worker in snapshot.workers)
        self._heard[snapshot.supervisor_id] = _Heard(now, min(in_flight, capacity))

    def in_flight(self, now: float, max_age_s: float) -> int:
        """Jobs in flight on the peers heard from within ``max_age_s`` of ``now``."""
        self._heard = {k: v for k, v in self._heard.items() if now - v.at <= max_age_s}
        return sum(heard.in_flight for heard in self._heard.values())
