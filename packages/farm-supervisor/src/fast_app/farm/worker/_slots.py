"""A worker's job slots, when its prefetch is above its concurrency.

The broker may then hand the worker more deliveries (``FARM_PREFETCH``) than it runs at
once (``FARM_CONCURRENCY``): those beyond the concurrency wait here, in arrival order, and
start as slots free. A waiting delivery is unacknowledged at the broker but has not
started: it is no job in flight (no timeouts, no queue wait measured yet). When the worker
stops taking jobs (drain, pause, a hard timeout) the line closes: every waiting delivery
is told to go back to the queue, and so is each later one that finds no free slot.

The first ones in line are listed in heartbeats (``listed``), so that an operator can
find one by its id and cancel it before it starts (``cancel``).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import msgspec

from fast_app.farm.messages import WaitingEntry

if TYPE_CHECKING:
    from fast_app.farm.worker._incoming import IncomingJob

__all__ = ["HAND_BACK", "RUN", "Admission", "JobSlots"]


@dataclass(frozen=True, slots=True)
class Admission:
    """What a delivery that asked for a slot does next.

    Attributes:
        verdict: ``run`` (a slot is its: run it, then ``JobSlots.release``), ``hand_back``
            (the worker takes no more jobs: return it to the queue) or ``cancelled`` (an
            operator cancelled it while it waited: settle it so, without running it).
        cancelled_by: who cancelled it.
    """

    verdict: Literal["run", "hand_back", "cancelled"]
    cancelled_by: str | None = None


RUN = Admission("run")
HAND_BACK = Admission("hand_back")


@dataclass(eq=False, slots=True)
class _Waiting:
    message: IncomingJob
    admission: asyncio.Future[Admission]
    #: Who cancelled it after it was given a slot but before its task took the slot.
    cancelled_by: str | None = None
    #: As heartbeats list it (``None``: not listable), built at the first one that does.
    listed_as: WaitingEntry | None = None
    described: bool = False

    def describe(self) -> WaitingEntry | None:
        """The delivery as heartbeats list it; ``None`` if its id is no job id."""
        if not self.described:
            self.listed_as, self.described = _describe(self.message), True
        return self.listed_as


class JobSlots:
    """At most ``concurrency`` deliveries run at once; the others wait, first come first run.

    Args:
        concurrency: deliveries that may run at once.
    """

    def __init__(self, concurrency: int) -> None:
        self._free = concurrency
        # Invariant: a delivery waits only while no slot is free (a freed slot goes
        # straight to the first in line), so nothing arriving later can overtake it.
        self._line: collections.deque[_Waiting] = collections.deque()
        # Given a slot, their tasks not resumed yet: out of the line, and not yet jobs in
        # flight either. A cancel in between still reaches them here.
        self._handed: set[_Waiting] = set()
        self._closed = False

    @property
    def waiting(self) -> int:
        """Deliveries waiting for a slot."""
        return len(self._line)

    async def admit(self, message: IncomingJob) -> Admission:
        """Wait for a slot for ``message``, unless the line is closed or it is cancelled."""
        if self._free > 0:
            self._free -= 1
            return RUN
        if self._closed:
            return HAND_BACK
        entry = _Waiting(message, asyncio.get_running_loop().create_future())
        self._line.append(entry)
        try:
            admission = await entry.admission
        except asyncio.CancelledError:
            self._handed.discard(entry)
            given = entry.admission
            if given.done() and not given.cancelled() and given.result() is RUN:
                self.release()  # given a slot just as it was cancelled: the next one's
            elif entry in self._line:
                self._line.remove(entry)
            raise
        self._handed.discard(entry)
        if admission is RUN and entry.cancelled_by is not None:
            self.release()  # it will not run: its slot is the next one's
            return Admission("cancelled", entry.cancelled_by)
        return admission

    def release(self) -> None:
        """A delivery that was admitted to run ended: its slot goes to the next in line."""
        while self._line:
            entry = self._line.popleft()
            if not entry.admission.done():
                entry.admission.set_result(RUN)
                self._handed.add(entry)
                return
        self._free += 1

    def close(self) -> int:
        """Start no more waiting deliveries: each is told to go back, as is any later one
        that finds no free slot; how many were waiting."""
        self._closed = True
        waiting = 0
        while self._line:
            entry = self._line.popleft()
            if not entry.admission.done():
                entry.admission.set_result(HAND_BACK)
                waiting += 1
        return waiting

    def reopen(self) -> None:
        """Let deliveries wait again (after a pause)."""
        self._closed = False

    def cancel(self, job_id: str, sender: str) -> bool:
        """Take the delivery of job ``job_id`` out of the line, cancelled by ``sender``;
        whether one was waiting.

        One just given a slot, whose task has not taken it yet, is cancelled too: it is
        no job in flight yet, and would otherwise start as if no cancel had come.
        """
        for entry in self._line:
            if entry.message.message_id == job_id and not entry.admission.done():
                self._line.remove(entry)
                entry.admission.set_result(Admission("cancelled", sender))
                return True
        for entry in self._handed:
            if entry.message.message_id == job_id and entry.cancelled_by is None:
                entry.cancelled_by = sender
                return True
        return False

    def listed(self, limit: int) -> list[WaitingEntry]:
        """The first ``limit`` deliveries in line, as heartbeats list them.

        A delivery is still unchecked: one whose id is no job id is left out (it is
        counted in ``waiting``, and could not be cancelled by its id anyway), and a
        ``type`` property that is no function's path is not repeated.
        """
        return [
            entry
            for waiting in itertools.islice(self._line, limit)
            if (entry := waiting.describe()) is not None
        ]


def _describe(message: IncomingJob) -> WaitingEntry | None:
    """``message`` as a waiting job, within the bounds of the message type (or ``None``)."""
    # Checked against the message type's own bounds here: a heartbeat is bounded by
    # construction, and one forged delivery must not get every heartbeat refused.
    job_id = message.message_id
    for described in ({"id": job_id, "function": message.type}, {"id": job_id}):
        try:
            return msgspec.convert(described, WaitingEntry)
        except msgspec.ValidationError:
            continue
    return None
