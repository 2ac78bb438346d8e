"""The farm's queues on a real broker: what ``Topology`` declares, checks and refuses."""

from __future__ import annotations

import json

import aio_pika
import pytest
from queue_core_broker import Broker, poll, rabbitmqctl

from fast_app.core.queue.amqp import Topology
from fast_app.core.queue.errors import QueueConfigurationError
from fast_app.core.queue.settings import QueueType
from fast_app.core.queue.testing.rabbitmq import RabbitMQNode

pytestmark = pytest.mark.rabbitmq


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
async def test_declare_creates_the_jobs_delay_and_dead_letter_queues_and_is_idempotent(
    broker: Broker, private_node: RabbitMQNode, queue_name: str, queue_type: QueueType
) -> None:
    # Given a topology of the chosen queue type
    topology = Topology(queue_name, queue_type, 7)

    # When it is declared twice, with a delay level each time (as every new connection does)
    async with broker.connection.channel() as channel:
        for _ in range(2):
            await topology.declare(channel)
            await topology.declare_delay(channel, 800)

        # Then the farm's exchanges exist
        for exchange in (
            topology.dead_exchange,
            topology.tombstones_exchange,
            topology.events_exchange,
            topology.control_exchange,
        ):
            await channel.declare_exchange(exchange, passive=True)

    # And its three queues exist once each, durable, of that type, with their arguments
    listing = await rabbitmqctl(
        private_node,
        "list_queues",
        "-q",
        "name",
        "type",
        "durable",
        "arguments",
        "--formatter",
        "json",
    )
    queues = {
        found["name"]: found
        for found in json.loads(listing)
        if found["name"].startswith(f"{queue_name}.") or found["name"] == queue_name
    }
    assert sorted(queues) == sorted([queue_name, topology.dead, topology.delay_queue(800)])
    assert {found["type"] for found in queues.values()} == {queue_type}
    assert all(found["durable"] for found in queues.values())
    jobs = _arguments(queues[queue_name])
    assert jobs["x-dead-letter-exchange"] == topology.dead_exchange
    assert jobs["x-dead-letter-routing-key"] == queue_name
    assert jobs.get("x-delivery-limit") == (7 if queue_type == "quorum" else None)
    delay = _arguments(queues[topology.delay_queue(800)])
    assert delay["x-message-ttl"] == 800
    assert delay["x-dead-letter-exchange"] == ""
    assert delay["x-dead-letter-routing-key"] == queue_name


def _arguments(listed: dict[str, object]) -> dict[str, object]:
    """``rabbitmqctl``'s ``[[name, type, value], ...]`` as ``{name: value}``."""
    triples = listed["arguments"]
    assert isinstance(triples, list)
    return {name: value for name, _type, value in triples}


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
async def test_a_job_rejected_from_the_jobs_queue_lands_in_the_dead_letter_queue(
    broker: Broker, queue_name: str, queue_type: QueueType
) -> None:
    # Given the declared topology and a message in the jobs queue
    topology = Topology(queue_name, queue_type, 10)
    await broker.declare(topology)
    async with broker.connection.channel() as channel:
        await channel.default_exchange.publish(
            aio_pika.Message(b"a job", message_id="job-1"), routing_key=queue_name
        )

        # When a consumer rejects it without requeueing
        jobs = await channel.get_queue(queue_name, ensure=False)

        async def take() -> aio_pika.abc.AbstractIncomingMessage | None:
            return await jobs.get(fail=False)

        message = await poll(take, message="the job")
        await message.reject(requeue=False)

    # Then the broker dead-letters it into the dead-letter queue, and nothing is left
    dead = await broker.get(topology.dead)
    assert (dead.body, dead.message_id) == (b"a job", "job-1")
    assert await broker.message_count(queue_name) == 0


