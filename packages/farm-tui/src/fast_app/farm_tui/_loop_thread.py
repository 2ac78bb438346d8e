"""An asyncio event loop on a thread of its own: broker I/O off the dashboard's loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from fast_app.farm_tui.errors import FarmLinkError

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    """Runs coroutines on a private event loop in a daemon thread.

    Args:
        name: the thread's name.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread and wait until its loop runs."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await self._stop.wait()

        # asyncio.run cancels what is left and closes the loop cleanly on the way out.
        asyncio.run(main())

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        """Run ``coroutine`` on the loop; its result or error through the future.

        Raises:
            FarmLinkError: the thread is not running.
        """
        loop = self._loop
        if loop is None or loop.is_closed() or not self.running:
            coroutine.close()
            raise FarmLinkError(f"{self._name} is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, loop)

    @property
    def running(self) -> bool:
        """Whether the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the loop (what still runs on it is cancelled) and wait for the thread."""
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is None or stop is None or thread is None:
            return
        if thread.is_alive():
            with contextlib.suppress(RuntimeError):  # its loop closed already
                loop.call_soon_threadsafe(stop.set)
            thread.join(timeout_s)
