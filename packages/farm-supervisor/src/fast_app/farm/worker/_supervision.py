"""The link between a worker and the supervisor that spawned it.

The supervisor hands each worker one end of a socket pair (``FARM_SUPERVISOR_FD``). The
worker writes a heartbeat (a JSON line) every interval and reads commands (JSON lines);
both are types of ``fast_app.farm.messages.worker_link``.
End of file means the supervisor is gone, even if it was SIGKILLed: the worker then
drains and exits, so no worker outlives its supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable

import msgspec

from fast_app.farm.messages import (
    HEARTBEAT_MAX_BYTES,
    Heartbeat,
    Refusals,
    WorkerCommand,
    decode_worker_command,
    encode_line,
)

__all__ = ["SupervisorLink"]

logger = logging.getLogger("fast_app.farm.worker")


class SupervisorLink:
    """Heartbeats out, commands in, over an inherited socket.

    Args:
        fd: the worker's end of the socket pair.
        interval_s: seconds between heartbeats.
        heartbeat: builds the current heartbeat.
        on_command: handles one command.
        on_supervisor_gone: called once when the socket closes.
    """

    def __init__(
        self,
        fd: int,
        *,
        interval_s: float,
        heartbeat: Callable[[], Heartbeat],
        on_command: Callable[[WorkerCommand], None],
        on_supervisor_gone: Callable[[], None],
    ) -> None:
        self._socket = socket.socket(fileno=fd)
        self._interval_s = interval_s
        self._heartbeat = heartbeat
        self._on_command = on_command
        self._on_supervisor_gone = on_supervisor_gone
        self._tasks: list[asyncio.Task[None]] = []
        self._writer: asyncio.StreamWriter | None = None
        self._refusals = Refusals(logger)

    async def start(self) -> None:
        """Start sending heartbeats and reading commands."""
        reader, self._writer = await asyncio.open_unix_connection(
            sock=self._socket, limit=HEARTBEAT_MAX_BYTES
        )
        self._tasks = [
            asyncio.create_task(self._send_heartbeats()),
            asyncio.create_task(self._read_commands(reader)),
        ]

    def beat_now(self) -> None:
        """Send a heartbeat at once, without waiting for the event loop.

        Used when a job with a hard timeout starts: if the job then blocks the event loop,
        no later heartbeat leaves, and the supervisor must already know its deadline to
        end it from outside. The transport sends straight away when its buffer is empty.
        """
        writer = self._writer
        if writer is not None and not writer.is_closing():
            writer.write(encode_line(self._heartbeat()))

    async def beat(self) -> None:
        """Send a heartbeat now (on state changes, so the supervisor knows at once)."""
        writer = self._writer
        if writer is None or writer.is_closing():
            return
        self.beat_now()
        with contextlib.suppress(ConnectionError):
            await writer.drain()

    async def _send_heartbeats(self) -> None:
        while True:
            await self.beat()
            await asyncio.sleep(self._interval_s)

    async def _read_commands(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # longer than the limit: skipped, the stream goes on
                self._refusals.refuse("supervisor_command", "oversized")
                continue
            except ConnectionError:
                line = b""
            if not line:
                logger.warning("supervisor gone: draining and exiting")
                self._on_supervisor_gone()
                return
            try:
                command = decode_worker_command(line)
            except msgspec.DecodeError as error:
                self._refusals.refuse("supervisor_command", "malformed", str(error))
                continue
            try:
                self._on_command(command)
            except Exception:  # a command must never end the link
                logger.exception("handling the supervisor's command failed")

    async def close(self) -> None:
        """Send a last heartbeat and stop."""
        await self.beat()
        for task in self._tasks:
            task.cancel()
        if self._writer is not None:
            self._writer.close()
