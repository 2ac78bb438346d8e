"""The permissions recipe of docs/security.md, applied to the private node, does what it says.

The users are created from the recipe's own ``rabbitmqctl`` lines (with the test's queue
name in the regexes), so the documented recipe cannot drift from what is tested.
"""

from __future__ import annotations

import re
import secrets
import shlex
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import aio_pika
import farm_jobs
import pytest
from aiormq.exceptions import ChannelAccessRefused
from farm_testkit import Farm, wait_until

from fast_app.core.queue import close as close_queue
from fast_app.core.queue import configure, queue, reset_settings
from fast_app.core.queue.amqp import Topology, delay_level_ms
from fast_app.core.queue.errors import QueueConfigurationError
from fast_app.core.queue.testing.rabbitmq import RabbitMQNode

SECURITY_DOCS = Path(__file__).resolve().parents[3] / "docs" / "security.md"
RECIPE_QUEUE = r"async_farm\.jobs"  # the QUEUE_NAME the recipe is written for, escaped


@dataclass(frozen=True)
class Grant:
    """One ``rabbitmqctl set_permissions`` line of the recipe."""

    user: str
    vhost: str
    configure: str
    write: str
    read: str


def recipe_grants() -> dict[str, Grant]:
    """The recipe's ``set_permissions`` lines, by user name."""
    section = SECURITY_DOCS.read_text(encoding="utf-8").split("\n## Broker permissions\n")[1]
    found = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert found is not None, "docs/security.md: no bash block under 'Broker permissions'"
    grants = {}
    for line in found.group(1).replace("\\\n", " ").splitlines():
        words = shlex.split(line)
        if words[:2] == ["rabbitmqctl", "set_permissions"]:
            assert words[2] == "-p", line
            vhost, user, configure_, write, read = words[3:]
            grants[user] = Grant(user, vhost, configure_, write, read)
    return grants


@dataclass(frozen=True)
class Users:
    """Broker URLs of the recipe's users, for one queue."""

    farm: str
    producer: str


class BrokerUsers:
    """Adds users to the private node; deletes them when the test ends."""

    def __init__(self, node: RabbitMQNode) -> None:
        self._node = node
        self._created: list[str] = []
        self._suffix = uuid.uuid4().hex[:8]

    def add(self, user: str, vhost: str, configure_: str, write: str, read: str) -> str:
        """Add ``user`` (suffixed, unique to the test) with these permissions; its URL."""
        name, password = f"{user}-{self._suffix}", secrets.token_hex(16)
        self._rabbitmqctl("add_user", name, password)
        self._created.append(name)
        self._rabbitmqctl("set_permissions", "-p", vhost, name, configure_, write, read)
        parts = urlsplit(self._node.url)
        host = parts.netloc.rpartition("@")[2]
        return parts._replace(netloc=f"{quote(name, safe='')}:{password}@{host}").geturl()

    def delete_all(self) -> None:
        failed = [
            name
            for name in self._created
            if self._node.rabbitmqctl("delete_user", name).returncode != 0
        ]
        assert not failed, f"users left on the test node: {failed}"

    def _rabbitmqctl(self, *args: str) -> None:
        done = self._node.rabbitmqctl(*args)
        assert done.returncode == 0, f"rabbitmqctl {args[0]}: {done.stderr or done.stdout}"


@pytest.fixture
def broker_users(rabbitmq_node_session: RabbitMQNode | None) -> Iterator[BrokerUsers]:
    if rabbitmq_node_session is None:
        pytest.skip("needs the private test node (RABBITMQ_URL names another broker)")
    added = BrokerUsers(rabbitmq_node_session)
    try:
        yield added
    finally:
        added.delete_all()


@pytest.fixture
def users(broker_users: BrokerUsers, farm_queue_name: str) -> Users:
    """The recipe's farm and producer users, their regexes naming this test's queue."""
    grants = recipe_grants()
    assert set(grants) == {"fast-app-farm", "fast-app-producer"}
    urls = {
        grant.user: broker_users.add(
            grant.user,
            grant.vhost,
            *(
                regex.replace(RECIPE_QUEUE, re.escape(farm_queue_name))
                for regex in (grant.configure, grant.write, grant.read)
            ),
        )
        for grant in grants.values()
    }
    return Users(farm=urls["fast-app-farm"], producer=urls["fast-app-producer"])


@pytest.fixture
def topology(farm_queue_name: str) -> Topology:
    return Topology(farm_queue_name, "quorum", 10)


@pytest.fixture
async def producer_queue(users: Users, farm_queue_name: str) -> AsyncIterator[None]:
    """``queue()`` configured to publish as the producer user."""
    configure(
        driver="async_farm", rabbitmq_url=users.producer, name=farm_queue_name, connect_timeout_s=10
    )
    try:
        yield
    finally:
        await close_queue()
        reset_settings()


async def _declare_topology(url: str, topology: Topology) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        await topology.declare(await connection.channel())


async def _message_count(url: str, queue_name: str) -> int:
    connection = await aio_pika.connect(url)
    async with connection:
        declared = await (await connection.channel()).declare_queue(queue_name, passive=True)
        count = declared.declaration_result.message_count
        assert count is not None
        return count


