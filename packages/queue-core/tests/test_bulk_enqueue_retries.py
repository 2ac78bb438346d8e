"""``Publisher.publish_many`` publishes again what a broken connection or a nack left
unstored, as ``publish`` does, until its bound runs out (real broker)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import queue_core_jobs as jobs
from queue_core_broker import Broker, connections_named, poll, rabbitmqctl

from fast_app.core.queue import QueueUnavailableError
from fast_app.core.queue.amqp import Publisher, Topology, _batch_publishing
from fast_app.core.queue.amqp.publisher import OutgoingJob
from fast_app.core.queue.testing.rabbitmq import RabbitMQNode
from fast_app.core.queue.worker_side import prepare

pytestmark = pytest.mark.rabbitmq

MakePublisher = Callable[..., Publisher]


def a_job(*args: Any, queue: Topology | None = None) -> OutgoingJob:
    """A job as ``queue_many()`` hands it to the publisher."""
    job = prepare(jobs.record, args, {}, max_payload_bytes=256 * 1024, allow_unportable=False)
    return OutgoingJob(job.body, job.envelope, job.headers, queue)


async def stored_ids(broker: Broker, queue_name: str) -> Counter[str]:
    """How many times each job id is stored in ``queue_name`` (taking the messages)."""
    count = await broker.message_count(queue_name)
    return Counter([(await broker.get(queue_name)).message_id or "" for _ in range(count)])


async def blocked(node: RabbitMQNode, connection: str) -> bool | None:
    """``True`` once the broker blocks ``connection`` (it published under the alarm)."""
    listing = await rabbitmqctl(
        node, "list_connections", "-q", "--no-table-headers", "pid", "state"
    )
    return any(connection in line and "blocked" in line for line in listing.splitlines()) or None


@contextlib.asynccontextmanager
async def refusing(node: RabbitMQNode, queue_name: str) -> AsyncIterator[Callable[[], Any]]:
    """A policy that makes ``queue_name`` nack every publish (reject-publish over a length
    limit of 0: a quorum queue refuses once it holds more than the limit, so it must hold
    a message already); yields an awaitable that lifts it early."""
    policy = f"full-{queue_name}"
    await rabbitmqctl(
        node,
        "set_policy",
        "--apply-to",
        "queues",
        policy,
        f"^{re.escape(queue_name)}$",
        '{"max-length": 0, "overflow": "reject-publish"}',
    )
    lifted = False

    async def lift() -> None:
        nonlocal lifted
        if not lifted:
            lifted = True
            await rabbitmqctl(node, "clear_policy", policy)

    try:
        yield lift
    finally:
        await lift()


@pytest.mark.parametrize("path", ["one write per window", "one basic_publish per job"])
async def test_a_batch_held_unconfirmed_when_its_connection_breaks_is_stored_whole(
    broker: Broker,
    private_node: RabbitMQNode,
    publisher_for: MakePublisher,
    queue_name: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
) -> None:
    if path == "one basic_publish per job":
        monkeypatch.setattr(_batch_publishing, "can_frame", lambda channel: False)
    # Given a connected publisher, and a broker holding what it publishes unconfirmed
    publisher = publisher_for(Topology(queue_name, "quorum", 10), timeout_s=30)
    first = a_job("connects")
    await publisher.publish(first.body, first.envelope)
    name = f"{request.node.nodeid} (publisher)"
    [connection] = await connections_named(private_node, name)
    batch = [a_job(n) for n in range(50)]
    async with private_node.memory_alarm():
        # When a batch of 5 windows is published: 2 go out and wait for their confirms
        publishing = asyncio.ensure_future(publisher.publish_many(batch, window=10))
        await poll(
            lambda: blocked(private_node, connection),
            timeout=10,
            message="the publisher's connection blocked",
        )
        # And its connection breaks (its node went) with those jobs unconfirmed
        await rabbitmqctl(private_node, "close_connection", connection, "closed by the test")

        # Then the batch opens a new connection to publish them again (and the rest)
        async def reconnected() -> list[str] | None:
            connections = await connections_named(private_node, name)
            return connections if connections and connection not in connections else None

        await poll(reconnected, timeout=10, message="the publisher to connect again")
        assert not publishing.done()

    # And once the broker takes messages again, every slot of the batch is empty: stored
    assert await asyncio.wait_for(publishing, 30) == [None] * 50
    # And every job is stored, at least once (those in flight at the break maybe twice)
    stored = await stored_ids(broker, queue_name)
    assert set(stored) == {first.envelope.id} | {job.envelope.id for job in batch}


async def test_a_job_of_a_batch_the_broker_nacked_is_published_again_until_stored(
    broker: Broker,
    private_node: RabbitMQNode,
    publisher_for: MakePublisher,
    queue_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a queue that nacks every publish for now (holding one job), beside a default one
    publisher = publisher_for(Topology(queue_name, "quorum", 10), timeout_s=10)
    full = Topology(f"{queue_name}.full", "quorum", 10)
    earlier = a_job("earlier", queue=full)
    await publisher.publish(earlier.body, earlier.envelope, queue=full)
    async with refusing(private_node, full.jobs) as lift:
        # And the refusal lifted once the batch has had a nack (when it replaces the
        # channel that nacked, before publishing the job again)
        nacks: list[object] = []
        replace = Publisher.replace_nacked_channel

        async def lift_then_replace(self: Publisher, nacked: Any) -> None:
            nacks.append(nacked)
            await lift()
            await replace(self, nacked)

        monkeypatch.setattr(Publisher, "replace_nacked_channel", lift_then_replace)

        # When a batch has a job for it between jobs for the default queue
        batch = [a_job(1), a_job("refused at first", queue=full), a_job(3)]
        results = await publisher.publish_many(batch)

    # Then every slot is empty: the nacked job was published again, and stored
    assert nacks
    assert results == [None, None, None]
    assert await stored_ids(broker, full.jobs) == Counter(
        [earlier.envelope.id, batch[1].envelope.id]
    )
    # And the others were stored once each: the channel was replaced only once every
    # confirm of the round had come, none lost with it
    assert await stored_ids(broker, queue_name) == Counter(
        [batch[0].envelope.id, batch[2].envelope.id]
    )


async def test_jobs_the_broker_keeps_refusing_fail_in_their_slots_once_the_bound_runs_out(
    broker: Broker, private_node: RabbitMQNode, publisher_for: MakePublisher, queue_name: str
) -> None:
    # Given a publisher with a bound of 1 s, and a queue that nacks every publish
    publisher = publisher_for(Topology(queue_name, "quorum", 10), timeout_s=1.0)
    full = Topology(f"{queue_name}.full", "quorum", 10)
    earlier = a_job("earlier", queue=full)
    await publisher.publish(earlier.body, earlier.envelope, queue=full)
    async with refusing(private_node, full.jobs):
        batch = [a_job(1), a_job("refused", queue=full), a_job(3), a_job("too", queue=full)]
        started = time.monotonic()

        # When a batch has jobs for it between jobs for the default queue
        results = await publisher.publish_many(batch)
        elapsed = time.monotonic() - started

    # Then it returns once the broker made no progress for the bound (acked nothing
    # more while nacking the refused jobs again and again), not before, not much later
    assert 0.95 <= elapsed < 1.25 * 1.0 + 1.0
    # And the jobs of the default queue are stored, once each
    ok_first, refused, ok_third, refused_too = results
    assert ok_first is None and ok_third is None
    assert await stored_ids(broker, queue_name) == Counter(
        [batch[0].envelope.id, batch[2].envelope.id]
    )
    # And each refused job fails in its slot: the broker, the bound, the nack, the tries
    for job, error in ((batch[1], refused), (batch[3], refused_too)):
        assert isinstance(error, QueueUnavailableError)
        message = str(error)
        assert message.startswith(
            f"the broker at amqp://guest:***@{broker.url.rpartition('@')[2]} did not take "
            f"job {job.envelope.id} within 1s (QUEUE_CONNECT_TIMEOUT_S): the broker "
            "answered Basic.Nack (not stored) (published "
        ), message
        assert "guest:guest@" not in message
    assert await stored_ids(broker, full.jobs) == Counter([earlier.envelope.id])
