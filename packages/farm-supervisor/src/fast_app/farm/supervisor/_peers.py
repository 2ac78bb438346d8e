"""The other supervisors of the queue, as their snapshots show them: jobs they are running.

The broker tells a supervisor how many jobs are ready and how many consumers there are,
not how many jobs those consumers hold (AMQP has no "unacknowledged" count). Without it,
a supervisor would count the other hosts' slots as free and under-react to a backlog
they cannot take. Each supervisor already publishes its jobs in flight in its snapshots;
this keeps the latest count of each peer, and forgets a peer that stopped or fell silent.
It also counts the peers of each queue, with whom a supervisor shares a shortfall of
workers (``scaling.decide``).
"""

from __future__ import annotations

from dataclasses import dataclass

from fast_app.farm.messages import Snapshot

__all__ = ["MAX_PEERS", "PeerLoads"]

#: The most peers remembered: a flood of forged supervisor ids stops growing the map
#: there (the peers already heard keep being updated; a new one waits for a slot).
MAX_PEERS = 1024
_MOST_PREFETCHED = 65_535


@dataclass(frozen=True, slots=True)
class _Heard:
    at: float  # monotonic time the snapshot arrived
    in_flight: dict[str, int]  # by queue
    completion_rate: dict[str, float]  # jobs/s its workers end, by queue
    queues: frozenset[str]  # the queues it serves
    waiting: dict[str, int]  # deliveries waiting in its workers for a slot, by queue


class PeerLoads:
    """The latest jobs in flight (and pace) of each other supervisor, per queue.

    Args:
        own_id: this supervisor's id (its own snapshots come back too: ignored).
        max_age_s: a peer silent for longer is forgotten when room is needed for a new
            one (the readers pass their own, usually the same, age).
    """

    def __init__(self, own_id: str, max_age_s: float = 15.0) -> None:
        self._own_id = own_id
        self._max_age_s = max_age_s
        self._heard: dict[str, _Heard] = {}

    def heard(self, snapshot: Snapshot, now: float) -> None:
        """Note a snapshot from the events exchange, received at monotonic time ``now``.

        A peer's count per queue is capped by what its own snapshot says it can hold
        there (its workers of that queue times its concurrency): a snapshot cannot claim
        more slots than it describes. A worker that names no queue consumes the peer's
        ``settings.queue`` (supervisors from before named queues).
        """
        if snapshot.supervisor_id == self._own_id:
            return
        if snapshot.stopped:
            self._heard.pop(snapshot.supervisor_id, None)
            return
        concurrency = snapshot.settings.concurrency
        in_flight: dict[str, int] = {}
        waiting: dict[str, int] = {}
        workers: dict[str, int] = {}
        # A peer older than the count reports none: its waiting deliveries weigh nothing
        # here (the most it can be told), as before the count existed.
        counted = snapshot.waiting or {}
        for worker in snapshot.workers:
            queue = worker.queue or snapshot.settings.queue
            in_flight[queue] = in_flight.get(queue, 0) + worker.in_flight_count
            # A worker's prefetch count is an AMQP short: it cannot hold more than that.
            held = min(counted.get(worker.worker_id, 0), _MOST_PREFETCHED)
            waiting[queue] = waiting.get(queue, 0) + held
            workers[queue] = workers.get(queue, 0) + 1
        capped = {
            queue: min(count, workers[queue] * concurrency) for queue, count in in_flight.items()
        }
        # A pace is not capped further: it feeds only the time to clear this supervisor
        # publishes, never a scaling decision, and without a signing key a peer is
        # trusted there (docs/security.md). Jobs in flight, which do steer the scaling,
        # can only add workers, up to the supervisor's maximum.
        rates = {entry.name: max(0.0, entry.completion_rate) for entry in snapshot.queues}
        if snapshot.supervisor_id not in self._heard and len(self._heard) >= MAX_PEERS:
            self._fresh(now, self._max_age_s)
            if len(self._heard) >= MAX_PEERS:
                return
        queues = frozenset(rates) | frozenset(workers)
        self._heard[snapshot.supervisor_id] = _Heard(now, capped, rates, queues, waiting)

    def _fresh(self, now: float, max_age_s: float) -> list[_Heard]:
        self._heard = {k: v for k, v in self._heard.items() if now - v.at <= max_age_s}
        return list(self._heard.values())

    def in_flight(self, now: float, max_age_s: float, queue: str | None = None) -> int:
        """Jobs in flight on the peers heard from within ``max_age_s`` of ``now`` (on
        ``queue``, or on every queue)."""
        return sum(
            sum(heard.in_flight.values()) if queue is None else heard.in_flight.get(queue, 0)
            for heard in self._fresh(now, max_age_s)
        )

    def completion_rate(self, now: float, max_age_s: float, queue: str) -> float:
        """Jobs/s the peers heard from within ``max_age_s`` end on ``queue``."""
        return sum(heard.completion_rate.get(queue, 0.0) for heard in self._fresh(now, max_age_s))

    def supervisors(self, now: float, max_age_s: float, queue: str) -> int:
        """Peers heard from within ``max_age_s`` of ``now`` that serve ``queue``."""
        return sum(1 for heard in self._fresh(now, max_age_s) if queue in heard.queues)

    def waiting(self, now: float, max_age_s: float, queue: str) -> int:
        """Deliveries waiting for a slot in the workers of the peers heard from within
        ``max_age_s`` of ``now``, on ``queue``: jobs not started, that no ready count
        shows (``FARM_PREFETCH`` above ``FARM_CONCURRENCY``)."""
        return sum(heard.waiting.get(queue, 0) for heard in self._fresh(now, max_age_s))
