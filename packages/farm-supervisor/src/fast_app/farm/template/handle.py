"""A worker process as the supervisor holds it: a fresh interpreter, or a forked child.

``WorkerHandle`` is what ``WorkerProcess`` needs of a process: asyncio's ``Process``
has it already; ``ForkedWorker`` is a child of the worker template, whose exit the
template reports (or, once the template is gone, the kernel: see ``_orphans``).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

__all__ = ["EXIT_UNKNOWN", "ForkedWorker", "WorkerHandle"]

#: The exit of a worker whose exit status was lost: its template reaped it, then died
#: before it could report it. Not a real exit code (those are -64..255).
EXIT_UNKNOWN = -1000


class WorkerHandle(Protocol):
    """A worker process: asyncio's ``Process`` or a ``ForkedWorker``."""

    @property
    def pid(self) -> int:
        """Process id."""
        ...

    @property
    def returncode(self) -> int | None:
        """Its exit code once it ended (``-N``: killed by signal N), else ``None``."""
        ...

    @property
    def stdout(self) -> asyncio.StreamReader | None:
        """Its stdout and stderr, when captured."""
        ...

    async def wait(self) -> int:
        """Wait until it ends; its exit code."""
        ...


class ForkedWorker:
    """A worker forked by the template.

    Args:
        pid: its process id, from the template's reply.
        stdout: the read end of its output pipe, when captured.
        transport: that pipe's transport, closed a little after the exit.
    """

    _CLOSE_OUTPUT_AFTER_S = 2.0  # its last lines may still be on the way

    def __init__(
        self,
        pid: int,
        stdout: asyncio.StreamReader | None = None,
        transport: asyncio.BaseTransport | None = None,
    ) -> None:
        self._pid = pid
        self._stdout = stdout
        self._transport = transport
        self._exit: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    @property
    def pid(self) -> int:
        """Process id."""
        return self._pid

    @property
    def returncode(self) -> int | None:
        """Its exit code once reported, else ``None``."""
        return self._exit.result() if self._exit.done() else None

    @property
    def stdout(self) -> asyncio.StreamReader | None:
        """Its stdout and stderr, when captured."""
        return self._stdout

    async def wait(self) -> int:
        """Wait until its exit is reported; its exit code."""
        return await asyncio.shield(self._exit)

    def exited(self, code: int) -> None:
        """Its exit, as reported (the first report counts)."""
        if self._exit.done():
            return
        self._exit.set_result(code)
        transport = self._transport
        if transport is not None:
            asyncio.get_running_loop().call_later(self._CLOSE_OUTPUT_AFTER_S, transport.close)
