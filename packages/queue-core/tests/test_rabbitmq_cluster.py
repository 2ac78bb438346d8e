"""The private RabbitMQ cluster of the test kit: formed, survives its quorum leader's crash,
leaves nothing behind.

One cluster for the whole module (it takes 15-30 s to form on two cores); the last test
closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel

from fast_app.core.queue import testing
from fast_app.core.queue.testing.rabbitmq_cluster import RabbitMQCluster, rabbitmq_cluster

# The first test also waits for the module's cluster to form.
pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq, pytest.mark.timeout(150)]


@pytest.fixture(scope="module")
def cluster_scope() -> Iterator[tuple[RabbitMQCluster, contextlib.ExitStack]]:
    """The module's cluster, and the stack whose closing exits ``rabbitmq_cluster()``."""
    with contextlib.ExitStack() as stack:
        yield stack.enter_context(rabbitmq_cluster(nodes=3)), stack


@pytest.fixture
def cluster(cluster_scope: tuple[RabbitMQCluster, contextlib.ExitStack]) -> RabbitMQCluster:
    return cluster_scope[0]


@pytest.fixture
def queue_name(request: pytest.FixtureRequest) -> str:
    return f"test.cluster.{request.node.name}.{uuid.uuid4().hex[:8]}"


@contextlib.asynccontextmanager
async def _channel(url: str, request: pytest.FixtureRequest) -> AsyncIterator[AbstractChannel]:
    connection = await aio_pika.connect(
        url, client_properties={"connection_name": request.node.nodeid}
    )
    async with connection:
        yield await connection.channel()  # with publisher confirms


async def _declare_quorum(channel: AbstractChannel, name: str) -> aio_pika.abc.AbstractQueue:
    return await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})


def _queue_row(cluster: RabbitMQCluster, index: int, name: str) -> dict[str, Any]:
    """The queue's ``leader``, ``members`` and ``online`` nodes, as node ``index`` lists them."""
    listed = cluster.rabbitmqctl(
        index, "list_queues", "name", "leader", "members", "online", "--formatter", "json"
    )
    assert listed.returncode == 0, listed.stderr
    rows: dict[str, dict[str, Any]] = {row["name"]: row for row in json.loads(listed.stdout)}
    assert name in rows, listed.stdout
    return rows[name]


async def _await_online(cluster: RabbitMQCluster, index: int, name: str, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(online := _queue_row(cluster, index, name)["online"]) < count:
        assert time.monotonic() < deadline, f"{name} replicas online: {online}"
        await asyncio.sleep(0.5)


async def _await_leader_elected(
    cluster: RabbitMQCluster, index: int, name: str, *, gone: str
) -> None:
    deadline = time.monotonic() + 30
    leader: object = None
    while leader in (gone, "", None):
        assert time.monotonic() < deadline, f"{name} has no leader but {leader}"
        await asyncio.sleep(0.5)
        # During the election a node may list the queue without a leader, or not at all.
        listed = cluster.rabbitmqctl(index, "list_queues", "name", "leader", "--formatter", "json")
        if listed.returncode == 0:
            rows = {row["name"]: row for row in json.loads(listed.stdout)}
            leader = rows.get(name, {}).get("leader")


def test_the_test_kit_package_exports_the_cluster() -> None:
    assert testing.RabbitMQCluster is RabbitMQCluster
    assert testing.rabbitmq_cluster is rabbitmq_cluster


async def test_every_node_is_a_running_member_and_quorum_queues_get_a_replica_on_each(
    cluster: RabbitMQCluster, queue_name: str, request: pytest.FixtureRequest
) -> None:
    # Given the formed cluster
    assert cluster.url == ",".join(cluster.urls)
    assert len(set(cluster.urls)) == 3

    # Then every node is a running member, as each node sees it
    for index in range(3):
        assert sorted(cluster.running_members(index)) == sorted(cluster.node_names)

    # And a quorum queue declared without a replica count has one on every node
    async with _channel(cluster.urls[1], request) as channel:
        await _declare_quorum(channel, queue_name)
        row = _queue_row(cluster, 2, queue_name)
        assert sorted(row["members"]) == sorted(cluster.node_names)
        await channel.queue_delete(queue_name)


async def test_a_killed_quorum_leader_leaves_the_queue_usable_and_rejoins_on_start(
    cluster: RabbitMQCluster, queue_name: str, request: pytest.FixtureRequest
) -> None:
    # Given a quorum queue holding a confirmed message, and the node leading it
    async with _channel(cluster.urls[0], request) as channel:
        await _declare_quorum(channel, queue_name)
        await _await_online(cluster, 0, queue_name, 3)
        await channel.default_exchange.publish(
            aio_pika.Message(b"before", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=queue_name,
            timeout=30,
        )
    leader = cluster.index_of(str(_queue_row(cluster, 0, queue_name)["leader"]))
    publish_via, read_via = (index for index in range(3) if index != leader)

    # When the leader's VM is killed
    cluster.kill(leader)

    # Then the other two elect a leader (until then, 3.10 nacks publishes to the queue),
    await _await_leader_elected(cluster, read_via, queue_name, gone=cluster.node_names[leader])
    # a message is confirmed through another node, and both are read through a third
    async with _channel(cluster.urls[publish_via], request) as channel:
        await channel.default_exchange.publish(
            aio_pika.Message(b"after", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=queue_name,
            timeout=30,
        )
    async with _channel(cluster.urls[read_via], request) as channel:
        queue = await channel.get_queue(queue_name, ensure=False)
        bodies = []
        for _ in range(2):
            message = await queue.get(timeout=30)
            await message.ack()
            bodies.append(message.body)
        assert bodies == [b"before", b"after"]

        # And once started again, the node is a running member with its replica online
        await asyncio.to_thread(cluster.start, leader)
        assert sorted(cluster.running_members(leader)) == sorted(cluster.node_names)
        await _await_online(cluster, read_via, queue_name, 3)
        await channel.queue_delete(queue_name)


def test_leaving_the_context_manager_ends_every_node_process(
    cluster_scope: tuple[RabbitMQCluster, contextlib.ExitStack],
) -> None:
    # Given the cluster's processes: its Erlang VMs and their helpers, and the shared epmd
    cluster, stack = cluster_scope
    base_dirs = [node.base_dir for node in cluster.nodes]
    pids = _processes_running_in(base_dirs)
    beams = [pid for pid in pids if _command(pid).startswith("/usr/lib/erlang/")]
    assert len(beams) >= 3, {pid: _command(pid) for pid in pids}

    # When the `with rabbitmq_cluster()` block is left
    stack.close()

    # Then the VMs and epmd are gone at once, their helpers (erl_child_setup, inet_gethost,
    # in sessions of their own) once they see the VM's pipes close, and the nodes' files
    assert [pid for pid in beams if _alive(pid)] == []
    assert not any("epmd" in _command(pid) for pid in pids if _alive(pid))
    deadline = time.monotonic() + 5
    while (left := [pid for pid in pids if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == [], {pid: _command(pid) for pid in left}
    assert [path for path in base_dirs if path.exists()] == []


def _processes_running_in(directories: list[Path]) -> list[int]:
    """Processes whose working directory is one of ``directories`` (every process a node
    starts runs in its directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if Path(os.readlink(entry / "cwd")) in directories:
                    found.append(int(entry.name))
    return found


def _command(pid: int) -> str:
    with contextlib.suppress(OSError):
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
