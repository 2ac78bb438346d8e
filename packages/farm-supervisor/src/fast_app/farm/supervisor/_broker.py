"""The supervisor's own broker connection: queue depths, snapshots, tombstones, commands."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from fast_app.core.queue.amqp import DELAY_LEVELS_MS, Topology
from fast_app.core.queue.amqp.connecting import connect_first
from fast_app.core.queue.amqp.headers import SIGNATURE
from fast_app.core.queue.settings import QueueSettings
from fast_app.farm.delays import next_due_within_s
from fast_app.farm.messages import (
    Command,
    CommandGate,
    MessageKind,
    Refusals,
    Snapshot,
    Tombstone,
    command_from_dict,
    decode_command,
    decode_snapshot,
    decode_tombstone,
    encode_command,
    encode_snapshot,
    encode_tombstone,
    message_signature,
    new_tombstone,
)
from fast_app.farm.messages.edge import decode_at_edge

if TYPE_CHECKING:
    from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

__all__ = ["QueueDepth", "SupervisorBroker", "publish_command", "signing_key_of"]

logger = logging.getLogger("fast_app.farm.supervisor")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """What the broker says about the jobs queue.

    Attributes:
        ready: messages waiting for a consumer.
        consumers: consumers of the queue, of every supervisor.
    """

    ready: int
    consumers: int


def signing_key_of(settings: QueueSettings) -> bytes | None:
    """The farm's signing key (``ASYNC_FARM_SIGNING_KEY``) as bytes, if set."""
    key = settings.signing_key
    return None if key is None else key.get_secret_value().encode()


def _signed_message(kind: MessageKind, body: bytes, key: bytes | None, **properties: Any) -> Any:
    import aio_pika

    headers: dict[str, Any] | None = (
        None if key is None else {SIGNATURE: message_signature(kind, body, key)}
    )
    return aio_pika.Message(body, headers=headers, **properties)


async def publish_command(
    channel: AbstractChannel,
    topology: Topology,
    supervisor_id: str,
    command: dict[str, Any],
    *,
    signing_key: bytes | None = None,
    sender: str | None = None,
) -> None:
    """Publish ``command`` on the control exchange, for the supervisor ``supervisor_id``.

    Args:
        command: its fields, e.g. ``{"command": "set_limits", "max_workers": 8}``.
        signing_key: sign it (a supervisor with a key ignores unsigned commands).
        sender: who sends it, as the supervisor's events will say (default host-pid).

    Raises:
        msgspec.ValidationError: not a known command, or fields out of bounds.
    """
    body = encode_command(command_from_dict(command, sender=sender))
    exchange = await channel.get_exchange(topology.control_exchange, ensure=False)
    await exchange.publish(_signed_message("command", body, signing_key), routing_key=supervisor_id)


