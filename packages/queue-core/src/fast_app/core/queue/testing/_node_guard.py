"""A guard process that ends a private RabbitMQ node when the process owning it dies.

``atexit`` and ``finally`` never run when the owner is SIGKILLed (a test run killed by
CI, ``kill -9`` on ``fast-app broker``): the Erlang VM, in a session of its own, would
run on forever. The guard is a tiny interpreter holding the read end of a pipe whose
write end only the owner has. The owner tells it the process groups to end (``kill
PGID``) and, on a clean close, ``done``; the pipe reaching end-of-file without ``done``
means the owner died: the guard kills those groups and deletes the node's files.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import IO

__all__ = ["NodeGuard"]

# Run with ``python -I -c``: the standard library only, nothing of the caller's path.
_GUARD_SOURCE = """
import os, shutil, signal, sys
base_dir = sys.argv[1]
groups = set()
for line in sys.stdin:
    word, _, value = line.strip().partition(" ")
    if word == "kill":
        groups.add(int(value))
    elif word == "forget":
        groups.discard(int(value))
    elif word == "done":
        sys.exit(0)
for group in groups:
    try:
        os.killpg(group, signal.SIGKILL)
    except OSError:
        pass
shutil.rmtree(base_dir, ignore_errors=True)
"""


class NodeGuard:
    """The owner's side of the guard: a pipe to a process that outlives the owner.

    Args:
        base_dir: the node's directory, deleted by the guard if the owner dies.
    """

    def __init__(self, base_dir: Path) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-c", _GUARD_SOURCE, str(base_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C to the owner's group must not end it
        )
        assert self._process.stdin is not None
        self._pipe: IO[bytes] | None = self._process.stdin

    def watch(self, process_group: int) -> None:
        """End ``process_group`` if the owner dies."""
        self._send(f"kill {process_group}")

    def forget(self, process_group: int) -> None:
        """``process_group`` was ended by the owner: leave it alone."""
        self._send(f"forget {process_group}")

    def release(self) -> None:
        """The owner closed the node itself: the guard exits without doing anything."""
        self._send("done")
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None
        self._process.wait(5)

    def _send(self, line: str) -> None:
        if self._pipe is None:
            return
        try:
            self._pipe.write(f"{line}\n".encode())
            self._pipe.flush()
        except BrokenPipeError:  # the guard is gone; nothing left to tell it
            self._pipe = None