async def test_declaring_over_a_queue_with_another_delivery_limit_names_the_setting(
    broker: Broker, queue_name: str
) -> None:
    # Given the jobs queue declared with a delivery limit of 20
    await broker.declare(Topology(queue_name, "quorum", 20))

    # When a publisher configured with a limit of 5 declares it
    with pytest.raises(QueueConfigurationError) as raised:
        await broker.declare(Topology(queue_name, "quorum", 5))

    # Then the error names the queue, the setting behind the argument and the way out
    message = str(raised.value)
    assert repr(queue_name) in message
    assert "its x-delivery-limit differs from what QUEUE_DELIVERY_LIMIT asks for" in message
    assert "received '5' but current is '20'" in message
    assert "use another QUEUE_NAME" in message
    # And the queue was left as it was
    await broker.declare(Topology(queue_name, "quorum", 20))


async def test_replicas_are_declared_on_every_quorum_queue_and_named_when_they_differ(
    broker: Broker, private_node: RabbitMQNode, queue_name: str
) -> None:
    # Given a farm asking for 1 replica (QUEUE_REPLICAS=1, this node being the cluster)
    topology = Topology(queue_name, "quorum", 10, replicas=1)

    # When its queues are declared
    async with broker.connection.channel() as channel:
        await topology.declare(channel)
        await topology.declare_delay(channel, 800)

    # Then the jobs, dead-letter and delay queues each have that initial group size
    listing = await rabbitmqctl(
        private_node, "list_queues", "-q", "name", "arguments", "--formatter", "json"
    )
    sizes = {
        found["name"]: _arguments(found).get("x-quorum-initial-group-size")
        for found in json.loads(listing)
        if found["name"].startswith(queue_name)
    }
    assert sizes == {queue_name: 1, topology.dead: 1, topology.delay_queue(800): 1}

    # And a farm asking for another number is told which setting differs
    with pytest.raises(QueueConfigurationError) as raised:
        await broker.declare(Topology(queue_name, "quorum", 10, replicas=3))
    assert "differs from what QUEUE_REPLICAS asks for" in str(raised.value)


@pytest.mark.parametrize(
    ("existing", "wanted"), [("classic", "quorum"), ("quorum", "classic")], ids=lambda t: t
)
async def test_declaring_over_a_queue_of_the_other_type_is_a_configuration_error(
    broker: Broker, queue_name: str, existing: QueueType, wanted: QueueType
) -> None:
    # Given the jobs queue declared with one queue type
    await broker.declare(Topology(queue_name, existing, 10))

    # When a publisher configured with the other type declares it
    with pytest.raises(QueueConfigurationError) as raised:
        await broker.declare(Topology(queue_name, wanted, 10))

    # Then the error names the queue, the broker's refusal and the way out
    message = str(raised.value)
    assert repr(queue_name) in message
    assert "PRECONDITION_FAILED" in message
    assert "use another QUEUE_NAME" in message
    # And the queue was left as it was
    await broker.declare(Topology(queue_name, existing, 10))


@pytest.mark.parametrize(("existing", "declared"), [("classic", "quorum"), ("quorum", "classic")])
async def test_declaring_over_a_queue_of_the_other_type_names_queue_type(
    broker: Broker, queue_name: str, existing: str, declared: str
) -> None:
    await broker.declare(Topology(queue_name, existing, 10))

    with pytest.raises(QueueConfigurationError) as raised:
        await broker.declare(Topology(queue_name, declared, 10))

    assert "QUEUE_TYPE" in str(raised.value)


async def test_check_declared_needs_the_jobs_queue_and_the_dead_letter_exchange(
    broker: Broker, queue_name: str
) -> None:
    topology = Topology(queue_name, "quorum", 10)

    # Given nothing declared, then the check says who declares the queues
    with pytest.raises(QueueConfigurationError, match=r"are not declared.*fast-app work"):
        await broker.check_declared(topology)

    # Given only the jobs queue (its dead letters would be dropped), then it still refuses
    async with broker.connection.channel() as channel:
        await channel.declare_queue(
            queue_name,
            durable=True,
            arguments=topology.jobs_arguments(),  # type: ignore[arg-type]
        )
    with pytest.raises(QueueConfigurationError, match=r"are not declared"):
        await broker.check_declared(topology)

    # Given the whole topology, then the check passes
    await broker.declare(topology)
    await broker.check_declared(topology)