class SupervisorBroker:
    """One connection for the supervisor's own traffic; reopened after a broker outage.

    Args:
        settings: the queue settings (broker URL, topology).
        supervisor_id: the routing key of this supervisor's control messages.
        on_command: called with each command addressed to this supervisor (fresh, never
            seen before, signed when the farm has a key).
        on_tombstone: called with each tombstone of the farm (any supervisor's).
        on_snapshot: called with each snapshot of the queue's supervisors (this one's
            included).
        refusals: where messages that do not decode or are not signed are counted.
        served: the topologies of the other queues this supervisor serves (declared on
            each new connection, like the farm's own).

    Every message is decoded strictly, here: what does not decode, is unsigned (with
    ``ASYNC_FARM_SIGNING_KEY``), stale or a replay is counted in ``refusals`` and ignored.
    """

    def __init__(
        self,
        settings: QueueSettings,
        supervisor_id: str,
        on_command: Callable[[Command], None],
        on_tombstone: Callable[[Tombstone], None] | None = None,
        on_snapshot: Callable[[Snapshot], None] | None = None,
        refusals: Refusals | None = None,
        served: tuple[Topology, ...] = (),
    ) -> None:
        self._settings = settings
        self._served = served
        self._key = signing_key_of(settings)
        self._refusals = refusals or Refusals(logger)
        self._gate = CommandGate()
        self.topology = Topology.from_settings(settings)
        self._supervisor_id = supervisor_id
        self._on_command = on_command
        self._on_tombstone = on_tombstone
        self._on_snapshot = on_snapshot
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._lock = asyncio.Lock()

    async def _ready(self) -> AbstractChannel:
        channel = self._channel
        if channel is not None and not channel.is_closed:
            return channel
        async with self._lock:
            if self._channel is not None and not self._channel.is_closed:
                return self._channel
            await self.close()
            connection = await connect_first(
                self._settings.rabbitmq_urls,
                timeout_s=self._settings.connect_timeout_s,
                connection_name=f"fast-app supervisor {self._supervisor_id}",
            )
            try:
                channel = await connection.channel(publisher_confirms=True)
                await self.topology.declare(channel)
                for served in self._served:
                    await served.declare(channel)
                control = await channel.declare_queue(exclusive=True, auto_delete=True)
                await control.bind(self.topology.control_exchange, routing_key=self._supervisor_id)
                await control.consume(self._receive_command, no_ack=True)
                if self._on_tombstone is not None:
                    tombstones = await channel.declare_queue(exclusive=True, auto_delete=True)
                    await tombstones.bind(self.topology.tombstones_exchange)
                    await tombstones.consume(self._receive_tombstone, no_ack=True)
                if self._on_snapshot is not None:
                    snapshots = await channel.declare_queue(exclusive=True, auto_delete=True)
                    await snapshots.bind(self.topology.events_exchange)
                    await snapshots.consume(self._receive_snapshot, no_ack=True)
            except BaseException:
                await connection.close()  # half set up: nothing of it may linger
                raise
            self._connection, self._channel = connection, channel
            return channel

    async def _receive_command(self, message: AbstractIncomingMessage) -> None:
        command = self._decoded("command", message, decode_command)
        if command is None:
            return
        refusal = self._gate.refusal(command, time.time())
        if refusal is not None:
            self._refusals.refuse("command", *refusal)
            return
        self._deliver(self._on_command, command)

    async def _receive_tombstone(self, message: AbstractIncomingMessage) -> None:
        if self._on_tombstone is not None:
            tombstone = self._decoded("tombstone", message, decode_tombstone)
            if tombstone is not None:
                self._deliver(self._on_tombstone, tombstone)

    async def _receive_snapshot(self, message: AbstractIncomingMessage) -> None:
        if self._on_snapshot is not None:
            snapshot = self._decoded("snapshot", message, decode_snapshot)
            if snapshot is not None:
                self._deliver(self._on_snapshot, snapshot)

    def _decoded(
        self, kind: MessageKind, message: AbstractIncomingMessage, decode: Callable[[bytes], T]
    ) -> T | None:
        return decode_at_edge(
            kind,
            message.body,
            message.headers,
            key=self._key,
            decode=decode,
            refusals=self._refusals,
        )

    @staticmethod
    def _deliver(handler: Callable[[T], None], message: T) -> None:
        try:
            handler(message)
        except Exception:  # the handler's bug: logged, and the consumer goes on
            logger.exception("handling a farm message failed")

    async def depth(self, topology: Topology | None = None) -> QueueDepth:
        """Ready messages and consumers of the jobs queue (of ``topology``, or the farm's)."""
        channel = await self._ready()
        topology = topology or self.topology
        declared = await channel.declare_queue(topology.jobs, passive=True)
        result = declared.declaration_result
        return QueueDepth(result.message_count or 0, result.consumer_count or 0)

    async def dead_and_delayed(
        self, topology: Topology | None = None
    ) -> tuple[int, int, float | None]:
        """Messages in the dead-letter queue, in all delay queues together (of
        ``topology``, or the farm's), and the seconds within which the next delayed one
        is due (``fast_app.farm.delays``)."""
        channel = await self._ready()
        topology = topology or self.topology
        dead = await channel.declare_queue(topology.dead, passive=True)
        dead_count = dead.declaration_result.message_count or 0
        assert self._connection is not None
        delayed = 0
        waiting_by_level: dict[int, int] = {}
        # A passive declare of a delay queue that was never used closes its channel (404):
        # probe on a channel of its own, reopened after each miss.
        probe = await self._connection.channel()
        try:
            for level in DELAY_LEVELS_MS:
                try:
                    queue = await probe.declare_queue(topology.delay_queue(level), passive=True)
                    waiting = queue.declaration_result.message_count or 0
                    waiting_by_level[level] = waiting
                    delayed += waiting
                except Exception:
                    probe = await self._connection.channel()
        finally:
            if not probe.is_closed:
                await probe.close()
        return dead_count, delayed, next_due_within_s(waiting_by_level)

    async def publish_snapshot(self, snapshot: Snapshot) -> None:
        """Publish a farm snapshot on the events exchange (transient, unconfirmed)."""
        channel = await self._ready()
        exchange = await channel.get_exchange(self.topology.events_exchange, ensure=False)
        body = encode_snapshot(snapshot)
        await exchange.publish(
            _signed_message("snapshot", body, self._key, content_type="application/json"),
            routing_key="",
        )

    async def publish_tombstone(self, job_id: str, function: str, worker_id: str) -> None:
        """Tell every worker of the farm that ``job_id`` was killed at its hard timeout."""
        import aio_pika

        channel = await self._ready()
        exchange = await channel.get_exchange(self.topology.tombstones_exchange, ensure=False)
        body = encode_tombstone(new_tombstone(job_id, function, worker_id))
        await exchange.publish(
            _signed_message(
                "tombstone", body, self._key, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
            ),
            routing_key="",
        )

    async def send_command(self, supervisor_id: str, command: dict[str, Any]) -> None:
        """Send a command to one supervisor (``fast-app`` tools and tests use this)."""
        await publish_command(
            await self._ready(),
            self.topology,
            supervisor_id,
            command,
            signing_key=self._key,
            sender=f"supervisor {self._supervisor_id}",
        )

    async def close(self) -> None:
        """Close the connection."""
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and not connection.is_closed:
            try:
                await connection.close()
            except Exception:
                logger.debug("closing the supervisor's connection failed", exc_info=True)