async def _refusals(url: str, topology: Topology) -> dict[str, str | None]:
    """What the broker refuses ``url``'s user, each attempt on a fresh channel.

    Publishes wait for the broker's confirm, so that a refusal (which closes the channel)
    is seen rather than lost with a fire-and-forget publish.
    """
    refused: dict[str, str | None] = {}
    connection = await aio_pika.connect(url)
    async with connection:
        for exchange_name in (
            topology.control_exchange,
            topology.tombstones_exchange,
            topology.events_exchange,
        ):
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(exchange_name, ensure=False)
            try:
                await exchange.publish(aio_pika.Message(b"{}"), routing_key="any-supervisor")
                refused[f"publish to {exchange_name}"] = None
            except ChannelAccessRefused as error:
                refused[f"publish to {exchange_name}"] = str(error)

        channel = await connection.channel()
        dead = await channel.get_queue(topology.dead, ensure=False)
        try:
            await dead.get(fail=False)
            refused[f"basic.get from {topology.dead}"] = None
        except ChannelAccessRefused as error:
            refused[f"basic.get from {topology.dead}"] = str(error)

        channel = await connection.channel()
        try:
            await channel.queue_delete(topology.jobs)
            refused[f"delete {topology.jobs}"] = None
        except ChannelAccessRefused as error:
            refused[f"delete {topology.jobs}"] = str(error)
    return refused


@pytest.mark.usefixtures("producer_queue")
async def test_the_producer_user_enqueues_jobs_due_now_and_later(
    users: Users, topology: Topology, tmp_path: Path
) -> None:
    # Given the farm's user declared the topology
    await _declare_topology(users.farm, topology)

    # When the application, as the producer user, queues a job now and one for later
    await queue(farm_jobs.record, str(tmp_path / "results.jsonl"), "now")
    await queue(farm_jobs.record, str(tmp_path / "results.jsonl"), "later", __delay_s=60)

    # Then both are stored: one in the jobs queue, one in the delay queue of its level
    level = delay_level_ms(60)
    assert level is not None
    assert await _message_count(users.farm, topology.jobs) == 1
    assert await _message_count(users.farm, topology.delay_queue(level)) == 1


@pytest.mark.usefixtures("producer_queue")
async def test_the_producer_user_needs_the_farm_to_declare_the_queues_first(
    users: Users,
) -> None:
    # Given no farm declared the queues, when the producer user queues a job
    with pytest.raises(QueueConfigurationError, match=r"fast-app work") as raised:
        await queue(farm_jobs.record, "unused.jsonl", "too-early")

    # Then it is told who declares them, without its password
    assert "are not declared" in str(raised.value)
    password = urlsplit(users.producer).password
    assert password is not None
    assert password not in str(raised.value)


async def test_the_producer_user_cannot_steer_the_farm_read_dead_letters_or_delete_jobs(
    users: Users, topology: Topology
) -> None:
    # Given the farm's user declared the topology
    await _declare_topology(users.farm, topology)

    # When the producer user tries what only the farm may do
    refused = await _refusals(users.producer, topology)

    # Then the broker refuses each attempt, and the jobs queue is still there
    assert all(refused.values()), refused
    assert all("ACCESS_REFUSED" in str(reason) for reason in refused.values()), refused
    assert await _message_count(users.farm, topology.jobs) == 0


async def test_the_farm_user_may_do_all_of_those(users: Users, topology: Topology) -> None:
    # Given the farm's user declared the topology
    await _declare_topology(users.farm, topology)

    # When it does what the producer may not (the jobs queue's deletion last)
    refused = await _refusals(users.farm, topology)

    # Then the broker allows each of them
    assert not any(refused.values()), refused


async def test_a_producer_without_the_delay_queues_permissions_is_told_so(
    users: Users, broker_users: BrokerUsers, farm_queue_name: str, topology: Topology
) -> None:
    # Given the farm's user declared the topology, and a user that may only publish
    await _declare_topology(users.farm, topology)
    url = broker_users.add("fast-app-no-delays", "/", "^$", r"^amq\.default$", "^$")
    configure(driver="async_farm", rabbitmq_url=url, name=farm_queue_name, connect_timeout_s=10)
    try:
        await queue(farm_jobs.record, "unused.jsonl", "now")  # jobs due now are fine

        # When it queues a job for later, then the refusal is a configuration error
        with pytest.raises(QueueConfigurationError, match=r"ACCESS_REFUSED.*\.delay\.") as raised:
            await queue(farm_jobs.record, "unused.jsonl", "later", __delay_s=60)
        assert "lacks a permission" in str(raised.value)
        password = urlsplit(url).password
        assert password is not None
        assert password not in str(raised.value)
    finally:
        await close_queue()
        reset_settings()


@pytest.mark.usefixtures("producer_queue")
async def test_a_worker_run_as_the_farm_user_runs_the_producer_s_jobs_and_retries(
    users: Users, farm_queue_name: str, tmp_path: Path
) -> None:
    # Given a worker run as the farm's user: it declares the topology, consumes the jobs
    # and listens for tombstones on a server-named queue
    farm = Farm(users.farm, farm_queue_name, tmp_path / "results.jsonl", tmp_path)
    worker = await farm.start_worker()
    try:
        # When the producer user queues a delayed job and one that fails once, whose
        # retry the worker publishes to a delay queue
        await queue(farm_jobs.record, str(farm.results), "later", __delay_s=0.3)
        await queue(farm_jobs.flaky, str(farm.results), "flaky", 1, __retries=2)

        # Then both run, and the broker refused the worker nothing
        try:
            await wait_until(lambda: sorted(farm.tags("ran")) == ["flaky", "later"])
        except AssertionError as error:
            raise AssertionError(f"{error}; worker log:\n{worker.log()[-3000:]}") from None
        assert "ACCESS_REFUSED" not in worker.log()
    finally:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait(10)
