"""``fast-app top``: a running farm, from any machine that reaches its broker.

Snapshots come from the events exchange and commands go out on the control exchange,
through one robust connection (reopened after a broker outage) on a thread of its own;
dead letters are read and requeued through the ``fast_app.farm.dead_letters`` API on the
same thread. Every couple of seconds the known queues are also read from the broker
itself (``fast_app.farm.broker_queues``, as ``fast-app status`` does): a backlog with
no supervisor, or no consumer, shows although no snapshot says so.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from fast_app.core.queue.settings import QueueSettings
from fast_app.farm.broker_queues import QueueReading, read_queues
from fast_app.farm.listener import FarmListener
from fast_app.farm_tui._dead_letter_ops import BrokerDeadLetters
from fast_app.farm_tui._loop_thread import LoopThread
from fast_app.farm_tui._output import OutputCapture
from fast_app.farm_tui.link import LinkStatus, LinkUpdate

__all__ = ["RemoteFarm"]

_SNAPSHOTS_KEPT = 256
_READINGS_KEPT = 64

logger = logging.getLogger(__name__)


class RemoteFarm(BrokerDeadLetters):
    """A farm reached through its broker.

    Args:
        queue: the queue settings (broker URL, queue name).
        connection_name: the connection's name in the broker's management UI.
        output: this process's own log records (a broker outage, say), for the output
            screen.
        clock: Unix time now (for how long it has been connected or reconnecting).
        queues: the jobs queues to read from the broker besides those the snapshots
            name (``QUEUE_NAME`` is always read).
        read_interval_s: seconds between two reads of the queues from the broker.
    """

    owns_farm = False

    def __init__(
        self,
        queue: QueueSettings,
        *,
        connection_name: str = "fast-app top",
        output: OutputCapture | None = None,
        clock: Callable[[], float] = time.time,
        queues: Sequence[str] = (),
        read_interval_s: float = 2.0,
    ) -> None:
        self._settings = queue
        self._known_queues = dict.fromkeys([queue.name, *queues])
        self.read_interval_s = read_interval_s
        self._readings: collections.deque[QueueReading] = collections.deque(maxlen=_READINGS_KEPT)
        self._reader: Future[None] | None = None
        self._output = output
        self._snapshots: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=_SNAPSHOTS_KEPT
        )
        self._thread = LoopThread("fast-app top broker")
        self._listener = FarmListener(
            queue, self._snapshots.append, connection_name=connection_name, robust=True
        )
        self._reach_dead_letters(queue, self._thread)
        self._connected_once = False
        self._closed = False
        self._clock = clock
        # The state ``status`` last saw, and since when (the listener's connection
        # reconnects on its own: its state is read, not told).
        self._seen: tuple[bool, float] | None = None

    @property
    def queue_name(self) -> str:
        """The jobs queue."""
        return self._settings.name

    def connect(self, timeout_s: float | None = None) -> None:
        """Connect and start listening; wait for it.

        Raises:
            OSError, TimeoutError, ConnectionError: the broker could not be reached.
        """
        self._thread.start()
        wait = self._settings.connect_timeout_s + 5 if timeout_s is None else timeout_s
        self._thread.submit(self._listener.start()).result(wait)
        self._connected_once = True
        self._start_reader()

    def _start_reader(self) -> None:
        if self._reader is None and not self._closed:
            self._reader = self._thread.submit(self._read_broker())

    async def _read_broker(self) -> None:
        """Read the known queues from the broker until closed (cancelled with the loop)."""
        unreachable = False
        while True:
            try:
                readings = await read_queues(self._settings, list(self._known_queues))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the broker down, or refusing: tried again later
                if not unreachable:
                    logger.warning("cannot read the queues from the broker: %s", error)
                unreachable = True
            else:
                unreachable = False
                self._readings.extend(readings)
            await asyncio.sleep(self.read_interval_s)

    def start(self) -> None:
        """Connect in the background, if ``connect`` was not called."""
        if not self._connected_once and not self._closed:
            self._thread.start()
            self._thread.submit(self._listener.start()).add_done_callback(self._started)
        self._start_reader()

    def _started(self, future: Future[None]) -> None:
        self._connected_once = future.exception() is None

    def poll(self) -> LinkUpdate:
        """Snapshots heard and queues read from the broker since the last call."""
        snapshots = []
        while self._snapshots:
            snapshot = self._snapshots.popleft()
            snapshots.append(snapshot)
            self._learn_queues(snapshot)
        readings = []
        while self._readings:
            readings.append(self._readings.popleft())
        if self._output is None:
            return LinkUpdate(snapshots, queue_readings=readings)
        lines, skipped = self._output.take()
        return LinkUpdate(snapshots, lines, skipped, readings)

    def _learn_queues(self, snapshot: dict[str, Any]) -> None:
        """Read the queues a snapshot names from then on (names of bounded length only:
        the reader declares them)."""
        for entry in snapshot.get("queues") or ():
            name = entry.get("name") if isinstance(entry, dict) else None
            if isinstance(name, str) and 0 < len(name) <= 200:
                self._known_queues.setdefault(name, None)

    def status(self) -> LinkStatus:
        """Connected, reconnecting, or closed."""
        if self._closed:
            return LinkStatus(False, True, "closed")
        connected = self._listener.connected
        if self._seen is None or self._seen[0] != connected:
            self._seen = (connected, self._clock())
        since = self._seen[1]
        if connected:
            # The node it reached, not the whole list of RABBITMQ_URL.
            return LinkStatus(True, detail=f"connected to {self._listener.node}", since=since)
        return LinkStatus(
            False, detail="reconnecting" if self._connected_once else "connecting", since=since
        )

    def send_command(self, supervisor_id: str, command: dict[str, Any]) -> Future[None]:
        """Publish a command for ``supervisor_id`` on the control exchange."""
        return self._thread.submit(self._listener.send_command(supervisor_id, dict(command)))

    def stop(self) -> None:
        """Detach: the farm goes on (send it ``shutdown`` to stop it)."""
        self.close()

    def close(self) -> None:
        """Close the connection and stop the thread."""
        if self._closed:
            return
        self._closed = True
        if self._thread.running:
            with contextlib.suppress(Exception):  # closing a connection already gone
                self._thread.submit(self._listener.close()).result(10)
        self._thread.stop()
