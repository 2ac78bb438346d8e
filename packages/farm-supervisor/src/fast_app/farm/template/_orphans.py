"""The template's children once the template is gone: adopted, and watched to their end.

The supervisor is a child subreaper (Linux ``PR_SET_CHILD_SUBREAPER``): when the
template dies, its live workers become the supervisor's children rather than init's,
so the supervisor can still collect their exit status. It waits for each with a pidfd
(readable when the process ended) and then ``waitpid``. Where that cannot work (no
pidfd, no subreaper), it polls, and an exit it cannot collect is ``EXIT_UNKNOWN``: the
worker is gone, how is not known, and nothing waits forever.

Being a subreaper also adopts what a worker's jobs left behind (a subprocess outliving
a killed worker); ``reap_strays`` collects those once they end, so that they do not
stay zombies of the supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import sys
from collections.abc import Collection
from pathlib import Path

from fast_app.farm.template.handle import EXIT_UNKNOWN

__all__ = ["become_subreaper", "reap_strays", "stop_being_subreaper", "wait_for_orphan"]

_PR_SET_CHILD_SUBREAPER = 36
_POLL_S = 0.5
_COLLECT_TRIES = 40  # the kernel re-parents the orphan as the template exits: at once


def _set_subreaper(on: bool) -> bool:
    if sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        result: int = libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)
    except (OSError, AttributeError):
        return False
    return result == 0


def become_subreaper() -> bool:
    """Adopt the orphaned descendants of this process; whether that is possible."""
    return _set_subreaper(True)


def stop_being_subreaper() -> None:
    """Let orphaned descendants go to init again."""
    _set_subreaper(False)


async def wait_for_orphan(pid: int) -> int:
    """Wait for the end of ``pid``, a child of a template that died; its exit code.

    Any child of this process that asyncio does not reap will do: the template forked
    from the supervisor is waited for here too (``ForkedTemplate``).

    ``EXIT_UNKNOWN`` when its status went elsewhere (its template reaped it before
    dying, or it was not adopted).
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:  # gone, and reaped: by the template, before it died
        return _collect(pid) or EXIT_UNKNOWN
    except (OSError, AttributeError):  # no pidfd on this system
        return await _poll(pid)
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ended.done():
            ended.set_result(None)

    try:
        loop.add_reader(pidfd, readable)
        try:
            await ended
        finally:
            loop.remove_reader(pidfd)
    finally:
        os.close(pidfd)
    for _ in range(_COLLECT_TRIES):
        code = _collect(pid)
        if code is not None:
            return code
        await asyncio.sleep(0.05)
    return EXIT_UNKNOWN


def _collect(pid: int) -> int | None:
    """Its exit code if it ended as our child; ``EXIT_UNKNOWN`` if it is not our child;
    ``None`` while it has not ended."""
    try:
        got, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return EXIT_UNKNOWN
    return None if got == 0 else os.waitstatus_to_exitcode(status)


async def _poll(pid: int) -> int:
    while True:
        code = _collect(pid)
        if code is not None and code != EXIT_UNKNOWN:
            return code
        if code == EXIT_UNKNOWN:  # not ours: wait until it is gone, whoever reaps it
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return EXIT_UNKNOWN
            except PermissionError:
                pass
        await asyncio.sleep(_POLL_S)


def reap_strays(seen: set[int], known: Collection[int]) -> set[int]:
    """Reap the adopted zombie children nobody waits for; the zombies to check next time.

    Only zombies of another session than ours: adopted ones come from the workers'
    sessions, while children this process started itself in its own session (a
    ``subprocess.Popen`` of an embedding program) are left to whoever started them. And
    only those seen by two calls in a row (seconds apart): asyncio reaps the children it
    started as soon as they end.

    Args:
        seen: what the previous call returned.
        known: children waited for here (the template, adopted workers).
    """
    ours = os.getsid(0)
    zombies = {
        pid
        for pid in _children()
        if pid not in known and (session := _zombie_session(pid)) is not None and session != ours
    }
    for pid in zombies & seen:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    return zombies - seen


def _children() -> set[int]:
    children: set[int] = set()
    with contextlib.suppress(OSError):
        for task in Path("/proc/self/task").iterdir():
            with contextlib.suppress(OSError, ValueError):
                children.update(int(pid) for pid in (task / "children").read_text().split())
    return children


def _zombie_session(pid: int) -> int | None:
    """The session of ``pid`` if it is a zombie, else ``None``."""
    try:
        # After the command's closing parenthesis: state, ppid, pgrp, session...
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
        return int(fields[3]) if fields[0] == "Z" else None
    except (OSError, ValueError, IndexError):
        return None
