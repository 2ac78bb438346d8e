"""A real broker in queue-core's tests: the test's own connection, polls with deadlines.

Every connection a test opens is named after the test (``request.node.nodeid``), so the
broker's connection list says which test holds which connection.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import quote, urlsplit

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from fast_app.core.queue.amqp import Topology
from fast_app.core.queue.testing.rabbitmq import RabbitMQNode

T = TypeVar("T")


async def poll(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float = 5.0, message: str = "it"
) -> T:
    """Await ``probe`` until it returns something; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (found := await probe()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(0.02)
    return found


class Broker:
    """The test's view of the broker, on one connection named after the test.

    Each call takes a fresh channel: a refused declare closes the channel it was made on.
    """

    def __init__(self, url: str, connection: AbstractConnection) -> None:
        self.url = url
        self.connection = connection

    @classmethod
    async def connect(cls, url: str, connection_name: str) -> Broker:
        connection = await aio_pika.connect(
            url, client_properties={"connection_name": connection_name}
        )
        return cls(url, connection)

    async def close(self) -> None:
        await self.connection.close()

    async def declare(self, topology: Topology) -> None:
        """Declare the farm's queues, as the farm's user would."""
        async with self.connection.channel() as channel:
            await topology.declare(channel)

    async def check_declared(self, topology: Topology) -> None:
        """Check the farm's queues exist, as a user that may not declare them would."""
        async with self.connection.channel() as channel:
            await topology.check_declared(channel)

    async def message_count(self, queue_name: str) -> int:
        """Messages ready in ``queue_name`` (which must exist)."""
        async with self.connection.channel() as channel:
            declared = await channel.declare_queue(queue_name, passive=True)
            count = declared.declaration_result.message_count
            assert count is not None
            return count

    async def get(self, queue_name: str, *, timeout: float = 5.0) -> AbstractIncomingMessage:
        """Take the next message of ``queue_name``, waiting for one up to ``timeout`` s."""
        async with self.connection.channel() as channel:
            queue = await channel.get_queue(queue_name, ensure=False)

            async def take() -> AbstractIncomingMessage | None:
                return await queue.get(no_ack=True, fail=False)

            return await poll(take, timeout=timeout, message=f"a message in {queue_name}")


async def rabbitmqctl(node: RabbitMQNode, *args: str) -> str:
    """Run ``rabbitmqctl`` on the test node (in a thread); its output, or fail the test."""
    done = await asyncio.to_thread(node.rabbitmqctl, *args)
    assert done.returncode == 0, f"rabbitmqctl {args[0]}: {done.stderr or done.stdout}"
    return done.stdout


async def connections_named(node: RabbitMQNode, name: str) -> list[str]:
    """Process ids (as ``rabbitmqctl close_connection`` takes them) of connections named ``name``."""
    listing = await rabbitmqctl(
        node, "list_connections", "-q", "--no-table-headers", "pid", "client_properties"
    )
    quoted = '{"connection_name","' + name + '"}'
    return [line.split("\t")[0] for line in listing.splitlines() if quoted in line]


async def add_user(node: RabbitMQNode, *, configure: str, write: str, read: str) -> str:
    """Add a user with these permissions on the default vhost; its broker URL."""
    user, password = f"test-{secrets.token_hex(4)}", secrets.token_hex(16)
    await rabbitmqctl(node, "add_user", user, password)
    await rabbitmqctl(node, "set_permissions", "-p", "/", user, configure, write, read)
    parts = urlsplit(node.url)
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{quote(user, safe='')}:{password}@{host}").geturl()


async def delete_user(node: RabbitMQNode, url: str) -> None:
    """Delete the user of ``url`` (made by ``add_user``)."""
    user = urlsplit(url).username
    assert user is not None
    await rabbitmqctl(node, "delete_user", user)
