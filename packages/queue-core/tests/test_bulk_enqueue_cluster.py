"""``Publisher.publish_many`` on a private 3-node RabbitMQ cluster: a batch whose node dies
mid-batch is stored whole through the next node of the URL list.

One cluster for the module (it takes 15-30 s to form on two cores).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import queue_core_jobs as jobs
from queue_core_broker import Broker, poll

from fast_app.core.queue.amqp import Publisher, Topology, _batch_publishing
from fast_app.core.queue.amqp.publisher import OutgoingJob
from fast_app.core.queue.broker_urls import redact_url
from fast_app.core.queue.testing.rabbitmq_cluster import RabbitMQCluster, rabbitmq_cluster
from fast_app.core.queue.worker_side import prepare

# The first test also waits for the module's cluster to form.
pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq, pytest.mark.timeout(150)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[RabbitMQCluster]:
    with rabbitmq_cluster(nodes=3) as formed:
        yield formed


@pytest.fixture
async def publisher(
    cluster: RabbitMQCluster, queue_name: str, request: pytest.FixtureRequest
) -> AsyncIterator[Publisher]:
    """A publisher of the whole cluster, node 0 first in its URL list."""
    made = Publisher(
        cluster.url,
        redacted_url=redact_url(cluster.url),
        topology=Topology(queue_name, "quorum", 10),
        timeout_s=15,
        connection_name=f"{request.node.nodeid} (publisher)",
    )
    try:
        yield made
    finally:
        await made.close()


def a_job(*args: Any) -> OutgoingJob:
    job = prepare(jobs.record, args, {}, max_payload_bytes=256 * 1024, allow_unportable=False)
    return OutgoingJob(job.body, job.envelope, job.headers)


async def queue_row(cluster: RabbitMQCluster, index: int, name: str) -> dict[str, Any] | None:
    """The queue's ``leader`` and ``online`` replicas as node ``index`` lists them."""
    listed = await asyncio.to_thread(
        cluster.rabbitmqctl, index, "list_queues", "name", "leader", "online", "--formatter", "json"
    )
    if listed.returncode != 0:
        return None
    rows: dict[str, dict[str, Any]] = {row["name"]: row for row in json.loads(listed.stdout)}
    return rows.get(name)


async def test_a_batch_whose_node_dies_mid_batch_is_stored_whole_through_the_next_node(
    cluster: RabbitMQCluster,
    publisher: Publisher,
    queue_name: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a publisher connected to node 0, the leader of its quorum queue, which has a
    # replica online on each node
    first = a_job("connects")
    await publisher.publish(first.body, first.envelope)

    async def replicated() -> dict[str, Any] | None:
        row = await queue_row(cluster, 1, queue_name)
        return row if row is not None and len(row["online"]) == 3 else None

    row = await poll(replicated, timeout=30, message="a replica of the queue on each node")
    assert row["leader"] == cluster.node_names[0]

    # And a batch of 8 windows, whose node is SIGKILLed once 2 are sent: the jobs in
    # flight lose their confirms, the queue must elect another leader (meanwhile
    # RabbitMQ 3.10 nacks publishes to it), the rest is not sent yet
    sent: list[int] = []
    send_window = _batch_publishing.BatchPublisher._send_window

    async def send_then_kill_the_node(self: Any, outgoing: Any) -> Any:
        window = await send_window(self, outgoing)
        sent.append(len(outgoing))
        if len(sent) == 2:
            await asyncio.to_thread(cluster.kill, 0)
        return window

    monkeypatch.setattr(_batch_publishing.BatchPublisher, "_send_window", send_then_kill_the_node)
    batch = [a_job(n) for n in range(400)]

    # When the batch is published
    results = await publisher.publish_many(batch, window=50)

    # Then every slot is empty: each job was confirmed, through another node
    assert sent[:2] == [50, 50] and sum(sent) >= 400
    assert results == [None] * 400
    # And every job is stored, at least once (those in flight at the kill maybe twice)
    broker = await Broker.connect(cluster.urls[1], request.node.nodeid)
    try:
        count = await broker.message_count(queue_name)
        stored = Counter([(await broker.get(queue_name)).message_id or "" for _ in range(count)])
    finally:
        await broker.close()
    assert set(stored) == {first.envelope.id} | {job.envelope.id for job in batch}
