"""What the scaling policy is fed: the queue as the broker reports it, the workers' pace.

``scaling.decide`` is a pure function of a ``FarmLoad``; this module builds that load
from the broker (ready messages, consumers, dead and delayed ones) and from the
heartbeats of the pool's workers, estimates the rate at which jobs arrive, and records
each decision that changes the number of workers.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import Any

from fast_app.farm.settings import FarmSettings
from fast_app.farm.supervisor._broker import QueueDepth, SupervisorBroker
from fast_app.farm.supervisor._events import EventLog
from fast_app.farm.supervisor._peers import PeerLoads
from fast_app.farm.supervisor._pool import WorkerPool
from fast_app.farm.supervisor.scaling import FarmLoad, ScalingMemory, ScalingPolicy, decide

__all__ = ["ScalingFeed"]

logger = logging.getLogger("fast_app.farm.supervisor")


class ScalingFeed:
    """Reads the farm's load, asks the scaling policy, and keeps what the broker said.

    Attributes:
        depth: the jobs queue's ready messages and consumers, as last read.
        dead: messages in the dead-letter queue, as last read.
        delayed: messages in the delay queues, as last read.
        enqueue_rate: jobs/s arriving, as last estimated.

    Args:
        supervisor_id: named in logs.
        farm: scaling settings.
        broker: where the queue depths are read.
        pool: the workers (their count, pace, jobs in flight, and limits).
        events: where each change of the number of workers is told.
        decisions: where each change of the number of workers is listed for snapshots.
        peers: the jobs in flight of the queue's other supervisors (their slots are not
            free), from their snapshots.
    """

    def __init__(
        self,
        *,
        supervisor_id: str,
        farm: FarmSettings,
        broker: SupervisorBroker,
        pool: WorkerPool,
        events: EventLog,
        decisions: collections.deque[dict[str, Any]],
        peers: PeerLoads,
    ) -> None:
        self._supervisor_id = supervisor_id
        self._farm = farm
        self._broker = broker
        self._pool = pool
        self._events = events
        self._decisions = decisions
        self._peers = peers
        self._memory = ScalingMemory()
        self._next_depth_probe_at = 0.0
        self._broker_warned = False
        self._previous_depth: tuple[float, int] | None = None
        self.depth: QueueDepth | None = None
        self.dead = self.delayed = 0
        self.enqueue_rate = 0.0

    async def desired_workers(self, now: float) -> int | None:
        """How many workers the policy wants now; ``None`` if the queue cannot be read."""
        try:
            self.depth = await self._broker.depth()
            if now >= self._next_depth_probe_at:
                self._next_depth_probe_at = now + 5 * self._farm.heartbeat_interval_s
                self.dead, self.delayed = await self._broker.dead_and_delayed()
            self._broker_warned = False
        except Exception as error:
            if not self._broker_warned:
                logger.warning(
                    "supervisor %s cannot read the queue depth (%s); not scaling until it can",
                    self._supervisor_id,
                    type(error).__name__,
                )
                self._broker_warned = True
            return None
        live = self._pool.live()
        rates = [rate for worker in live if (rate := worker.rate()) is not None and rate > 0]
        self._estimate_enqueue_rate(now, self.depth.ready, sum(rates))
        in_flight = sum(len(worker.in_flight) for worker in live)
        policy = ScalingPolicy(
            min_workers=self._pool.min_workers,
            max_workers=self._pool.max_workers,
            concurrency=self._farm.concurrency,
            scale_up_step=self._farm.scale_up_step,
            scale_down_step=self._farm.scale_down_step,
            cooldown_s=self._farm.scale_cooldown_s,
            target_drain_s=self._farm.target_drain_s,
        )
        # A peer silent for 3 heartbeat intervals is gone (or cut off): its count expires.
        peers_in_flight = self._peers.in_flight(now, 3 * self._farm.heartbeat_interval_s)
        load = FarmLoad(
            now=now,
            ready=self.depth.ready,
            unacked=in_flight + peers_in_flight,
            own_workers=len(live),
            busy_workers=sum(1 for worker in live if worker.in_flight),
            in_flight=in_flight,
            total_consumers=self.depth.consumers,
            jobs_per_second_per_worker=sum(rates) / len(rates) if rates else None,
        )
        decision = decide(policy, load, self._memory)
        self._memory = decision.memory
        if decision.desired_workers != len(live):
            self._events.record(
                logging.INFO,
                "scaled",
                "scaling: %s",
                decision.reason,
                supervisor_id=self._supervisor_id,
            )
            self._decisions.append(
                {
                    "at": time.time(),
                    "from": len(live),
                    "to": decision.desired_workers,
                    "reason": decision.reason,
                }
            )
        return decision.desired_workers

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
