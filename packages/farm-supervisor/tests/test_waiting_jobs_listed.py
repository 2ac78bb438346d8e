"""Deliveries waiting inside a worker for a slot (``FARM_PREFETCH`` above
``FARM_CONCURRENCY``), listed by id in heartbeats and snapshots so that ``fast-app
cancel`` can find them: bounded where they are built, refused at the edge when forged,
never counted as running. In-process: no broker."""

from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from farm_messages import heartbeat, snapshot

from fast_app.farm.messages import (
    HEARTBEAT_MAX_BYTES,
    WAITING_LISTED,
    InFlightEntry,
    Refusals,
    WaitingEntry,
    decode_at_edge,
    decode_heartbeat,
    decode_snapshot,
    encode_line,
    encode_snapshot,
)
from fast_app.farm.messages.snapshots import EndedJobOf, RecentEnds, WaitingJobOf
from fast_app.farm.supervisor._snapshot import WAITING_LISTED as SNAPSHOT_WAITING_LISTED
from fast_app.farm.supervisor._snapshot import waiting_counts, waiting_jobs, worker_entries
from fast_app.farm.supervisor._workers import WorkerProcess
from fast_app.farm.worker._slots import RUN, Admission, JobSlots

LONG_FUNCTION = "app." + "f" * 296  # the longest function path a message may name


class _Message:
    """A delivery as the slots see it: its id and ``type`` properties."""

    def __init__(self, message_id: Any, function: Any = "app.jobs.work") -> None:
        self.message_id = message_id
        self.type = function


async def _slots_with_waiting(*messages: _Message) -> tuple[JobSlots, list[asyncio.Future[Any]]]:
    """Slots of concurrency 1, taken, with ``messages`` waiting in line."""
    slots = JobSlots(1)
    assert await slots.admit(_Message("running")) is RUN  # type: ignore[arg-type]
    waiting = [asyncio.ensure_future(slots.admit(message)) for message in messages]  # type: ignore[arg-type]
    await asyncio.sleep(0)  # each is in line now
    return slots, waiting


def _waiting_heartbeat(**fields: Any) -> dict[str, Any]:
    """A valid heartbeat with one waiting job, as plain data to forge from."""
    beat = heartbeat(waiting=1, waiting_jobs=[WaitingEntry(id="a" * 32, function="app.f")])
    return {**msgspec.to_builtins(beat), **fields}


# -- the worker lists what waits, bounded by construction ----------------------------


async def test_a_heartbeat_lists_the_first_waiting_jobs_in_line_and_counts_them_all() -> None:
    # Given 250 deliveries waiting behind one running job
    slots, waiting = await _slots_with_waiting(
        *(_Message(f"{n:032x}", LONG_FUNCTION) for n in range(250))
    )

    # When a heartbeat is built from them
    line = encode_line(heartbeat(waiting=slots.waiting, waiting_jobs=slots.listed(WAITING_LISTED)))

    # Then it lists the first 64 in line, counts all 250, and decodes within its bounds
    beat = decode_heartbeat(line)
    assert beat.waiting == 250
    assert [job.id for job in beat.waiting_jobs] == [f"{n:032x}" for n in range(WAITING_LISTED)]
    assert beat.waiting_jobs[0].function == LONG_FUNCTION
    assert beat.in_flight_count == 0  # waiting is not running
    assert len(line) < 64 * 1024, len(line)
    for admission in waiting:
        admission.cancel()


async def test_a_forged_waiting_delivery_is_left_out_or_unnamed_and_the_heartbeat_decodes() -> None:
    # Given waiting deliveries whose properties anyone could have forged
    slots, waiting = await _slots_with_waiting(
        _Message("ok-1", "app.jobs.work"),
        _Message("bad\x00id"),
        _Message("x" * 65),
        _Message(None),
        _Message("ok-2", "app.jobs.work\x00\x1b[2J"),
        _Message("ok-3", "f" * 301),
        _Message("ok-4", None),
        _Message("ok-5", "app.jobs.work\n"),
    )

    # When the worker lists them
    listed = slots.listed(WAITING_LISTED)

    # Then those with no job id are left out (still counted), a bad function is not repeated
    assert listed == [
        WaitingEntry(id="ok-1", function="app.jobs.work"),
        WaitingEntry(id="ok-2"),
        WaitingEntry(id="ok-3"),
        WaitingEntry(id="ok-4"),
        WaitingEntry(id="ok-5"),
    ]
    beat = decode_heartbeat(encode_line(heartbeat(waiting=slots.waiting, waiting_jobs=listed)))
    assert beat.waiting == 8
    for admission in waiting:
        admission.cancel()


