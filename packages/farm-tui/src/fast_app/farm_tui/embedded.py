"""``fast-app work --tui``: the supervisor in this process, on a thread of its own.

The supervisor keeps its own event loop (on the ``fast-app supervisor`` thread), so that
neither its ticks nor its broker I/O wait for the screen, nor the screen for them. Its
snapshots reach the dashboard through a listener; commands go to it with
``call_soon_threadsafe``. Signals are the dashboard's: it calls ``stop`` on SIGTERM.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from concurrent.futures import Future
from typing import Any

import msgspec

from fast_app.core.queue.settings import QueueSettings
from fast_app.farm.messages import command_from_dict
from fast_app.farm.settings import FarmSettings
from fast_app.farm.supervisor import Supervisor
from fast_app.farm_tui._dead_letter_ops import BrokerDeadLetters
from fast_app.farm_tui._loop_thread import LoopThread
from fast_app.farm_tui._output import OutputCapture
from fast_app.farm_tui.errors import FarmLinkError, UnknownSupervisorError
from fast_app.farm_tui.link import LinkStatus, LinkUpdate

__all__ = ["EmbeddedFarm"]

_SNAPSHOTS_KEPT = 64
_EXIT_STARTUP_FAILED = 2


class EmbeddedFarm(BrokerDeadLetters):
    """A supervisor running in this process, for the dashboard.

    Args:
        farm: the supervisor's settings.
        queue: the queue settings.
        output: where log records and worker output lines go (the dashboard's output
            screen); workers write to this process's stdout and stderr without one.
    """

    owns_farm = True

    def __init__(
        self, farm: FarmSettings, queue: QueueSettings, *, output: OutputCapture | None = None
    ) -> None:
        self._output = output
        self.supervisor = Supervisor(
            farm, queue, worker_output=None if output is None else output.worker_line
        )
        self._snapshots: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=_SNAPSHOTS_KEPT
        )
        self.supervisor.add_snapshot_listener(self._snapshots.append)
        self._queue_settings = queue
        self._dead_letter_thread = LoopThread("fast-app dead letters")
        self._reach_dead_letters(queue, self._dead_letter_thread)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._exit_code: int | None = None
        self._error: BaseException | None = None
        self._stop_requests = 0

    @property
    def queue_name(self) -> str:
        """The jobs queue."""
        return self._queue_settings.name

    def start(self) -> None:
        """Start the supervisor on its thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="fast-app supervisor", daemon=True)
        self._thread.start()
        self._started.wait(10)

    def _run(self) -> None:
        async def main() -> int:
            self._loop = asyncio.get_running_loop()
            self._started.set()
            return await self.supervisor.run(install_signal_handlers=False)

        try:
            self._exit_code = asyncio.run(main())
        except BaseException as error:  # reported through status(); the thread just ends
            self._error = error
            self._exit_code = _EXIT_STARTUP_FAILED
        finally:
            self._started.set()

    def poll(self) -> LinkUpdate:
        """Snapshots and output lines since the last call."""
        snapshots = []
        while self._snapshots:
            snapshots.append(self._snapshots.popleft())
        if self._output is None:
            return LinkUpdate(snapshots)
        lines, skipped = self._output.take()
        return LinkUpdate(snapshots, lines, skipped)

    def status(self) -> LinkStatus:
        """Running, draining or stopped (with the supervisor's exit code)."""
        thread = self._thread
        if thread is not None and not thread.is_alive():
            detail = "stopped" if self._error is None else f"failed: {self._error}"
            return LinkStatus(False, True, detail, self._exit_code, self._error)
        if self.supervisor.stopping:
            return LinkStatus(True, detail="draining the workers to stop")
        return LinkStatus(thread is not None, detail="" if thread else "starting")

    def send_command(self, supervisor_id: str, command: dict[str, Any]) -> Future[None]:
        """Hand a command to the supervisor's loop (only this process's supervisor)."""
        done: Future[None] = Future()
        if supervisor_id != self.supervisor.supervisor_id:
            done.set_exception(UnknownSupervisorError(f"no supervisor {supervisor_id} here"))
            return done
        try:
            typed = command_from_dict(dict(command), sender="fast-app work --tui")
            self._call(self.supervisor.handle_command, typed)
        except (FarmLinkError, msgspec.ValidationError) as error:
            done.set_exception(error)
        else:
            done.set_result(None)
        return done

    def _call(self, function: Any, *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            raise FarmLinkError("the supervisor is not running")
        try:
            loop.call_soon_threadsafe(function, *args)
        except RuntimeError:  # the loop closed in between
            raise FarmLinkError("the supervisor is not running") from None

    def stop(self) -> None:
        """Drain and stop the supervisor (first call); kill its workers (second call)."""
        self._stop_requests += 1
        with contextlib.suppress(FarmLinkError):  # not running: nothing to stop
            self._call(self.supervisor.request_stop)

    def close(self, timeout_s: float | None = None) -> None:
        """Stop the supervisor if it runs, wait for it, and stop the link's threads.

        Args:
            timeout_s: how long to wait for the drain (default: the grace period and a
                margin); then the workers are killed.
        """
        thread = self._thread
        if thread is not None and thread.is_alive():
            if self._stop_requests == 0:
                self.stop()
            grace = self.supervisor.farm.grace_period_s
            thread.join(grace + 10 if timeout_s is None else timeout_s)
            if thread.is_alive():
                self.stop()  # the second request kills the workers
                thread.join(10)
        self._dead_letter_thread.stop()
