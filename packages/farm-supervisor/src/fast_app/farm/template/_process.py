"""A template process as the supervisor holds it: an exec'd interpreter or a fork of itself.

``TemplateProcess`` is what ``WorkerTemplate`` needs of one: asyncio's ``Process`` has it
already (a template started as ``python -m fast_app.farm.template``); ``ForkedTemplate``
is the first template, forked from the supervisor before its event loop started, which
asyncio did not start and so does not reap.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Protocol

from fast_app.farm.template._orphans import wait_for_orphan

__all__ = ["ForkedTemplate", "TemplateProcess"]


class TemplateProcess(Protocol):
    """A template process: asyncio's ``Process`` (exec'd) or a ``ForkedTemplate``."""

    @property
    def pid(self) -> int:
        """Process id."""
        ...

    async def wait(self) -> int:
        """Wait until it ends (and reap it); its exit code."""
        ...

    def kill(self) -> None:
        """SIGKILL it."""
        ...


class ForkedTemplate:
    """The template forked from the supervisor, as a ``TemplateProcess``.

    Not asyncio's child: its exit is collected with a pidfd and ``waitpid``
    (``wait_for_orphan``), on the running loop.
    """

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._exit: asyncio.Task[int] | None = None

    @property
    def pid(self) -> int:
        """Process id."""
        return self._pid

    async def wait(self) -> int:
        """Wait until it ends, and reap it; its exit code (every caller gets it)."""
        if self._exit is None:
            self._exit = asyncio.create_task(wait_for_orphan(self._pid))
        return await asyncio.shield(self._exit)

    def kill(self) -> None:
        """SIGKILL it, unless reaped already (its pid may be another process's now)."""
        if self._exit is not None and self._exit.done():
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._pid, signal.SIGKILL)