async def test_a_delivery_given_a_slot_but_not_started_yet_is_still_cancelled() -> None:
    # Given one waiting delivery, handed the slot the running one freed, its task not
    # yet resumed (neither in line nor in flight)
    slots, [doomed, later] = await _slots_with_waiting(_Message("doomed"), _Message("later"))
    slots.release()
    assert slots.waiting == 1 and not doomed.done()

    # When an operator cancels it then
    assert slots.cancel("doomed", "ops")

    # Then it is settled as cancelled instead of run, and its slot goes to the next one
    assert await doomed == Admission("cancelled", "ops")
    assert await later is RUN
    assert not slots.cancel("doomed", "ops")  # nothing left of it


# -- forged heartbeats: refused and counted at the supervisor's edge ------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"waiting": 65, "waiting_jobs": [{"id": f"j{n}"} for n in range(65)]},  # too many
        {"waiting_jobs": [{"id": "j" * 65}]},  # an id over its bound
        {"waiting_jobs": [{"id": "j\u0000"}]},  # a NUL byte in an id
        {"waiting_jobs": [{"id": "j1", "function": "f" * 301}]},  # a function over its bound
        {"waiting_jobs": [{"id": "j1", "function": "x" * 100_000}]},  # a huge one
        {"waiting_jobs": [{"id": "j1", "function": "app.f\u0000"}]},  # a NUL in a function
        {"waiting_jobs": [{"id": 12}]},  # the wrong type
        {"waiting_jobs": ["j1"]},  # entries that are no objects
        {"waiting_jobs": {"id": "j1"}},  # not a list
        {"waiting": 0},  # more listed than counted: the count would hide them
        {"waiting": -1},
    ],
)
async def test_a_forged_heartbeat_with_waiting_jobs_out_of_bounds_is_refused_and_counted(
    fields: dict[str, Any],
) -> None:
    # Given a link carrying a forged heartbeat, then a valid one
    reader = asyncio.StreamReader(limit=HEARTBEAT_MAX_BYTES)  # as the supervisor reads
    reader.feed_data(msgspec.json.encode(_waiting_heartbeat(**fields)) + b"\n")
    reader.feed_data(encode_line(heartbeat("w1", state="busy")))
    reader.feed_eof()
    process: Any = SimpleNamespace(pid=1, returncode=None)
    worker = WorkerProcess("w1", process, time.monotonic(), None)  # type: ignore[arg-type]

    # When the supervisor reads them
    await asyncio.wait_for(worker._read_heartbeats(reader), 5)

    # Then the forged one is refused and counted, and the next one taken
    assert worker.refusals.counts["heartbeat_malformed"] == 1
    assert worker.heartbeat is not None and worker.heartbeat.state == "busy"
    assert worker.waiting_jobs == [] and worker.waiting == 0


def test_the_valid_heartbeat_the_forgeries_start_from_decodes() -> None:
    beat = decode_heartbeat(msgspec.json.encode(_waiting_heartbeat()))

    assert beat.waiting_jobs == [WaitingEntry(id="a" * 32, function="app.f")]


def test_a_heartbeat_from_before_waiting_jobs_were_listed_still_decodes() -> None:
    old = _waiting_heartbeat(waiting=3)
    del old["waiting_jobs"]

    beat = decode_heartbeat(msgspec.json.encode(old))

    assert beat.waiting == 3
    assert beat.waiting_jobs == []


# -- the supervisor's snapshot: listed apart, capped, strict ---------------------------


def _worker_with_waiting(number: int, waiting: int) -> WorkerProcess:
    """A busy worker with one job in flight and ``waiting`` deliveries waiting."""
    process: Any = SimpleNamespace(pid=10_000 + number, returncode=None)
    socket: Any = None
    worker = WorkerProcess(f"host-1-w{number}", process, time.monotonic(), socket)
    running = InFlightEntry(f"run-{number}", "app.f", 1, time.time(), None, None, False, "()")
    listed = [
        WaitingEntry(id=f"{number:04d}{slot:04d}" + "b" * 24, function=LONG_FUNCTION)
        for slot in range(min(waiting, WAITING_LISTED))
    ]
    worker.heartbeat = heartbeat(
        state="busy",
        concurrency=1,
        in_flight=[running],
        in_flight_count=1,
        waiting=waiting,
        waiting_jobs=listed,
    )
    return worker


