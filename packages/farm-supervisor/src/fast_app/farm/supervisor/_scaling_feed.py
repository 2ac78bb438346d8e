"""What the balancing policy is fed, per queue: the queue as the broker reports it, the
pace of its workers, and how long its jobs wait.

``balancing.balance`` is a pure function of one ``FarmLoad`` per queue; a ``QueueFeed``
builds its queue's load from the broker (ready messages, consumers, dead and delayed
ones) and from the heartbeats of the queue's pool, estimates the rate at which jobs
arrive and the time to clear the backlog, and keeps the queue waits of the last minute.
"""

from __future__ import annotations

import logging
import random
import time

from fast_app.core.queue.amqp import Topology
from fast_app.farm.messages.snapshots import QueueEntry, QueueFigures
from fast_app.farm.settings import FarmSettings
from fast_app.farm.supervisor._broker import QueueDepth, SupervisorBroker
from fast_app.farm.supervisor._peers import PeerLoads
from fast_app.farm.supervisor._pool import WorkerPool
from fast_app.farm.supervisor._queue_waits import QueueWaitWindow
from fast_app.farm.supervisor.scaling import FarmLoad

__all__ = ["QueueFeed"]

logger = logging.getLogger("fast_app.farm.supervisor")


class QueueFeed:
    """Reads one queue's load for the balancing policy, and keeps what the broker said.

    Attributes:
        topology: the queue's topology.
        depth: its ready messages and consumers, as last read.
        read_at: Unix time of that read (``None``: never read).
        dead: messages in its dead-letter queue, as last read.
        delayed: messages in its delay queues, as last read.
        enqueue_rate: jobs/s arriving, as last estimated.
        unconsumed_since: Unix time since when every read found ready jobs and no
            consumer (``None``: the last read found a consumer, no ready job, or failed).
            Nothing took a job from the queue since, so its oldest job has waited at
            least that long: the one wait the broker lets a farm measure without a
            consumer (RabbitMQ does not expose the age of a quorum queue's head).

    Args:
        supervisor_id: named in logs.
        farm: heartbeat interval (how often dead and delayed messages are counted).
        broker: where the queue depths are read.
        topology: the queue.
        pool: its workers (their count, pace and jobs in flight).
        peers: the jobs in flight and pace of the queue's other supervisors.
    """

    def __init__(
        self,
        *,
        supervisor_id: str,
        farm: FarmSettings,
        broker: SupervisorBroker,
        topology: Topology,
        pool: WorkerPool,
        peers: PeerLoads,
    ) -> None:
        self._supervisor_id = supervisor_id
        self._farm = farm
        self._broker = broker
        self.topology = topology
        self._pool = pool
        self._peers = peers
        # A peer silent for 3 heartbeat intervals is gone (or cut off): its figures expire.
        self._peer_silence_s = 3 * farm.heartbeat_interval_s
        self._next_depth_probe_at = 0.0
        self._broker_warned = False
        self._previous_depth: tuple[float, int] | None = None
        self.waits = QueueWaitWindow()
        self.depth: QueueDepth | None = None
        self.read_at: float | None = None
        self.dead: int | None = None
        self.delayed: int | None = None
        self.next_due_within_s: float | None = None
        self.unconsumed_since: float | None = None
        self.enqueue_rate = 0.0
        # Rounds this supervisor's share of a shortfall; seeded apart from every peer's.
        self._draws = random.Random()

    async def load(self, now: float) -> FarmLoad | None:
        """The queue's load now; ``None`` if the broker cannot be read."""
        try:
            self.depth = depth = await self._broker.depth(self.topology)
            self.read_at = time.time()
            if depth.ready == 0 or depth.consumers > 0:
                self.unconsumed_since = None
            elif self.unconsumed_since is None:
                self.unconsumed_since = self.read_at
            if now >= self._next_depth_probe_at:
                self._next_depth_probe_at = now + 5 * self._farm.heartbeat_interval_s
                delays = await self._broker.dead_and_delayed(self.topology)
                self.dead, self.delayed, self.next_due_within_s = delays
            self._broker_warned = False
        except Exception as error:
            self.unconsumed_since = None  # not seen continuously any more
            if not self._broker_warned:
                logger.warning(
                    "supervisor %s cannot read the depth of %s (%s); not scaling it until it can",
                    self._supervisor_id,
                    self.topology.jobs,
                    type(error).__name__,
                )
                self._broker_warned = True
            return None
        live = self._pool.live()
        rates = [rate for worker in live if (rate := worker.rate()) is not None and rate > 0]
        self._estimate_enqueue_rate(now, self.depth.ready, sum(rates))
        in_flight = sum(len(worker.in_flight) for worker in live)
        # Deliveries waiting inside workers for a slot have not started (the broker
        # counts them as unacknowledged, no longer as ready).
        waiting = sum(worker.waiting for worker in live)
        silent_s = self._peer_silence_s
        peers_in_flight = self._peers.in_flight(now, silent_s, self.topology.jobs)
        return FarmLoad(
            now=now,
            ready=self.depth.ready,
            unacked=in_flight + peers_in_flight,
            own_workers=len(live),
            busy_workers=sum(1 for worker in live if worker.in_flight),
            in_flight=in_flight,
            total_consumers=self.depth.consumers,
            jobs_per_second_per_worker=sum(rates) / len(rates) if rates else None,
            own_starting=sum(1 for worker in live if worker.state == "starting"),
            waiting=waiting + self._peers.waiting(now, silent_s, self.topology.jobs),
            peer_supervisors=self._peers.supervisors(now, silent_s, self.topology.jobs),
            share_draw=self._draws.random(),
        )

    def collect_waits(self, now: float) -> None:
        """Take the queue waits the pool's workers reported since the last call."""
        for worker in self._pool.workers.values():
            waits = worker.take_waits()
            if waits:
                self.waits.add(now, waits)

    def entry(self, now: float, unacked: int, completion_rate: float) -> QueueEntry:
        """The queue as snapshots show it.

        Args:
            now: monotonic time.
            unacked: jobs in flight on this supervisor's workers of the queue.
            completion_rate: jobs/s they end.
        """
        pool, depth = self._pool, self.depth
        waits = self.waits.figures(now)
        # Deliveries waiting inside workers (this pool's and the peers') are work left.
        silent_s = self._peer_silence_s
        waiting = sum(worker.waiting for worker in pool.live())
        waiting += self._peers.waiting(now, silent_s, self.topology.jobs)
        peers_rate = self._peers.completion_rate(now, silent_s, self.topology.jobs)
        return QueueEntry(
            name=self.topology.jobs,
            min_workers=pool.min_workers,
            max_workers=pool.max_workers,
            desired_workers=pool.desired,
            workers=len(pool.live()),
            figures=QueueFigures(
                ready=None if depth is None else depth.ready,
                unacked=unacked,
                consumers=None if depth is None else depth.consumers,
                dead=self.dead,
                delayed=self.delayed,
                next_due_within_s=self.next_due_within_s,
            ),
            completion_rate=completion_rate,
            enqueue_rate=self.enqueue_rate,
            wait_p50_s=waits.p50_s,
            wait_max_s=waits.max_s,
            waits_counted=waits.counted,
            clear_s=_time_to_clear(depth, unacked + waiting, completion_rate + peers_rate),
            read_at=self.read_at,
            unconsumed_since=self.unconsumed_since,
        )

    def _estimate_enqueue_rate(self, now: float, ready: int, completion_rate: float) -> None:
        """Jobs/s arriving: what the backlog grew by plus what was taken from it.

        An estimate from this supervisor's view (its own workers' completions); the
        dashboard smooths it over snapshots.
        """
        previous = self._previous_depth
        self._previous_depth = (now, ready)
        if previous is not None and now > previous[0]:
            growth = (ready - previous[1]) / (now - previous[0])
            self.enqueue_rate = max(0.0, growth + completion_rate)


def _time_to_clear(depth: QueueDepth | None, unacked: int, drain_rate: float) -> float | None:
    """Seconds to work off the ready and unacknowledged jobs (running, or waiting inside
    workers for a slot) at ``drain_rate``; 0 for an empty queue, ``None`` when unknown
    (not read, or no drain measured)."""
    if depth is None:
        return None
    backlog = depth.ready + unacked
    if backlog == 0:
        return 0.0
    if drain_rate <= 0:
        return None
    return min(1e9, backlog / drain_rate)
