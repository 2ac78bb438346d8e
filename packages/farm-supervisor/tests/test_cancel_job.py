"""Cancelling one running job, or one waiting inside a worker for a slot: ``fast-app
cancel JOB`` and the ``cancel_job`` command (issue 14, "what operators expect to see").
Real supervisors, workers and broker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any

import farm_jobs
import msgspec
import pytest
from farm_testkit import Farm, start_supervisor, wait_until

from fast_app.core.queue import get_settings, queue
from fast_app.core.queue.amqp import headers as h
from fast_app.farm.cli import cancel as cancel_cli
from fast_app.farm.cli.cancel import ListedJob, find_jobs
from fast_app.farm.listener import collect_snapshots
from fast_app.farm.messages import (
    Cancel,
    CancelJob,
    Heartbeat,
    InFlightEntry,
    WorkerCounters,
    command_from_dict,
    decode_command,
    decode_heartbeat,
    decode_worker_command,
    encode_command,
    encode_line,
)
from fast_app.farm.supervisor._broker import SupervisorBroker


def run_cancel(farm: Farm, *arguments: str) -> subprocess.CompletedProcess[str]:
    """``fast-app cancel`` as an operator runs it, against the farm's broker."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("QUEUE_", "FARM_", "RABBITMQ_", "ASYNC_FARM_"))
    }
    environment |= {"RABBITMQ_URL": farm.url, "QUEUE_NAME": farm.queue_name}
    return subprocess.run(
        [sys.executable, "-m", "fast_app.farm", "cancel", *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def _one_worker(farm: Farm, supervisor_id: str) -> None:
    supervisor = await start_supervisor(
        farm, "--min-workers", "1", "--max-workers", "1", "--supervisor-id", supervisor_id
    )
    await wait_until(lambda: "consuming" in supervisor.log(), message="a consuming worker")


# -- real processes --------------------------------------------------------------------


async def test_fast_app_cancel_cancels_a_running_async_job_for_good(farm: Farm) -> None:
    # Given a long async job running, with retries left
    await _one_worker(farm, "cancel-sup")
    results = str(farm.results)
    job = await queue(farm_jobs.sleep_then_record, results, "long", 60, __retries=3)
    await wait_until(lambda: "long" in farm.tags("started"), message="the job to start")

    # When an operator cancels it by a prefix of its id
    finished = await asyncio.to_thread(run_cancel, farm, job.id[:8])

    # Then the command says so, and the job's code saw the cancellation
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert f"cancelled job {job.id}" in finished.stdout
    assert "dead-lettered with reason 'cancelled'" in finished.stdout
    await wait_until(lambda: "long" in farm.tags("cancelled"), message="the cancellation")
    # ...it lands in the dead-letter queue with reason `cancelled` (nothing lost)
    [letter] = await farm.dead_letters(1)
    assert letter.message_id == job.id
    assert (letter.headers or {})[h.DEAD_REASON] == "cancelled"
    # ...the supervisor recorded it
    [supervisor] = farm.supervisors
    assert "cancelling job " + job.id in supervisor.log()
    # ...and the worker goes on taking jobs, never running the cancelled one again
    await queue(farm_jobs.record, results, "next")
    await wait_until(lambda: "next" in farm.tags("ran"), message="the next job")
    await asyncio.sleep(1.5)  # a redelivery or a retry (backoff 0.2 s) would be here by now
    assert farm.tags("started").count("long") == 1, farm.events()
    assert await farm.queue_depth() == 0


async def test_cancel_job_stops_a_job_running_with_timeouts_and_is_recorded(farm: Farm) -> None:
    # Given a job with soft and hard timeouts (it runs in a task of its own, with a timer)
    await _one_worker(farm, "timed-sup")
    results = str(farm.results)
    job = await queue(
        farm_jobs.sleep_then_record,
        results,
        "timed",
        60,
        __soft_timeout_s=30,
        __hard_timeout_s=40,
        __retries=2,
    )
    await wait_until(lambda: "timed" in farm.tags("started"), message="the job to start")

    # When a cancel_job reaches its supervisor (as the dashboard sends it)
    sender = SupervisorBroker(get_settings(), "test-sender", lambda _command: None)
    try:
        await sender.send_command("timed-sup", {"command": "cancel_job", "job_id": job.id})
    finally:
        await sender.close()

    # Then the job is cancelled and dead-lettered as such
    await wait_until(lambda: "timed" in farm.tags("cancelled"), message="the cancellation")
    [letter] = await farm.dead_letters(1)
    assert (letter.headers or {})[h.DEAD_REASON] == "cancelled"
    # ...and the snapshots count it and list how it ended
    settings = get_settings()
    snapshot: dict[str, Any] = {}

    async def recorded() -> bool:
        nonlocal snapshot
        [snapshot] = await collect_snapshots(settings, wait_s=0.5)
        return any(end["id"] == job.id for end in snapshot["recent_jobs"]["failed"])

    deadline = time.monotonic() + 15
    while not await recorded():
        assert time.monotonic() < deadline, snapshot
    [ended] = [end for end in snapshot["recent_jobs"]["failed"] if end["id"] == job.id]
    assert ended["outcome"] == "cancelled"
    assert ended["error"] == "cancelled: cancelled by supervisor test-sender"
    [worker] = snapshot["workers"]
    assert worker["counters"]["cancelled"] == 1
    assert worker["counters"]["dead_lettered"] == 0
    assert worker["counters"]["failed"] == 0
    events = {event["kind"] for event in snapshot["events"]}
    assert "cancel_forwarded" in events
    # ...and the same worker takes the next job
    await queue(farm_jobs.record, results, "next")
    await wait_until(lambda: "next" in farm.tags("ran"), message="the next job")
    assert len(farm.supervisors[0].worker_pids()) == 1


async def test_a_job_in_a_thread_is_refused_because_threads_cannot_be_stopped(
    farm: Farm,
) -> None:
    # Given a plain function running in a worker thread
    await _one_worker(farm, "thread-sup")
    results = str(farm.results)
    job = await queue(farm_jobs.sleep_in_thread_then_record, results, "threaded", 20)
    await wait_until(lambda: "threaded" in farm.tags("started"), message="the job to start")

    # When an operator cancels it
    finished = await asyncio.to_thread(run_cancel, farm, job.id)

    # Then it is refused, saying why
    assert finished.returncode == 1, finished.stdout + finished.stderr
    assert "runs in a thread" in finished.stderr
    assert "threads cannot be stopped" in finished.stderr

    # And a cancel_job sent to the supervisor directly is refused there too
    sender = SupervisorBroker(get_settings(), "test-sender", lambda _command: None)
    try:
        await sender.send_command("thread-sup", {"command": "cancel_job", "job_id": job.id})
    finally:
        await sender.close()
    [supervisor] = farm.supervisors
    await wait_until(
        lambda: f"cannot cancel job {job.id}" in supervisor.log(), message="the refusal"
    )
    assert "threads cannot be stopped" in supervisor.log()
    assert farm.tags("cancelled") == []


async def test_fast_app_cancel_cancels_a_job_waiting_for_a_slot_before_it_starts(
    farm: Farm,
) -> None:
    # Given a worker at concurrency 1 and prefetch 3, running a long job while a second
    # one waits inside it for the slot
    supervisor = await start_supervisor(
        farm,
        "--min-workers",
        "1",
        "--max-workers",
        "1",
        "--supervisor-id",
        "waiting-sup",
        FARM_CONCURRENCY="1",
        FARM_PREFETCH="3",
    )
    await wait_until(lambda: "consuming" in supervisor.log(), message="a consuming worker")
    results = str(farm.results)
    first = await queue(farm_jobs.sleep_then_record, results, "first", 12)
    await wait_until(lambda: "first" in farm.tags("started"), message="the first job to start")
    second = await queue(farm_jobs.record, results, "second", __retries=3)
    settings = get_settings()

    async def listed_waiting() -> bool:
        # Polled: a busy host may publish no snapshot within one short listen.
        snapshots = await collect_snapshots(settings, wait_s=0.5)
        return any(job["id"] == second.id for each in snapshots for job in each["waiting_jobs"])

    deadline = time.monotonic() + 15
    while not await listed_waiting():
        assert time.monotonic() < deadline, "the second job never listed as waiting"

    # When an operator cancels it by a prefix of its id
    finished = await asyncio.to_thread(run_cancel, farm, second.id[:8])

    # Then the command says it was cancelled before it started
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert f"cancelled job {second.id} (farm_jobs.record) before it started" in finished.stdout
    assert "never ran" in finished.stdout
    assert "dead-lettered with reason 'cancelled'" in finished.stdout
    # ...it is dead-lettered as cancelled, and it never ran
    [letter] = await farm.dead_letters(1)
    assert letter.message_id == second.id
    assert (letter.headers or {})[h.DEAD_REASON] == "cancelled"
    assert "cancelled by" in (letter.headers or {})[h.DEAD_ERROR]
    assert "before it started" in (letter.headers or {})[h.DEAD_ERROR]
    assert "cancelling job " + second.id + " (farm_jobs.record) waiting" in supervisor.log()
    # ...and the first job, running all along, is unaffected: it runs to its end
    assert "first" not in farm.tags("cancelled")
    await wait_until(
        lambda: "first" in farm.tags("finished"), timeout=30, message="the first job's end"
    )
    assert farm.tags("finished") == ["first"]
    assert "second" not in farm.tags("ran")
    # ...and the worker goes on taking jobs, never running the cancelled one
    await queue(farm_jobs.record, results, "next")
    await wait_until(lambda: "next" in farm.tags("ran"), message="the next job")
    assert farm.tags("ran") == ["next"]
    assert first.id != second.id and await farm.queue_depth() == 0


async def test_cancel_says_when_no_running_job_matches(farm: Farm) -> None:
    await _one_worker(farm, "idle-sup")

    finished = await asyncio.to_thread(run_cancel, farm, "0123456789abcdef", "--wait", "1.5")

    assert finished.returncode == 1, finished.stdout + finished.stderr
    assert "no running or waiting job's id starts with 0123456789abcdef" in finished.stderr


def test_cancel_refuses_a_prefix_shorter_than_six_characters() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "fast_app.farm", "cancel", "abc"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 2
    assert "at least 6 characters" in finished.stderr


# -- resolving a prefix ----------------------------------------------------------------


def _snapshot(supervisor_id: str, *jobs: tuple[str, bool]) -> dict[str, object]:
    in_flight = [{"id": job_id, "function": "m:f", "in_thread": thread} for job_id, thread in jobs]
    return {
        "supervisor_id": supervisor_id,
        "workers": [{"worker_id": "w1", "in_flight": in_flight}],
    }


def test_a_unique_prefix_finds_the_job_and_its_supervisor() -> None:
    snapshots = [_snapshot("s1", ("aaaaaa11", False)), _snapshot("s2", ("bbbbbb22", True))]

    assert find_jobs("bbbbbb", snapshots) == [ListedJob("bbbbbb22", "m:f", "s2", "w1", True)]


def test_an_ambiguous_prefix_finds_every_match_and_an_exact_id_wins() -> None:
    snapshots = [_snapshot("s1", ("abcdef1", False), ("abcdef2", False), ("abcdef", False))]

    assert [job.job_id for job in find_jobs("abcdef", snapshots)] == ["abcdef"]
    assert [job.job_id for job in find_jobs("abcdef1", snapshots)] == ["abcdef1"]
    del snapshots[0]["workers"][0]["in_flight"][2]  # type: ignore[index]
    assert [job.job_id for job in find_jobs("abcdef", snapshots)] == ["abcdef1", "abcdef2"]


def test_a_prefix_finds_a_job_waiting_for_a_slot_and_one_in_flight_wins() -> None:
    # Given snapshots listing a waiting job apart from the jobs in flight
    waiting = {"id": "cccccc33", "function": "m.g", "worker_id": "w2"}
    unnamed = {"id": "dddddd44", "worker_id": "w3"}
    snapshots = [_snapshot("s1", ("aaaaaa11", False)) | {"waiting_jobs": [waiting, unnamed]}]

    # Then a prefix finds it, as waiting, on its worker
    assert find_jobs("cccccc", snapshots) == [
        ListedJob("cccccc33", "m.g", "s1", "w2", False, waiting=True)
    ]
    assert find_jobs("dddddd", snapshots)[0].function == "?"
    # ...and a job listed both waiting and in flight (snapshots of two moments) is in flight
    snapshots.append(_snapshot("s2", ("cccccc33", False)))
    assert find_jobs("cccccc", snapshots) == [ListedJob("cccccc33", "m:f", "s2", "w1", False)]


def _heard(*ended: dict[str, Any], in_flight: list[dict[str, Any]] | None = None) -> Any:
    """What ``fast-app cancel`` heard: one snapshot of s1, its failed ends and jobs."""
    heard = cancel_cli._Snapshots()
    snapshot = _snapshot("s1") | {"at": 1.0, "events": [], "recent_jobs": {"failed": ended}}
    snapshot["workers"][0]["in_flight"] = in_flight or []  # type: ignore[index]
    heard.keep(snapshot)
    return heard


@pytest.mark.parametrize(
    ("waiting", "started", "said"),
    [
        (True, False, "cancelled job j1 (m.f) before it started: it was waiting for a slot"),
        (True, True, "cancelled job j1 (m.f) while it ran on worker w1: it started before"),
        (False, True, "cancelled job j1 (m.f) on worker w1; dead-lettered"),
    ],
)
async def test_cancel_says_whether_the_job_was_cancelled_before_it_started_or_while_it_ran(
    capsys: pytest.CaptureFixture[str], waiting: bool, started: bool, said: str
) -> None:
    # Given a job found waiting (or running), which then ended as cancelled
    job = ListedJob("j1", "m.f", "s1", "w1", False, waiting=waiting)
    heard = _heard({"id": "j1", "outcome": "cancelled", "started": started})

    # When the command waits for its end
    code = await cancel_cli._wait_for_the_end(heard, job, -1, 1.0)

    # Then it says how it ended
    assert code == 0
    assert said in capsys.readouterr().out


async def test_cancel_says_when_a_waiting_job_started_in_a_thread_before_the_cancel(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a plain function found waiting, now listed running in a thread
    job = ListedJob("j1", "m.f", "s1", "w1", False, waiting=True)
    heard = _heard(in_flight=[{"id": "j1", "function": "m.f", "in_thread": True}])

    # When the command waits for its end, then it says at once that it cannot be cancelled
    code = await cancel_cli._wait_for_the_end(heard, job, -1, 10.0)

    assert code == 1
    error = capsys.readouterr().err
    assert "threads cannot be stopped; it started before the cancel reached it" in error


# -- the message types -----------------------------------------------------------------


def test_cancel_job_round_trips_and_is_decoded_strictly() -> None:
    command = command_from_dict({"command": "cancel_job", "job_id": "abc-123"}, sender="me")

    assert isinstance(command, CancelJob)
    assert decode_command(encode_command(command)) == command
    with pytest.raises(msgspec.ValidationError):
        command_from_dict({"command": "cancel_job"})  # no job id
    with pytest.raises(msgspec.ValidationError):
        command_from_dict({"command": "cancel_job", "job_id": "x" * 65})  # too long
    with pytest.raises(msgspec.ValidationError):
        command_from_dict({"command": "cancel_job", "job_id": "a b\n"})  # not an id
    with pytest.raises(msgspec.ValidationError):
        command_from_dict({"command": "cancel_job", "job_id": "abc", "worker_id": "w"})


def test_the_worker_link_cancel_round_trips_and_is_decoded_strictly() -> None:
    cancel = Cancel(job_id="abc-123", sender="host-1")

    assert decode_worker_command(encode_line(cancel)) == cancel
    assert decode_worker_command(b'{"command":"cancel","job_id":"j1"}') == Cancel(job_id="j1")
    for bad in (
        b'{"command":"cancel"}',
        b'{"command":"cancel","job_id":""}',
        b'{"command":"cancel","job_id":"j1","extra":1}',
        b'{"command":"cancel","job_id":"j1","sender":"' + b"x" * 5000 + b'"}',
    ):
        with pytest.raises(msgspec.ValidationError):
            decode_worker_command(bad)


def test_heartbeats_carry_cancelled_counts_and_whether_a_job_runs_in_a_thread() -> None:
    entry = InFlightEntry("j1", "m.f", 1, 1.0, None, None, False, "()", in_thread=True)
    beat = Heartbeat(
        worker_id="w1",
        pid=1,
        state="busy",
        at=1.0,
        started_at=1.0,
        concurrency=1,
        in_flight=[entry],
        in_flight_count=1,
        counters=WorkerCounters(cancelled=2),
        ended=[],
        rss_bytes=None,
    )

    decoded = decode_heartbeat(encode_line(beat))

    assert decoded.in_flight[0].in_thread is True
    assert decoded.counters.cancelled == 2
    # A heartbeat without the new fields still decodes: a job in a thread is not assumed.
    legacy = msgspec.json.decode(encode_line(beat))
    del legacy["in_flight"][0]["in_thread"]
    del legacy["counters"]["cancelled"]
    old = decode_heartbeat(msgspec.json.encode(legacy))
    assert old.in_flight[0].in_thread is False
    assert old.counters.cancelled == 0
