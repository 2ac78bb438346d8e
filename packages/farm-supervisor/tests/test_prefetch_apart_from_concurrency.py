"""FARM_PREFETCH apart from FARM_CONCURRENCY (issue 15): a worker holds up to its prefetch
of deliveries but runs no more than its concurrency at once; those waiting go back to the
queue when it stops. Real broker, real worker processes; the slots alone in-process."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import farm_jobs
import pytest
from farm_testkit import SUPPORT, Farm, WorkerProcess, wait_until

from fast_app.core.queue import queue
from fast_app.core.queue.amqp import headers as h
from fast_app.core.queue.testing.rabbitmq import RabbitMQNode
from fast_app.farm.errors import FarmConfigurationError
from fast_app.farm.messages import Cancel, Heartbeat, WaitingEntry, decode_heartbeat, encode_line
from fast_app.farm.settings import load_farm_settings
from fast_app.farm.worker._slots import HAND_BACK, RUN, Admission, JobSlots

# -- settings -------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "many", "-3", "70000"])
def test_a_prefetch_that_is_not_a_positive_count_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    # Given FARM_PREFETCH set to something that is no prefetch count
    monkeypatch.setenv("FARM_PREFETCH", value)

    # When the settings are read, then they are refused, the variable named
    with pytest.raises(FarmConfigurationError, match=f"FARM_PREFETCH='{value}'"):
        load_farm_settings()


def test_a_prefetch_below_the_concurrency_is_refused_with_both_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FARM_CONCURRENCY", "8")
    monkeypatch.setenv("FARM_PREFETCH", "4")

    with pytest.raises(FarmConfigurationError) as refused:
        load_farm_settings()

    assert "FARM_PREFETCH (4) must not be below FARM_CONCURRENCY (8)" in str(refused.value)


def test_the_prefetch_is_the_concurrency_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FARM_PREFETCH", raising=False)
    monkeypatch.setenv("FARM_CONCURRENCY", "3")
    assert load_farm_settings().prefetch_count == 3

    monkeypatch.setenv("FARM_PREFETCH", "600")
    assert load_farm_settings().prefetch_count == 600


# -- the slots, in-process ------------------------------------------------------------


class _Message:
    def __init__(self, message_id: str) -> None:
        self.message_id = message_id


async def test_deliveries_beyond_the_concurrency_start_in_arrival_order_as_slots_free() -> None:
    # Given one slot, taken
    slots = JobSlots(1)
    assert await slots.admit(_Message("first")) is RUN  # type: ignore[arg-type]
    admissions = [
        asyncio.ensure_future(slots.admit(_Message(name)))  # type: ignore[arg-type]
        for name in ("second", "third")
    ]
    await asyncio.sleep(0)
    assert slots.waiting == 2

    # When the running one ends, the first in line starts, and only it
    slots.release()
    assert await admissions[0] is RUN
    assert not admissions[1].done()

    # And a newcomer cannot overtake the one still waiting
    newcomer = asyncio.ensure_future(slots.admit(_Message("fourth")))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    slots.release()
    assert await admissions[1] is RUN
    assert not newcomer.done()
    slots.release()
    assert await newcomer is RUN


async def test_closing_the_slots_sends_every_waiting_delivery_back_and_later_ones_too() -> None:
    slots = JobSlots(1)
    assert await slots.admit(_Message("running")) is RUN  # type: ignore[arg-type]
    waiting = [
        asyncio.ensure_future(slots.admit(_Message(f"w{n}")))  # type: ignore[arg-type]
        for n in range(3)
    ]
    await asyncio.sleep(0)

    assert slots.close() == 3

    assert [await admission for admission in waiting] == [HAND_BACK] * 3
    assert await slots.admit(_Message("late")) is HAND_BACK  # type: ignore[arg-type]
    # A slot freed after the close still serves a delivery arriving then (as without slots).
    slots.release()
    assert await slots.admit(_Message("next")) is RUN  # type: ignore[arg-type]


async def test_a_waiting_delivery_can_be_cancelled_and_a_cancelled_wait_frees_its_place() -> None:
    slots = JobSlots(1)
    assert await slots.admit(_Message("running")) is RUN  # type: ignore[arg-type]
    doomed = asyncio.ensure_future(slots.admit(_Message("doomed")))  # type: ignore[arg-type]
    abandoned = asyncio.ensure_future(slots.admit(_Message("abandoned")))  # type: ignore[arg-type]
    kept = asyncio.ensure_future(slots.admit(_Message("kept")))  # type: ignore[arg-type]
    await asyncio.sleep(0)

    assert slots.cancel("doomed", "ops")
    assert not slots.cancel("nobody", "ops")
    assert await doomed == Admission("cancelled", "ops")
    abandoned.cancel()  # its task cancelled, as when the channel is lost
    with pytest.raises(asyncio.CancelledError):
        await abandoned
    assert slots.waiting == 1

    slots.release()
    assert await kept is RUN


# -- real worker processes ------------------------------------------------------------


async def _wait_unacked(node: RabbitMQNode, queue_name: str, expected: int) -> int:
    """Unacknowledged deliveries of ``queue_name`` as ``rabbitmqctl`` lists them, polled
    until they are ``expected`` or 20 s passed (the broker's figures lag)."""
    unacked = -1
    deadline = asyncio.get_running_loop().time() + 20
    while unacked != expected and asyncio.get_running_loop().time() < deadline:
        listed = await asyncio.to_thread(
            node.rabbitmqctl, "list_queues", "name", "messages_unacknowledged"
        )
        for line in listed.stdout.splitlines():
            name, _, count = line.partition("\t")
            if name == queue_name:
                unacked = int(count)
    return unacked


def _overlaps(events: list[dict[str, Any]]) -> list[str]:
    """Jobs that started while another was running, from one worker's events in order."""
    running: set[str] = set()
    overlapping = []
    for event in events:
        if event["event"] == "started":
            if running:
                overlapping.append(event["tag"])
            running.add(event["tag"])
        elif event["event"] in ("finished", "cancelled"):
            running.discard(event["tag"])
    return overlapping


async def test_a_worker_runs_one_job_at_a_time_while_the_broker_hands_it_four(
    farm: Farm, rabbitmq_node_session: RabbitMQNode | None
) -> None:
    # Given a worker that runs one job at a time with a prefetch of 4
    worker = await farm.start_worker(FARM_CONCURRENCY="1", FARM_PREFETCH="4")
    assert "(concurrency 1, prefetch 4)" in worker.log()
    results = str(farm.results)

    # When 6 jobs are queued, the first running until the test lets it end
    let_go = farm.tmp_path / "let-job-0-go"
    await queue(farm_jobs.run_until_file, results, "job-0", str(let_go))
    for number in range(1, 6):
        await queue(farm_jobs.sleep_then_record, results, f"job-{number}", 0.2)

    # Then the broker hands it 4 of them (2 stay ready, 4 unacknowledged) while 1 runs
    await wait_until(lambda: "job-0" in farm.tags("started"), message="the first job")
    await _wait_depth(farm, 2)
    if rabbitmq_node_session is not None:  # (its figures lag by a few seconds)
        unacked = await _wait_unacked(rabbitmq_node_session, farm.queue_name, 4)
        assert unacked == 4
    assert farm.tags("started") == ["job-0"]
    let_go.touch()
    # And every job runs once, in order, never two at once
    await wait_until(lambda: len(farm.tags("finished")) == 6, timeout=30, message="6 jobs")
    assert farm.tags("started") == [f"job-{n}" for n in range(6)]
    assert _overlaps(farm.events()) == []
    assert await farm.queue_depth() == 0


async def test_sigterm_returns_waiting_deliveries_at_once_and_they_run_once_elsewhere(
    farm: Farm,
) -> None:
    # Given a worker running one long job with three deliveries waiting behind it
    first = await farm.start_worker(FARM_CONCURRENCY="1", FARM_PREFETCH="4")
    results = str(farm.results)
    await queue(farm_jobs.sleep_then_record, results, "long", 3)
    for number in range(3):
        await queue(farm_jobs.sleep_then_record, results, f"waiting-{number}", 0.1)
    await wait_until(lambda: "long" in farm.tags("started"), message="the long job")
    await _wait_depth(farm, 0)

    # When it is asked to stop
    first.send(signal.SIGTERM)

    # Then the waiting ones are back in the queue at once, while the long job still runs
    await _wait_depth(farm, 3, timeout=2)
    assert "long" not in farm.tags("finished")
    assert "hands 3 waiting deliveries back to the queue" in first.log()
    # And the long job finishes before the worker exits
    assert await first.wait_exit() == 0
    assert farm.tags("finished") == ["long"]
    assert farm.tags("cancelled") == []

    # And the waiting ones run later on another worker, each once
    second = await farm.start_worker()
    await wait_until(lambda: len(farm.tags("finished")) == 4, message="the 3 handed back")
    started = collections.Counter(farm.tags("started"))
    assert started == {"long": 1, "waiting-0": 1, "waiting-1": 1, "waiting-2": 1}
    assert {e["pid"] for e in farm.events("started") if e["tag"] != "long"} == {second.pid}
    assert await farm.queue_depth() == 0


async def test_the_deliveries_of_a_sigkilled_worker_all_run_later_waiting_ones_once(
    farm: Farm,
) -> None:
    # Given a worker running one job with three deliveries waiting behind it
    doomed = await farm.start_worker(FARM_CONCURRENCY="1", FARM_PREFETCH="4")
    results = str(farm.results)
    await queue(farm_jobs.sleep_then_record, results, "running", 2)
    for number in range(3):
        await queue(farm_jobs.sleep_then_record, results, f"waiting-{number}", 0.1)
    await wait_until(lambda: "running" in farm.tags("started"), message="the first job")
    await _wait_depth(farm, 0)

    # When it is killed outright
    doomed.send(signal.SIGKILL)
    assert await doomed.wait_exit() == -signal.SIGKILL

    # Then the broker hands all four to another worker: each finishes once. The killed
    # running job runs again (at-least-once: its first run was cut short); the waiting
    # ones never started, so they run exactly once.
    rescuer = await farm.start_worker()
    await wait_until(lambda: len(farm.tags("finished")) == 4, message="4 jobs")
    assert collections.Counter(farm.tags("finished")) == {
        "running": 1,
        "waiting-0": 1,
        "waiting-1": 1,
        "waiting-2": 1,
    }
    assert collections.Counter(farm.tags("started")) == {
        "running": 2,
        "waiting-0": 1,
        "waiting-1": 1,
        "waiting-2": 1,
    }
    assert {e["pid"] for e in farm.events("finished")} == {rescuer.pid}


async def test_a_hard_timeout_starts_when_the_job_starts_not_while_it_waits(farm: Farm) -> None:
    # Given a worker running one job at a time, with a job of a 1 s hard timeout waiting
    # 1.5 s behind another
    worker = await farm.start_worker(FARM_CONCURRENCY="1", FARM_PREFETCH="2")
    results = str(farm.results)
    await queue(farm_jobs.sleep_then_record, results, "ahead", 1.5)
    await queue(farm_jobs.sleep_then_record, results, "timed", 0.2, __hard_timeout_s=1)

    # When both have run
    await wait_until(lambda: len(farm.tags("finished")) == 2, message="both jobs")

    # Then the timed one ran to its end: its hard timeout counted from its start
    assert farm.tags("finished") == ["ahead", "timed"]
    assert worker.process.poll() is None
    assert "hard timeout" not in worker.log()


# -- the heartbeat and a cancel, over a supervisor's link -----------------------------


class _Link:
    """The supervisor's end of a worker's link: heartbeats in, commands out."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.latest: Heartbeat | None = None

    async def until(self, condition: Any, timeout: float = 20) -> Heartbeat:
        async with asyncio.timeout(timeout):
            while True:
                line = await self.reader.readline()
                assert line, "the worker closed its link"
                self.latest = decode_heartbeat(line)
                if condition(self.latest):
                    return self.latest

    async def send(self, command: Cancel) -> None:
        self.writer.write(encode_line(command))
        await self.writer.drain()


@pytest.fixture
async def linked_worker(farm: Farm) -> AsyncIterator[tuple[WorkerProcess, _Link]]:
    """A worker at concurrency 1, prefetch 4, linked to the test as to a supervisor."""
    ours, theirs = socket.socketpair()
    environment = {
        **os.environ,
        "RABBITMQ_URL": farm.url,
        "QUEUE_NAME": farm.queue_name,
        "FARM_ALLOWED_MODULES": "farm_jobs",
        "FARM_CONCURRENCY": "1",
        "FARM_PREFETCH": "4",
        "FARM_HEARTBEAT_INTERVAL_S": "0.2",
        "FARM_SUPERVISOR_FD": str(theirs.fileno()),
        "PYTHONPATH": os.pathsep.join([str(SUPPORT), os.environ.get("PYTHONPATH", "")]),
    }
    log_path = Path(farm.tmp_path) / "linked-worker.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "fast_app.farm", "worker", "--log-level", "INFO"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=farm.tmp_path,
            pass_fds=[theirs.fileno()],
        )
    theirs.close()
    worker = WorkerProcess(process, log_path)
    farm.workers.append(worker)
    reader, writer = await asyncio.open_unix_connection(sock=ours, limit=1 << 20)
    try:
        await worker.wait_consuming()
        yield worker, _Link(reader, writer)
    finally:
        writer.close()


async def test_heartbeats_count_waiting_deliveries_apart_and_a_waiting_job_can_be_cancelled(
    farm: Farm, linked_worker: tuple[WorkerProcess, _Link]
) -> None:
    worker, link = linked_worker
    results = str(farm.results)
    # Given a long job running and two jobs waiting behind it
    running = await queue(farm_jobs.sleep_then_record, results, "running", 30)
    await queue(farm_jobs.sleep_then_record, results, "kept", 0.1)
    doomed = await queue(farm_jobs.sleep_then_record, results, "doomed", 0.1, __retries=3)

    # Then its heartbeat lists only the running job in flight, and counts the others apart
    beat = await link.until(lambda beat: beat.waiting == 2)
    assert [job.id for job in beat.in_flight] == [running.id]
    assert beat.in_flight_count == 1
    assert beat.concurrency == 1

    # When an operator cancels a waiting job
    await link.send(Cancel(job_id=doomed.id, sender="ops"))

    # Then it is dead-lettered as cancelled without running, and one job waits
    [letter] = await farm.dead_letters(1)
    assert letter.message_id == doomed.id
    assert letter.headers[h.DEAD_REASON] == "cancelled"
    beat = await link.until(lambda beat: beat.waiting == 1 and beat.counters.cancelled == 1)
    assert [job.id for job in beat.in_flight] == [running.id]
    assert "doomed" not in farm.tags("started")
    assert f"cancels job {doomed.id} before it started, asked by ops" in worker.log()


async def test_a_waiting_job_is_listed_by_id_and_a_cancel_reaches_it_before_or_once_it_started(
    farm: Farm, linked_worker: tuple[WorkerProcess, _Link]
) -> None:
    worker, link = linked_worker
    results = str(farm.results)
    # Given a short job running and two jobs waiting behind it
    ahead = await queue(farm_jobs.sleep_then_record, results, "ahead", 2)
    doomed = await queue(farm_jobs.sleep_then_record, results, "doomed", 30)
    late = await queue(farm_jobs.sleep_then_record, results, "late", 30)

    # Then its heartbeat lists the waiting ones by id, first in line first, apart from
    # the job in flight
    beat = await link.until(lambda beat: beat.waiting == 2)
    function = "farm_jobs.sleep_then_record"
    assert beat.waiting_jobs == [
        WaitingEntry(id=doomed.id, function=function),
        WaitingEntry(id=late.id, function=function),
    ]
    assert [job.id for job in beat.in_flight] == [ahead.id]

    # When one is cancelled while it waits
    await link.send(Cancel(job_id=doomed.id, sender="ops"))

    # Then it ends as cancelled, reported as never started
    beat = await link.until(lambda beat: any(end.id == doomed.id for end in beat.ended))
    [ended] = [end for end in beat.ended if end.id == doomed.id]
    assert (ended.outcome, ended.started) == ("cancelled", False)
    assert ended.error == "cancelled: cancelled by ops before it started"

    # And when the other one started (listed as waiting earlier) and is cancelled then
    await wait_until(lambda: "late" in farm.tags("started"), message="the late job to start")
    await link.send(Cancel(job_id=late.id, sender="ops"))

    # Then the worker cancels it while it runs (the running path, not the line)
    beat = await link.until(lambda beat: any(end.id == late.id for end in beat.ended))
    [ended] = [end for end in beat.ended if end.id == late.id]
    assert (ended.outcome, ended.started) == ("cancelled", True)
    assert ended.error == "cancelled: cancelled by ops"
    await wait_until(lambda: "late" in farm.tags("cancelled"), message="the cancellation")
    letters = await farm.dead_letters(2)
    assert sorted((letter.message_id, letter.headers[h.DEAD_REASON]) for letter in letters) == (
        sorted([(doomed.id, "cancelled"), (late.id, "cancelled")])
    )
    assert farm.tags("started") == ["ahead", "late"]
    assert farm.tags("finished") == ["ahead"]
    assert f"cancels job {late.id}, asked by ops" in worker.log()


async def _wait_depth(farm: Farm, ready: int, timeout: float = 20) -> None:
    """Poll the jobs queue until ``ready`` jobs are ready."""
    deadline = asyncio.get_running_loop().time() + timeout
    depth = await farm.queue_depth()
    while depth != ready:
        assert asyncio.get_running_loop().time() < deadline, f"{depth} ready, not {ready}"
        await asyncio.sleep(0.05)
        depth = await farm.queue_depth()
