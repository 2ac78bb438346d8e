"""``Publisher`` on a real broker: confirmed jobs, delays, dead letters, outages, permissions."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import queue_core_jobs as jobs
from queue_core_broker import (
    Broker,
    add_user,
    connections_named,
    delete_user,
    poll,
    rabbitmqctl,
)

from fast_app.core.queue import QueueConfigurationError, QueueUnavailableError
from fast_app.core.queue.amqp import Publisher, Topology, job_properties, signature_matches
from fast_app.core.queue.amqp import headers as h
from fast_app.core.queue.drivers import Submission
from fast_app.core.queue.envelope import CONTENT_TYPE, decode_envelope
from fast_app.core.queue.testing.rabbitmq import RabbitMQNode
from fast_app.core.queue.worker_side import prepare

pytestmark = pytest.mark.rabbitmq

MakePublisher = Callable[..., Publisher]


def a_job(function: Callable[..., Any] = jobs.record, *args: Any, **kwargs: Any) -> Submission:
    """A job as ``queue()`` hands it to a driver."""
    return prepare(function, args, kwargs, max_payload_bytes=256 * 1024, allow_unportable=False)


async def test_a_published_job_is_stored_with_its_properties_and_signature(
    broker: Broker, publisher_for: MakePublisher, queue_name: str
) -> None:
    # Given a publisher with a signing key
    key = secrets.token_bytes(32)
    publisher = publisher_for(Topology(queue_name, "quorum", 10), signing_key=key)
    job = a_job(jobs.send_welcome_email, "u1", __soft_timeout_s=30, __hard_timeout_s=60)

    # When it publishes a job with a trace header
    await publisher.publish(job.body, job.envelope, extra_headers={"traceparent": "00-ab-cd-01"})

    # Then the job is stored by the time publish returns (the broker confirmed it)
    assert await broker.message_count(queue_name) == 1
    message = await broker.get(queue_name)
    assert decode_envelope(message.body) == job.envelope
    # And its properties say what it is without decoding the body
    envelope = job.envelope
    assert message.message_id == envelope.id
    assert message.type == "queue_core_jobs.send_welcome_email"
    assert message.content_type == CONTENT_TYPE
    assert message.delivery_mode == 2  # persistent
    assert message.timestamp == dt.datetime.fromtimestamp(int(envelope.enqueued_at), dt.UTC)
    headers = message.headers
    assert headers[h.SOFT_TIMEOUT] == 30
    assert headers[h.HARD_TIMEOUT] == 60
    assert headers["traceparent"] == "00-ab-cd-01"
    # And its signature is the body's under the key, and no other key's
    assert signature_matches(message.body, headers[h.SIGNATURE], key)
    assert not signature_matches(message.body, headers[h.SIGNATURE], secrets.token_bytes(32))


async def test_without_a_signing_key_a_job_carries_no_signature(
    broker: Broker, publisher_for: MakePublisher, queue_name: str
) -> None:
    publisher = publisher_for(Topology(queue_name, "classic", 10))
    job = a_job(jobs.record, "plain")

    await publisher.publish(job.body, job.envelope)

    message = await broker.get(queue_name)
    assert message.message_id == job.envelope.id
    assert h.SIGNATURE not in message.headers


async def test_a_delayed_job_waits_in_its_delay_level_then_returns_to_the_jobs_queue(
    broker: Broker, publisher_for: MakePublisher, queue_name: str
) -> None:
    # Given a job due in one second
    topology = Topology(queue_name, "quorum", 10)
    publisher = publisher_for(topology)
    job = a_job(jobs.record, "later", __delay_s=1.0)
    started = time.monotonic()

    # When it is published
    await publisher.publish(job.body, job.envelope)

    # Then it waits in the largest delay level not above its delay (800 ms), not in the jobs
    level_queue = topology.delay_queue(800)
    assert await broker.message_count(level_queue) == 1
    assert await broker.message_count(queue_name) == 0
    # And that level's TTL sends it back to the jobs queue, no earlier
    message = await broker.get(queue_name, timeout=10)
    assert time.monotonic() - started >= 0.79
    assert decode_envelope(message.body) == job.envelope
    [death] = message.headers["x-death"]
    assert (death["queue"], death["reason"]) == (level_queue, "expired")
    assert await broker.message_count(level_queue) == 0


async def test_a_job_due_within_the_shortest_level_goes_straight_to_the_jobs_queue(
    broker: Broker, publisher_for: MakePublisher, queue_name: str
) -> None:
    publisher = publisher_for(Topology(queue_name, "quorum", 10))
    job = a_job(jobs.record, "soon", __delay_s=0.05)

    await publisher.publish(job.body, job.envelope)

    assert await broker.message_count(queue_name) == 1


async def test_publish_dead_stores_the_message_in_the_dead_letter_queue(
    broker: Broker, publisher_for: MakePublisher, queue_name: str
) -> None:
    # Given a job's message with the dead-letter headers a worker adds
    topology = Topology(queue_name, "quorum", 10)
    publisher = publisher_for(topology)
    job = a_job(jobs.record, "doomed")
    properties = job_properties(
        job.body, job.envelope, signing_key=None, extra_headers={h.DEAD_REASON: "failed"}
    )

    # When it is published as a dead letter
    await publisher.publish_dead(job.body, properties, job.envelope.id)

    # Then it is in the dead-letter queue, headers and all, and not in the jobs queue
    assert await broker.message_count(queue_name) == 0
    dead = await broker.get(topology.dead)
    assert (dead.body, dead.message_id) == (job.body, job.envelope.id)
    assert dead.headers[h.DEAD_REASON] == "failed"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP server that accepts connections and never says a word (a hung broker)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield int(server.getsockname()[1])


@pytest.mark.parametrize("where", ["closed port", "hung broker"])
async def test_an_unreachable_broker_raises_within_the_timeout_without_the_password(
    publisher_for: MakePublisher, queue_name: str, silent_port: int, where: str
) -> None:
    # Given a publisher of a broker that refuses connections, or accepts and never answers
    port = _closed_port() if where == "closed port" else silent_port
    url = f"amqp://app:pa55-{secrets.token_hex(8)}@127.0.0.1:{port}/"
    publisher = publisher_for(Topology(queue_name, "quorum", 10), url=url, timeout_s=1.0)
    job = a_job()
    started = time.monotonic()

    # When it publishes a job
    with pytest.raises(QueueUnavailableError) as raised:
        await publisher.publish(job.body, job.envelope)

    # Then it fails within the bound (checked a few times per bound), naming the broker
    assert time.monotonic() - started < 1.25 * 1.0 + 0.5
    message = str(raised.value)
    assert f"amqp://app:***@127.0.0.1:{port}/" in message
    assert job.envelope.id in message
    # And never the password, in the message or a chained exception
    password = urlsplit(url).password
    assert password is not None
    assert password not in message
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


async def test_a_wrong_password_is_unavailable_and_not_shown(
    rabbitmq_url: str, publisher_for: MakePublisher, queue_name: str
) -> None:
    parts = urlsplit(rabbitmq_url)
    password = f"wrong-{secrets.token_hex(8)}"
    url = parts._replace(netloc=f"guest:{password}@{parts.hostname}:{parts.port}").geturl()
    publisher = publisher_for(Topology(queue_name, "quorum", 10), url=url, timeout_s=2.0)
    job = a_job()

    with pytest.raises(QueueUnavailableError) as raised:
        await publisher.publish(job.body, job.envelope)

    assert "ACCESS_REFUSED" in str(raised.value)
    assert password not in str(raised.value)


async def test_a_job_the_broker_refuses_to_store_raises_instead_of_returning(
    broker: Broker, private_node: RabbitMQNode, publisher_for: MakePublisher, queue_name: str
) -> None:
    # Given a jobs queue holding one job, over the length limit of a policy that makes the
    # broker refuse (nack) new messages instead of dropping old ones (a quorum queue
    # checks the limit before storing, so it refuses only once it holds more than it)
    publisher = publisher_for(Topology(queue_name, "quorum", 10))
    stored = a_job(jobs.record, "stored")
    await publisher.publish(stored.body, stored.envelope)
    policy = f"full-{queue_name}"
    await rabbitmqctl(
        private_node,
        "set_policy",
        "--apply-to",
        "queues",
        policy,
        f"^{re.escape(queue_name)}$",
        '{"max-length": 0, "overflow": "reject-publish"}',
    )
    try:
        # When another job is published
        refused = a_job(jobs.record, "refused")
        with pytest.raises(QueueUnavailableError, match=r"Nack") as raised:
            await publisher.publish(refused.body, refused.envelope)
    finally:
        await rabbitmqctl(private_node, "clear_policy", policy)

    # Then publish raised, naming the job, and only the first job is stored
    assert refused.envelope.id in str(raised.value)
    assert await broker.message_count(queue_name) == 1


async def test_the_publisher_reconnects_after_the_broker_closed_its_connection(
    broker: Broker,
    private_node: RabbitMQNode,
    publisher_for: MakePublisher,
    queue_name: str,
    request: pytest.FixtureRequest,
) -> None:
    # Given a publisher that published a job, on a connection named after the test
    publisher = publisher_for(Topology(queue_name, "quorum", 10))
    first = a_job(jobs.record, "first")
    await publisher.publish(first.body, first.envelope)
    name = f"{request.node.nodeid} (publisher)"
    [closed] = await connections_named(private_node, name)

    # When the broker closes that connection (it is gone once the client acknowledged)
    await rabbitmqctl(private_node, "close_connection", closed, "closed by the test")

    async def gone() -> bool | None:
        return closed not in await connections_named(private_node, name) or None

    await poll(gone, message="the broker to close the connection")

    # Then the next job is published on a new connection, with the same name
    second = a_job(jobs.record, "second")
    await publisher.publish(second.body, second.envelope)
    reopened = await connections_named(private_node, name)
    assert len(reopened) == 1
    assert reopened != [closed]
    # And both jobs are stored
    assert await broker.message_count(queue_name) == 2


async def test_a_user_that_may_not_configure_the_queues_publishes_once_they_are_declared(
    broker: Broker, private_node: RabbitMQNode, publisher_for: MakePublisher, queue_name: str
) -> None:
    # Given a producer user: it may publish, but configure nothing and read nothing
    url = await add_user(private_node, configure="^$", write=".*", read="^$")
    try:
        topology = Topology(queue_name, "quorum", 10)
        publisher = publisher_for(topology, url=url)
        job = a_job()

        # When it publishes before the farm declared the queues, then it is told who may
        with pytest.raises(
            QueueConfigurationError, match=r"are not declared.*fast-app work"
        ) as raised:
            await publisher.publish(job.body, job.envelope)
        password = urlsplit(url).password
        assert password is not None
        assert password not in str(raised.value)

        # When the farm's user has declared them, then its declare is refused, it only
        # checks that they exist, and the job is stored
        await broker.declare(topology)
        await publisher.publish(job.body, job.envelope)
        assert await broker.message_count(queue_name) == 1
    finally:
        await delete_user(private_node, url)


async def test_a_list_of_nodes_connects_to_the_first_that_accepts(
    broker: Broker, publisher_for: MakePublisher, queue_name: str, rabbitmq_url: str
) -> None:
    # Given a list whose first node is down
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        down = int(probe.getsockname()[1])
    publisher = publisher_for(
        Topology(queue_name, "quorum", 10),
        url=f"amqp://guest:guest@127.0.0.1:{down}/,{rabbitmq_url}",
    )

    # When a job is published, then it is stored through the next node
    job = a_job(jobs.record, "through the second node")
    await publisher.publish(job.body, job.envelope)
    assert await broker.message_count(queue_name) == 1


async def test_jobs_in_flight_when_their_connection_breaks_are_published_again(
    broker: Broker,
    private_node: RabbitMQNode,
    publisher_for: MakePublisher,
    queue_name: str,
    request: pytest.FixtureRequest,
) -> None:
    import asyncio

    # Given a publisher whose jobs are in flight: the broker holds them unconfirmed (a
    # memory alarm blocks publishers)
    publisher = publisher_for(Topology(queue_name, "quorum", 10), timeout_s=30)
    first = a_job(jobs.record, "connects")
    await publisher.publish(first.body, first.envelope)
    name = f"{request.node.nodeid} (publisher)"
    [connection] = await connections_named(private_node, name)
    async with private_node.memory_alarm():
        in_flight = [a_job(jobs.record, f"in flight {n}") for n in range(20)]
        publishing = [
            asyncio.ensure_future(publisher.publish(job.body, job.envelope)) for job in in_flight
        ]

        async def blocked() -> bool | None:
            listing = await rabbitmqctl(
                private_node, "list_connections", "-q", "--no-table-headers", "pid", "state"
            )
            return (
                any(connection in line and "blocked" in line for line in listing.splitlines())
                or None
            )

        await poll(blocked, timeout=10, message="the publisher's connection blocked")

        # When its connection breaks (its node went) with the jobs unconfirmed
        await rabbitmqctl(private_node, "close_connection", connection, "closed by the test")
        assert not any(task.done() for task in publishing)

    # Then every publish returns (none raises): each job was published again, on a new
    # connection, and is stored (at least once)
    await asyncio.wait_for(asyncio.gather(*publishing), 30)
    assert await broker.message_count(queue_name) >= 21
