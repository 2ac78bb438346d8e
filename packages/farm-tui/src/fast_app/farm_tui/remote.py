"""``fast-app top``: a running farm, from any machine that reaches its broker.

Snapshots come from the events exchange and commands go out on the control exchange,
through one robust connection (reopened after a broker outage) on a thread of its own;
dead letters are read and requeued through the ``fast_app.farm.dead_letters`` API on the
same thread.
"""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from fast_app.core.queue.settings import QueueSettings
from fast_app.farm.listener import FarmListener
from fast_app.farm_tui._dead_letter_ops import BrokerDeadLetters
from fast_app.farm_tui._loop_thread import LoopThread
from fast_app.farm_tui._output import OutputCapture
from fast_app.farm_tui.link import LinkStatus, LinkUpdate

__all__ = ["RemoteFarm"]

_SNAPSHOTS_KEPT = 256


class RemoteFarm(BrokerDeadLetters):
    """A farm reached through its broker.

    Args:
        queue: the queue settings (broker URL, queue name).
        connection_name: the connection's name in the broker's management UI.
        output: this process's own log records (a broker outage, say), for the output
            screen.
        clock: Unix time now (for how long it has been connected or reconnecting).
    """

    owns_farm = False

    def __init__(
        self,
        queue: QueueSettings,
        *,
        connection_name: str = "fast-app top",
        output: OutputCapture | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = queue
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

    def start(self) -> None:
        """Connect in the background, if ``connect`` was not called."""
        if not self._connected_once and not self._closed:
            self._thread.start()
            self._thread.submit(self._listener.start()).add_done_callback(self._started)

    def _started(self, future: Future[None]) -> None:
        self._connected_once = future.exception() is None

    def poll(self) -> LinkUpdate:
        """Snapshots heard since the last call."""
        snapshots = []
        while self._snapshots:
            snapshots.append(self._snapshots.popleft())
        if self._output is None:
            return LinkUpdate(snapshots)
        lines, skipped = self._output.take()
        return LinkUpdate(snapshots, lines, skipped)

    def status(self) -> LinkStatus:
        """Connected, reconnecting, or closed."""
        if self._closed:
            return LinkStatus(False, True, "closed")
        connected = self._listener.connected
        if self._seen is None or self._seen[0] != connected:
            self._seen = (connected, self._clock())
        since = self._seen[1]
        url = self._settings.redacted_rabbitmq_url
        if connected:
            return LinkStatus(True, detail=f"connected to {url}", since=since)
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
