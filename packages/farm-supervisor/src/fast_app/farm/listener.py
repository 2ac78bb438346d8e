"""Hearing the farm: every supervisor's snapshots, and a way to send them commands.

``FarmListener`` is what ``fast-app status`` (``collect_snapshots``) and the dashboard of
``fast-app top`` listen through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from fast_app.core.queue.amqp import Topology, install_tolerant_decoding
from fast_app.core.queue.amqp.connecting import connect_first, node_of
from fast_app.core.queue.broker_urls import redact_url
from fast_app.core.queue.settings import QueueSettings
from fast_app.farm.messages import Refusals, decode_snapshot
from fast_app.farm.messages.edge import decode_at_edge
from fast_app.farm.supervisor._broker import publish_command, signing_key_of

if TYPE_CHECKING:
    from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

__all__ = ["FarmListener", "collect_snapshots"]

# The name of the module it came from: logging set up for it still applies.
logger = logging.getLogger("fast_app.farm.status")

_REOPEN_DELAYS_S = (0.5, 1.0, 2.0, 5.0)


class FarmListener:
    """A connection that hears every supervisor's snapshots and can send them commands.

    ``fast-app status`` listens for a moment; the dashboard of ``fast-app top`` for as
    long as it runs: the connection is reopened after a broker outage (``robust``), on
    the first node of ``RABBITMQ_URL`` that accepts, with its listening queue and
    consumer.

    Snapshots are decoded strictly (``fast_app.farm.messages.Snapshot``) and, with
    ``ASYNC_FARM_SIGNING_KEY``, must be signed with it; others are counted in
    ``refusals`` and never reach ``on_snapshot``. Commands sent are signed likewise.

    Args:
        settings: the queue settings (broker URL, queue name).
        on_snapshot: called with each snapshot heard (as plain data, every field of the
            ``Snapshot`` type present), on the listener's event loop.
        connection_name: how the broker's management UI names the connection.
        robust: reconnect after a broker outage.
    """

    def __init__(
        self,
        settings: QueueSettings,
        on_snapshot: Callable[[dict[str, Any]], None],
        *,
        connection_name: str = "fast-app status",
        robust: bool = False,
    ) -> None:
        self._settings = settings
        self._topology = Topology.from_settings(settings)
        self._on_snapshot = on_snapshot
        self._connection_name = connection_name
        self._robust = robust
        self._key = signing_key_of(settings)
        self.refusals = Refusals(logger)
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._closing = False
        self._reopening: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect and listen.

        Raises:
            OSError, TimeoutError, ConnectionError: the broker could not be reached.
        """
        install_tolerant_decoding()
        self._closing = False
        await self._open()

    async def _open(self) -> None:
        """Connect to the first node of ``RABBITMQ_URL`` that accepts, and listen there."""
        import aio_pika

        connection = await connect_first(
            self._settings.rabbitmq_urls,
            timeout_s=self._settings.connect_timeout_s,
            connection_name=self._connection_name,
        )
        try:
            channel = await connection.channel()
            # Only the exchanges it uses: the jobs queue's arguments are the farm's
            # business, and a listener configured differently must not trip over them.
            await channel.declare_exchange(
                self._topology.events_exchange, aio_pika.ExchangeType.FANOUT, durable=True
            )
            await channel.declare_exchange(
                self._topology.control_exchange, aio_pika.ExchangeType.DIRECT, durable=True
            )
            listener = await channel.declare_queue(exclusive=True, auto_delete=True)
            await listener.bind(self._topology.events_exchange)
            await listener.consume(self._receive, no_ack=True)
        except BaseException:
            await connection.close()
            raise
        self._connection, self._channel = connection, channel
        if self._robust:
            connection.close_callbacks.add(self._lost)

    def _lost(self, _sender: object, _error: BaseException | None) -> None:
        """The connection closed: unless on purpose, reopen it, on any node that accepts
        (aio-pika's robust connections only ever go back to the node they first reached)."""
        if self._closing or (self._reopening is not None and not self._reopening.done()):
            return
        self._reopening = asyncio.get_running_loop().create_task(self._reopen())

    async def _reopen(self) -> None:
        lost, self._channel = self._connection, None
        if lost is not None:
            with contextlib.suppress(Exception):
                await lost.close()
        failures = 0
        while not self._closing:
            delay = _REOPEN_DELAYS_S[min(failures, len(_REOPEN_DELAYS_S) - 1)]
            await asyncio.sleep(delay)
            try:
                await self._open()
            except Exception as error:
                failures += 1
                if failures == 1:
                    logger.warning(
                        "lost the broker at %s (%s); reconnecting",
                        self._settings.redacted_rabbitmq_url,
                        type(error).__name__,
                    )
            else:
                return

    async def _receive(self, message: AbstractIncomingMessage) -> None:
        snapshot = decode_at_edge(
            "snapshot",
            message.body,
            message.headers,
            key=self._key,
            decode=decode_snapshot,
            refusals=self.refusals,
        )
        if snapshot is not None:
            self._on_snapshot(msgspec.to_builtins(snapshot))

    @property
    def connected(self) -> bool:
        """Whether the connection is open now (a robust one may be reconnecting)."""
        connection = self._connection
        # A lost connection is not "closed" (only closing it is): its ``connected`` event
        # says whether the broker is reachable through it now.
        return connection is not None and not connection.is_closed and connection.connected.is_set()

    @property
    def node(self) -> str:
        """The broker node it is (or was last) connected to, its password hidden."""
        connection = self._connection
        urls = self._settings.rabbitmq_url.get_secret_value()
        return redact_url(urls) if connection is None else node_of(connection, urls)

    async def send_command(self, supervisor_id: str, command: dict[str, Any]) -> None:
        """Send a command to one supervisor (see ``Supervisor.handle_command``).

        Raises:
            ConnectionError: not connected (never started, closed, or reconnecting).
        """
        channel = self._channel
        if channel is None or channel.is_closed:
            raise ConnectionError("not connected to the broker")
        await publish_command(
            channel,
            self._topology,
            supervisor_id,
            command,
            signing_key=self._key,
            sender=self._connection_name,
        )

    async def close(self) -> None:
        """Close the connection (and stop reopening it)."""
        self._closing = True
        if self._reopening is not None:
            self._reopening.cancel()
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and not connection.is_closed:
            try:
                await connection.close()
            except Exception:
                logger.debug("closing the listener's connection failed", exc_info=True)


async def collect_snapshots(settings: QueueSettings, *, wait_s: float) -> list[dict[str, Any]]:
    """Listen to the events exchange for ``wait_s``; the latest snapshot of each supervisor.

    A supervisor whose latest snapshot says it stopped is left out.
    """
    latest: dict[str, dict[str, Any]] = {}

    def keep(snapshot: dict[str, Any]) -> None:
        # Out of order (a forged or late copy): the newest one of each supervisor wins.
        held = latest.get(snapshot["supervisor_id"])
        if held is None or held["at"] <= snapshot["at"]:
            latest[snapshot["supervisor_id"]] = snapshot

    listener = FarmListener(settings, keep)
    try:
        await listener.start()
        await asyncio.sleep(wait_s)
    finally:
        await listener.close()
    running = [snapshot for snapshot in latest.values() if not snapshot.get("stopped")]
    return sorted(running, key=lambda snapshot: str(snapshot.get("supervisor_id")))
