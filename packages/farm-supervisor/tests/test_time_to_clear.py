"""The time to clear a queue (``CLEAR`` in ``fast-app status``) counts every job left."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from farm_messages import snapshot

from fast_app.core.queue.amqp import Topology
from fast_app.farm.settings import FarmSettings
from fast_app.farm.supervisor._broker import QueueDepth
from fast_app.farm.supervisor._peers import PeerLoads
from fast_app.farm.supervisor._scaling_feed import QueueFeed


@dataclass
class _Worker:
    waiting: int


@dataclass
class _Pool:
    held: list[_Worker] = field(default_factory=list)
    min_workers: int = 1
    max_workers: int = 4
    desired: int = 1

    def live(self) -> list[_Worker]:
        return self.held


def feed_of(pool: _Pool, peers: PeerLoads) -> QueueFeed:
    feed = QueueFeed(
        supervisor_id="me",
        farm=FarmSettings(),
        broker=cast(Any, None),
        topology=Topology("q", "quorum", 10),
        pool=cast(Any, pool),
        peers=peers,
    )
    feed.depth = QueueDepth(ready=100, consumers=2)
    return feed


def test_deliveries_waiting_inside_workers_count_in_the_time_to_clear() -> None:
    # Given 100 ready, 20 running here, 50 waiting in this pool's worker and 30 in a
    # peer's, cleared at 10 jobs/s here and nothing measured on the peer
    peers = PeerLoads("me")
    peers.heard(snapshot("host-b", 1, waiting={"host-b-w0": 30}), now=10.0)
    feed = feed_of(_Pool([_Worker(waiting=50)]), peers)
    # When the snapshot's entry for the queue is built
    entry = feed.entry(now=10.5, unacked=20, completion_rate=10.0)
    # Then all 200 jobs left count: 20 s, not the 12 s of ready + running alone
    assert entry.clear_s == 20.0
