"""Pure parts of named queues on the farm: FARM_QUEUES, queue-wait figures, peers per queue,
and set_limits for one queue's pool."""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import statistics
from typing import Any

import pytest
from farm_messages import heartbeat, snapshot

from fast_app.farm.errors import FarmConfigurationError
from fast_app.farm.messages import SetLimits
from fast_app.farm.messages.snapshots import QueueEntry, QueueFigures, WorkerEntry
from fast_app.farm.settings import FarmSettings, load_farm_settings
from fast_app.farm.supervisor._commands import carry_out
from fast_app.farm.supervisor._events import EventLog
from fast_app.farm.supervisor._job_figures import JobFigures
from fast_app.farm.supervisor._peers import PeerLoads
from fast_app.farm.supervisor._pool import WorkerPool
from fast_app.farm.supervisor._pools import QueuePools
from fast_app.farm.supervisor._queue_waits import QueueWaitWindow
from fast_app.farm.supervisor._snapshot import RecentJobEnds
from fast_app.farm.worker._statistics import QueueWaits


def test_farm_queues_resolve_each_pool_s_limits() -> None:
    farm = load_farm_settings(
        queues="emails=1..3, reports=0..8 ,bulk", min_workers=1, max_workers=9
    )

    pools = [(p.queue, p.min_workers, p.max_workers) for p in farm.queue_pools("jobs")]

    assert pools == [("emails", 1, 3), ("reports", 0, 8), ("bulk", 1, 9)]
    # unset: QUEUE_NAME alone, with FARM_MIN_WORKERS..FARM_MAX_WORKERS, as before
    alone = load_farm_settings(min_workers=2, max_workers=5).queue_pools("jobs")
    assert [(p.queue, p.min_workers, p.max_workers) for p in alone] == [("jobs", 2, 5)]


@pytest.mark.parametrize(
    ("queues", "problem"),
    [
        ("emails=3..1", "not below the minimum"),
        ("emails=1..0", "at least 1"),
        ("emails=1-4", "min..max"),
        ("emails,emails", "listed twice"),
        ("emails.dead", "companion"),
        ("e mails", "queue name"),
        ("a=3..4,b=3..4", "add up to 6, above FARM_MAX_WORKERS (4)"),
    ],
)
def test_invalid_farm_queues_are_refused_naming_the_variable(queues: str, problem: str) -> None:
    with pytest.raises(FarmConfigurationError, match="FARM_QUEUES") as raised:
        load_farm_settings(queues=queues, max_workers=4)

    assert problem in str(raised.value)


def test_a_worker_reports_a_fair_sample_of_its_queue_waits_and_the_longest() -> None:
    waits = QueueWaits(listed=101, seed=7)
    values = [n / 1000 for n in range(10_000)]  # 0 .. 9.999 s

    for value in values:
        waits.add(value)
    taken = waits.take()

    assert len(taken) == 101
    assert taken[-1] == 9.999  # the longest, always
    assert abs(statistics.median(taken[:-1]) - statistics.median(values)) < 1.0
    assert waits.take() == []
    # few starts: every wait, no sample
    waits.add(0.5)
    assert waits.take() == [0.5]


def test_queue_wait_figures_cover_the_last_minute_only() -> None:
    window = QueueWaitWindow(window_s=60)
    window.add(0.0, [5.0, 9.0])
    window.add(30.0, [0.1, 0.2, 0.3])

    now = window.figures(59.0)
    assert (now.p50_s, now.max_s, now.counted) == (0.3, 9.0, 5)
    later = window.figures(61.0)
    assert (later.p50_s, later.max_s, later.counted) == (0.2, 0.3, 3)
    assert window.figures(100.0).p50_s is None


def _worker(worker_id: str, queue: str | None, in_flight: int) -> WorkerEntry:
    beat = heartbeat(worker_id, state="busy")
    return WorkerEntry(
        worker_id=worker_id,
        pid=1,
        state="busy",
        in_flight=[],
        in_flight_count=in_flight,
        counters=beat.counters,
        rss_bytes=None,
        uptime_s=1.0,
        heartbeat_age_s=0.1,
        rate=None,
        queue=queue,
    )


def _entry(name: str, rate: float) -> QueueEntry:
    return QueueEntry(
        name=name,
        min_workers=0,
        max_workers=4,
        desired_workers=1,
        workers=1,
        figures=QueueFigures(ready=0, unacked=0, consumers=1, dead=0, delayed=0),
        completion_rate=rate,
        enqueue_rate=0.0,
    )


def test_peers_count_per_queue_and_cannot_claim_more_than_their_workers_hold() -> None:
    peers = PeerLoads("me")
    heard: Any = snapshot(
        "peer",
        concurrency=16,
        workers=[
            _worker("p-w1", "emails", 3),
            _worker("p-w2", "reports", 500),
            _worker("p-w3", None, 2),
        ],
        queues=[_entry("emails", 4.0), _entry("reports", 10.0)],
    )

    peers.heard(heard, now=10.0)

    concurrency = heard.settings.concurrency
    assert peers.in_flight(10.5, 3.0, "emails") == 3
    assert peers.in_flight(10.5, 3.0, "reports") == concurrency  # capped by one worker's slots
    assert peers.in_flight(10.5, 3.0, heard.settings.queue) == 2  # no queue: the farm's
    assert peers.completion_rate(10.5, 3.0, "reports") == 10.0
    assert peers.in_flight(20.0, 3.0, "emails") == 0  # silent too long: forgotten


def _pools(**limits: tuple[int, int]) -> QueuePools:
    farm = FarmSettings(max_workers=6)
    numbers = itertools.count(1)
    return QueuePools(
        {
            queue: WorkerPool(
                supervisor_id="s",
                farm=farm,
                environment=dict,
                output=None,
                events=EventLog(logging.getLogger("test")),
                failures=collections.deque(),
                recent=RecentJobEnds(),
                figures=JobFigures("jobs", 0.0),
                stopping=asyncio.Event(),
                queue=queue,
                limits=bounds,
                numbers=numbers,
            )
            for queue, bounds in limits.items()
        },
        max_workers=6,
    )


async def _set(pools: QueuePools, **fields: Any) -> bool:
    command = SetLimits(sender="test", sent_at=0.0, id="x", **fields)
    return await carry_out(
        command, pools, grace_period_s=1, stopping=asyncio.Event(), request_stop=lambda: None
    )


async def test_set_limits_changes_one_queue_s_pool_within_the_overall_max() -> None:
    pools = _pools(emails=(1, 3), reports=(1, 5))

    assert await _set(pools, queue="reports", min_workers=2, max_workers=8)
    assert (pools.pools["reports"].min_workers, pools.pools["reports"].max_workers) == (2, 8)
    # minimums that would not fit under the overall max are refused
    assert not await _set(pools, queue="emails", min_workers=5)
    assert pools.pools["emails"].min_workers == 1
    # a queue it does not serve is refused
    assert not await _set(pools, queue="other", max_workers=2)
    # without a queue: the overall max, never below the minimums' sum
    assert await _set(pools, max_workers=4)
    assert pools.max_workers == 4
    assert not await _set(pools, max_workers=2)
    assert not await _set(pools, min_workers=1)


async def test_set_limits_without_a_queue_on_a_single_queue_supervisor_sets_its_pool() -> None:
    pools = _pools(jobs=(1, 4))

    assert await _set(pools, min_workers=2, max_workers=8)

    assert (pools.pools["jobs"].min_workers, pools.pools["jobs"].max_workers) == (2, 8)
    assert pools.max_workers == 8
