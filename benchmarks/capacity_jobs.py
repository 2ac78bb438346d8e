"""The job and the tally of benchmarks/cluster_capacity.py (a public module: workers refuse
jobs from private ones).

Every consumer process, raw aio-pika or a farm worker, notes each message it handles in
its own slot of a shared file: how many so far and when the last one was. The benchmark
reads all slots while the run goes on, so it sees the last message handled the moment it
happens, whichever consumer took it (several consumers share one queue, so none of them
knows when the run is over).
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from pathlib import Path
from typing import Final

#: One slot per consumer: messages handled (int64), time of the last one (float64).
SLOT: Final = struct.Struct("<qd")

#: The shared file and this process's slot in it, for a farm worker (its job has no
#: arguments of its own to say so).
SLOTS_FILE_ENV: Final = "CAPACITY_SLOTS_FILE"
SLOT_INDEX_ENV: Final = "CAPACITY_SLOT_INDEX"


def create_slots(path: Path, count: int) -> None:
    """A file of ``count`` empty slots."""
    path.write_bytes(bytes(SLOT.size * count))


def read_slots(path: Path, count: int) -> list[tuple[int, float]]:
    """Every slot's ``(messages handled, time of the last one)``."""
    data = path.read_bytes()
    return [SLOT.unpack_from(data, index * SLOT.size) for index in range(count)]


class Tally:
    """This process's slot: counts the messages it handles."""

    def __init__(self, path: Path, index: int) -> None:
        with open(path, "r+b") as file:
            self._map = mmap.mmap(file.fileno(), 0)
        self._offset = index * SLOT.size
        self.count = 0

    def note(self) -> None:
        """One more message handled, now."""
        self.count += 1
        # One write of both fields; the reader sums the counts, then reads the times.
        SLOT.pack_into(self._map, self._offset, self.count, time.time())


_tally: Tally | None = None


async def noop() -> None:
    """A no-op job that notes itself in the worker's slot."""
    global _tally
    if _tally is None:
        _tally = Tally(Path(os.environ[SLOTS_FILE_ENV]), int(os.environ[SLOT_INDEX_ENV]))
    _tally.note()
