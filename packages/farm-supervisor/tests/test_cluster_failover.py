"""A farm on a private 3-node RabbitMQ cluster keeps every confirmed job through a quorum
leader's crash, a rolling restart and the loss of a majority (issue 16).

Shortened forms of ``chaos/cluster_chaos.py``: one cluster for the module (it takes
15-25 s to form on two cores), each scenario on a queue of its own, two supervisors of
two workers each connecting to different nodes first. Each test prints its accounting.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_chaos import (
    AT_MOST_A_HANDFUL,
    ClusterChaosConfig,
    _await_whole,
    _end,
    leader_loss,
    minority_loss,
    rolling_restart,
)
from farm_testkit import Farm, start_supervisor, wait_until

from fast_app.core.queue import QueueSettings
from fast_app.core.queue.broker_urls import redact_url
from fast_app.core.queue.testing.rabbitmq_cluster import RabbitMQCluster, rabbitmq_cluster
from fast_app.farm.listener import FarmListener

# The first test also waits for the module's cluster to form.
pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq, pytest.mark.timeout(150)]

SHORT = ClusterChaosConfig(
    jobs=600,
    job_s=0.005,
    publish_per_s=50,
    restart_after_s=5,
    connect_timeout_s=3,
    settle_timeout_s=60,
)


@pytest.fixture(scope="module")
def cluster() -> Iterator[RabbitMQCluster]:
    with rabbitmq_cluster(nodes=3) as formed:
        yield formed


async def test_a_killed_quorum_leader_loses_no_confirmed_job_and_publishers_keep_going(
    cluster: RabbitMQCluster, tmp_path: Path
) -> None:
    # Given two supervisors consuming, and this process publishing through the leader's
    # node; When that node is SIGKILLed once half the jobs are confirmed, and started
    # again 5 s later
    report = await leader_loss(cluster, SHORT, tmp_path)
    print(report.render())

    # Then every confirmed job completed (none dead-lettered, none lost)
    assert report.lost == []
    assert report.dead_lettered == {}
    assert report.completed >= report.confirmed >= SHORT.jobs // 2
    # And publishing went on through the failover
    assert len(report.unconfirmed) <= AT_MOST_A_HANDFUL, list(report.unconfirmed.items())[:3]
    assert report.confirmed + len(report.unconfirmed) == report.published
    # And the farm kept draining while the node was down, nothing restarted
    assert report.completed_while_down, report.render()
    assert report.processes_intact


async def test_a_rolling_restart_leaves_nothing_lost_stuck_or_restarted(
    cluster: RabbitMQCluster, tmp_path: Path
) -> None:
    # Given two supervisors consuming jobs published at a steady pace;
    # When each node in turn is stopped, started and rejoins
    report = await rolling_restart(cluster, SHORT, tmp_path)
    print(report.render())

    # Then no confirmed job is lost, and publishing went on
    assert report.lost == []
    assert len(report.unconfirmed) <= AT_MOST_A_HANDFUL, list(report.unconfirmed.items())[:3]
    assert report.confirmed >= SHORT.jobs
    # And nothing is left ready or unacknowledged in the jobs queue
    assert (report.left_ready, report.left_unacked, report.left_by_passive_declare) == (0, 0, 0)
    # And no supervisor or worker was restarted
    assert report.supervisors_gone == []
    assert report.workers_gone == []
    assert report.workers_started_since_ready == 0


async def test_losing_the_majority_fails_queue_in_time_and_its_return_heals_without_restarts(
    cluster: RabbitMQCluster, tmp_path: Path
) -> None:
    # Given a consuming farm and jobs confirmed; When two nodes of three stop
    report = await minority_loss(cluster, SHORT, tmp_path)
    print(report.render())

    # Then queue() raised QueueUnavailableError within its bound, without hanging
    assert report.accepted_without_majority == 0
    assert report.unavailable_bound_s is not None
    assert len(report.unavailable_errors) == 2
    assert max(report.unavailable_after_s) <= report.unavailable_bound_s
    # And once one node is back, queue() succeeds again, nothing restarted
    assert report.recovered_after_s is not None, report.render()
    assert report.processes_intact
    # And every job published before was confirmed, and it and those since completed
    assert len(report.unconfirmed) == report.failed_while_recovering
    assert report.confirmed > SHORT.jobs
    assert report.lost == []
    assert report.dead_lettered == {}
    assert report.completed >= report.confirmed


async def test_a_dashboards_listener_reopens_on_another_node_when_its_node_dies(
    cluster: RabbitMQCluster, tmp_path: Path
) -> None:
    # Given a supervisor connected to node 1 first, and a dashboard's listener (robust,
    # as `fast-app top` opens it) on node 0, hearing its snapshots
    await _await_whole(cluster)
    queue_name = f"cluster-listener.{secrets.token_hex(4)}"
    farm = Farm(cluster.url, queue_name, tmp_path / "results.jsonl", tmp_path)
    await start_supervisor(
        farm,
        "--min-workers",
        "1",
        "--max-workers",
        "1",
        RABBITMQ_URL=",".join(cluster.urls[1:] + cluster.urls[:1]),
        QUEUE_REPLICAS="3",
    )
    heard: list[float] = []
    settings = QueueSettings(
        driver="async_farm", rabbitmq_url=cluster.url, name=queue_name, connect_timeout_s=3
    )
    listener = FarmListener(settings, lambda _snapshot: heard.append(time.monotonic()), robust=True)
    try:
        await listener.start()
        await wait_until(lambda: len(heard) >= 2, timeout=30, message="snapshots on node 0")
        first_node = listener.node
        assert first_node == redact_url(cluster.urls[0])

        # When node 0 dies
        killed_at = time.monotonic()
        await asyncio.to_thread(cluster.kill, 0)

        # Then the listener reopens on another node and hears the snapshots again
        await wait_until(
            lambda: listener.connected and any(at > killed_at + 0.5 for at in heard),
            timeout=30,
            message="snapshots heard through another node",
        )
        # And it says which node it is on now
        assert listener.node in {redact_url(url) for url in cluster.urls[1:]}
    finally:
        await listener.close()
        await _end(farm.supervisors)
        await _await_whole(cluster)