def test_a_snapshot_lists_each_workers_first_waiting_jobs_apart_and_counts_them_all() -> None:
    # Given 32 workers running one job each, 250 deliveries waiting in each
    workers = [_worker_with_waiting(number, 250) for number in range(32)]

    # When the supervisor describes them for its snapshot
    listed = waiting_jobs(workers)
    counts = waiting_counts(workers)

    # Then it lists 40 waiting jobs in all: every worker's first in line, then the
    # second of the first 8 workers; each worker still counts all 250 it holds
    assert len(listed) == SNAPSHOT_WAITING_LISTED
    assert [job.worker_id for job in listed] == [f"host-1-w{n}" for n in [*range(32), *range(8)]]
    assert listed[0] == WaitingJobOf(
        id="00000000" + "b" * 24, function=LONG_FUNCTION, worker_id="host-1-w0"
    )
    assert listed[32].id == "00000001" + "b" * 24
    assert counts == {f"host-1-w{n}": 250 for n in range(32)}
    # ...and the waiting jobs are never counted or listed as running
    entries = worker_entries(workers, time.monotonic())
    assert [entry.in_flight_count for entry in entries] == [1] * 32
    assert [[job.id for job in entry.in_flight] for entry in entries] == [
        [f"run-{n}"] for n in range(32)
    ]
    # ...and the listing costs a bounded size, worst case (functions at their longest)
    plain = snapshot("host-1", workers=entries)
    message = msgspec.structs.replace(plain, waiting=counts, waiting_jobs=listed)
    body = encode_snapshot(message)
    assert decode_snapshot(body) == message
    assert len(body) - len(encode_snapshot(plain)) < SNAPSHOT_WAITING_LISTED * 400 + 32 * 30


def test_a_snapshot_where_nothing_waits_lists_and_counts_nothing() -> None:
    workers = [_worker_with_waiting(number, 0) for number in range(4)]

    assert waiting_jobs(workers) == []
    assert waiting_counts(workers) == {}


def _forged_snapshot(**fields: Any) -> bytes:
    """A snapshot with one job waiting on w1, as plain data to forge from."""
    valid = snapshot(
        "sup-1",
        1,
        waiting={"sup-1-w0": 1},
        waiting_jobs=[WaitingJobOf(id="j1", function="app.f", worker_id="sup-1-w0")],
    )
    return msgspec.json.encode({**msgspec.to_builtins(valid), **fields})


def _listing(*jobs: Any, count: Any = 1) -> dict[str, Any]:
    return {"waiting": {"sup-1-w0": count}, "waiting_jobs": list(jobs)}


_ONE = {"id": "j1", "worker_id": "sup-1-w0"}


@pytest.mark.parametrize(
    "fields",
    [
        _listing(*({**_ONE, "id": f"j{n}"} for n in range(65)), count=65),  # too many
        _listing({**_ONE, "id": "j" * 65}),  # an id over its bound
        _listing({**_ONE, "id": "j\u0000"}),  # a NUL byte in an id
        _listing({**_ONE, "function": "x" * 100_000}),  # a huge function
        _listing({**_ONE, "function": "app\u0000f"}),  # a NUL byte in a function
        _listing({**_ONE, "worker_id": "w\u0000"}),  # a NUL byte in a worker id
        _listing({**_ONE, "id": ["j1"]}),  # the wrong type
        _listing(_ONE, count=0),  # listed but not counted: the count would hide it
        _listing(_ONE, _ONE, count=1),  # more listed than counted
        {"waiting": {}, "waiting_jobs": [_ONE]},  # listed on a worker not counted at all
        {"waiting": {"sup-1-w0": -1}},  # not a count
        {"waiting": {"sup-1-w0": "1"}},
        {"waiting": {f"w{n}": 1 for n in range(1025)}},  # too many workers
        {"waiting_jobs": "j1"},  # not a list
    ],
)
def test_a_forged_snapshot_with_waiting_jobs_out_of_bounds_is_refused_and_counted(
    fields: dict[str, Any],
) -> None:
    refusals = Refusals(logging.getLogger("test"))

    decoded = decode_at_edge(
        "snapshot",
        _forged_snapshot(**fields),
        None,
        key=None,
        decode=decode_snapshot,
        refusals=refusals,
    )

    assert decoded is None
    assert refusals.as_dict() == {"snapshot_malformed": 1}


def test_the_valid_snapshot_the_forgeries_start_from_decodes() -> None:
    decoded = decode_snapshot(_forged_snapshot())

    assert decoded.waiting_jobs == [WaitingJobOf(id="j1", function="app.f", worker_id="sup-1-w0")]


def test_a_snapshot_from_before_waiting_jobs_were_listed_still_decodes() -> None:
    # Given a snapshot as a supervisor from before sends it: no waiting jobs, and ended
    # jobs that do not say whether they started
    ended = EndedJobOf(
        id="j0",
        function="app.f",
        attempt=1,
        outcome="cancelled",
        ended_at=1.0,
        duration_s=0.5,
        args="()",
        worker_id="w1",
    )
    old = msgspec.to_builtins(
        snapshot("sup-1", 1, recent_jobs=RecentEnds(succeeded=[], failed=[ended]))
    )
    del old["waiting"], old["waiting_jobs"]
    del old["recent_jobs"]["failed"][0]["started"]

    # When it is decoded, then how many wait is unknown (not none), none is listed, and
    # the ended job had started
    decoded = decode_snapshot(msgspec.json.encode(old))
    assert (decoded.waiting, decoded.waiting_jobs) == (None, [])
    assert decoded.workers[0].in_flight_count == 1
    assert decoded.recent_jobs.failed[0].started is True
