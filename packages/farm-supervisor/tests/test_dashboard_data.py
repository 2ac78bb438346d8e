"""What supervisors tell dashboards: jobs ended and in flight, events, bounded snapshots;
and the commands a dashboard sends."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import farm_jobs
import msgspec
import pytest
from farm_messages import heartbeat
from farm_testkit import Farm, start_supervisor, wait_until

from fast_app.core.queue import get_settings, queue
from fast_app.core.queue.envelope import JobEnvelope, JobOptions
from fast_app.core.queue.handle import JobError
from fast_app.core.queue.settings import QueueSettings
from fast_app.farm.cli import main
from fast_app.farm.listener import FarmListener, collect_snapshots
from fast_app.farm.messages import (
    EndedJob,
    InFlightEntry,
    WorkerCounters,
    decode_snapshot,
    encode_snapshot,
)
from fast_app.farm.settings import FarmSettings
from fast_app.farm.supervisor import Supervisor
from fast_app.farm.supervisor._snapshot import IN_FLIGHT_LISTED
from fast_app.farm.supervisor._workers import WorkerProcess
from fast_app.farm.worker._state import RecentJobs, context_keys, preview_arguments


def envelope(job_id: str = "j1", args: list[Any] | None = None, **context: Any) -> JobEnvelope:
    return JobEnvelope(
        format=1,
        id=job_id,
        function="app.jobs.work",
        args=[1, "two"] if args is None else args,
        kwargs={"flag": True},
        context=context,
        options=JobOptions(),
        enqueued_at=0.0,
    )


# -- worker side: cheap on the job path, bounded ----------------------------------------


def test_an_arguments_preview_is_short_and_costs_the_same_for_huge_arguments() -> None:
    huge = [list(range(1000)) for _ in range(1000)]

    started = time.perf_counter()
    preview = preview_arguments([huge, "x" * 10_000], {"key": {"a": 1}})
    took = time.perf_counter() - started

    assert preview.startswith(
        "([[0, 1, 2, 3, ...], [0, 1, 2, 3, ...], [0, 1, 2, 3, ...], [0, 1, 2, 3, ...], ...], 'xxx"
    )
    assert len(preview) <= 160
    assert took < 0.01
    assert context_keys({f"k{n}": n for n in range(20)}) == [f"k{n}" for n in range(12)]


def test_recent_jobs_keep_the_last_few_of_each_kind_until_a_heartbeat_takes_them() -> None:
    recent = RecentJobs(successes=2, failures=3)
    for number in range(5):
        recent.add(envelope(f"ok-{number}"), "succeeded", 0.01, None)
    error = JobError("ValueError", "boom", "Traceback...\n" + "x" * 5000)
    recent.add(envelope("bad", request_id="r1"), "dead_lettered", 0.5, error)

    taken = recent.take()

    assert [job.id for job in taken] == ["ok-3", "ok-4", "bad"]
    bad = taken[-1]
    assert bad.error == "ValueError: boom"
    assert bad.traceback is not None and len(bad.traceback) == 1000
    assert bad.context_keys == ["request_id"]
    assert bad.args == "(1, 'two', flag=True)"
    assert recent.take() == []


# -- supervisor side: snapshots stay small whatever the load --------------------------


def fake_worker(number: int, jobs: int) -> WorkerProcess:
    now = time.time()
    in_flight = [
        InFlightEntry(
            id=f"{number:04d}{slot:04d}" + "a" * 24,
            function="app.jobs.a_rather_long_module_name.and_function_name",
            attempt=1,
            started_at=now - slot - number / 100,
            soft_deadline=now + 30,
            hard_deadline=now + 60,
            still_running=False,
            args="(" + "x" * 158 + ")",
            context_keys=[f"key_{n}" for n in range(12)],
            traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01",
        )
        for slot in range(jobs)
    ]
    process: Any = SimpleNamespace(pid=10_000 + number, returncode=None)
    socket: Any = None
    worker = WorkerProcess(f"host-1-w{number}", process, time.monotonic(), socket)
    worker.heartbeat = heartbeat(
        state="busy",
        in_flight=in_flight,
        in_flight_count=len(in_flight),
        counters=WorkerCounters(succeeded=10**9),
    )
    ended = EndedJob(
        id="f" * 32,
        function="app.jobs.a_rather_long_module_name.and_function_name",
        attempt=1,
        outcome="dead_lettered",
        ended_at=now,
        duration_s=1.0,
        args="(" + "x" * 158 + ")",
        context_keys=[f"key_{n}" for n in range(12)],
        error="E" * 300,
        traceback="T" * 1000,
    )
    worker.ended.extend(ended for _ in range(32))
    return worker


def test_a_snapshot_of_32_busy_workers_lists_the_oldest_jobs_and_stays_small(
    rabbitmq_url: str,
) -> None:
    supervisor = Supervisor(
        FarmSettings(max_workers=32), QueueSettings(rabbitmq_url=rabbitmq_url, name="big")
    )
    for number in range(32):
        worker = fake_worker(number, 16)
        supervisor.workers[worker.worker_id] = worker
    for number in range(100):
        supervisor.events.record(
            20, "worker_started", "worker %s started (pid %d)", "w" * 40, number
        )
        supervisor.decisions.append({"at": 0.0, "from": 1, "to": 2, "reason": "r" * 150})

    message = supervisor.snapshot()
    body = encode_snapshot(message)
    assert decode_snapshot(body) == message  # within every bound of the contract
    snapshot = msgspec.to_builtins(message)

    size = len(body)
    assert size < 64_000, f"{size} bytes"
    listed = [job for worker in snapshot["workers"] for job in worker["in_flight"]]
    assert len(listed) == IN_FLIGHT_LISTED
    oldest = sorted(job.started_at for w in supervisor.workers.values() for job in w.in_flight)
    assert sorted(job["started_at"] for job in listed) == oldest[:IN_FLIGHT_LISTED]
    assert sum(worker["in_flight_count"] for worker in snapshot["workers"]) == 32 * 16
    assert snapshot["queue"]["unacked"] == 32 * 16
    assert len(snapshot["recent_jobs"]["failed"]) == 10
    assert len(snapshot["events"]) == 40


# -- against a real supervisor --------------------------------------------------------


async def snapshots_of(settings: QueueSettings, wait_s: float = 0.6) -> dict[str, Any]:
    [snapshot] = await collect_snapshots(settings, wait_s=wait_s)
    return snapshot


async def test_snapshots_show_jobs_in_flight_jobs_ended_and_lifecycle_events(farm: Farm) -> None:
    supervisor = await start_supervisor(farm, "--min-workers", "1", "--max-workers", "1")
    await wait_until(lambda: "consuming" in supervisor.log(), message="a consuming worker")
    results = str(farm.results)

    held = await queue(farm_jobs.sleep_then_record, results, "held", 5)
    failed = await queue(farm_jobs.fail, results, "doomed", __retries=0)
    await wait_until(lambda: "doomed" in farm.tags("ran") and "held" in farm.tags("started"))

    settings = get_settings()
    snapshot: dict[str, Any] = {}

    async def heard() -> bool:
        nonlocal snapshot
        snapshot = await snapshots_of(settings)
        return bool(snapshot["recent_jobs"]["failed"])

    deadline = time.monotonic() + 15
    while not await heard():
        assert time.monotonic() < deadline, snapshot
    [worker] = snapshot["workers"]
    [running] = worker["in_flight"]
    assert running["id"] == held.id
    assert running["args"].startswith("('/tmp") and running["args"].endswith("', 'held', 5)")
    assert worker["in_flight_count"] == 1
    assert snapshot["queue"]["unacked"] == 1
    [ended] = snapshot["recent_jobs"]["failed"]
    assert ended["id"] == failed.id
    assert ended["outcome"] == "dead_lettered"
    assert ended["error"] == "builtins.ValueError: doomed always fails"
    assert "raise ValueError" in ended["traceback"]
    assert ended["worker_id"] == worker["worker_id"]
    kinds = [event["kind"] for event in snapshot["events"]]
    assert kinds[:3] == ["supervisor_started", "scaled", "worker_started"]
    assert [event["seq"] for event in snapshot["events"]] == sorted(
        event["seq"] for event in snapshot["events"]
    )


async def send(settings: QueueSettings, supervisor_id: str, command: dict[str, Any]) -> None:
    listener = FarmListener(settings, lambda _snapshot: None)
    await listener.start()
    try:
        await listener.send_command(supervisor_id, command)
    finally:
        await listener.close()


async def test_restart_replaces_a_worker_and_drain_takes_one_out_of_the_pool(farm: Farm) -> None:
    supervisor = await start_supervisor(
        farm, "--min-workers", "2", "--max-workers", "3", "--supervisor-id", "sup-r"
    )
    await wait_until(lambda: len(supervisor.live_worker_pids()) == 2, message="2 workers")
    settings = get_settings()
    first, second = sorted(supervisor.live_worker_pids())

    await send(settings, "sup-r", {"command": "restart_worker", "worker_id": first})

    await wait_until(
        lambda: sorted(supervisor.live_worker_pids()) == [second, "sup-r-w3"],
        message="w1 replaced by w3",
    )
    assert f"worker {first} stopped" in supervisor.log()

    await send(settings, "sup-r", {"command": "set_limits", "min_workers": 1, "max_workers": 3})
    await send(settings, "sup-r", {"command": "drain_worker", "worker_id": second})

    await wait_until(
        lambda: sorted(supervisor.live_worker_pids()) == ["sup-r-w3"], message="w2 drained"
    )
    snapshot = await snapshots_of(settings, wait_s=1.0)
    assert [w["worker_id"] for w in snapshot["workers"]] == ["sup-r-w3"]
    assert snapshot["desired_workers"] == 1
    commands = [e["message"] for e in snapshot["events"] if e["kind"] == "command"]
    assert len(commands) == 3


async def publish_raw(url: str, exchange: str, routing_key: str, body: bytes) -> None:
    import aio_pika

    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        target = await channel.get_exchange(exchange, ensure=False)
        await target.publish(aio_pika.Message(body), routing_key=routing_key)
    finally:
        await connection.close()


async def test_impossible_limits_are_refused(farm: Farm) -> None:
    supervisor = await start_supervisor(
        farm, "--min-workers", "1", "--max-workers", "2", "--supervisor-id", "sup-l"
    )
    await wait_until(lambda: len(supervisor.live_worker_pids()) == 1, message="a worker")

    await send(
        get_settings(), "sup-l", {"command": "set_limits", "min_workers": 0, "max_workers": 0}
    )
    with pytest.raises(msgspec.ValidationError):  # refused where it is sent...
        await send(get_settings(), "sup-l", {"command": "set_limits", "min_workers": "x"})
    # ...and where it arrives, when written by hand.
    await publish_raw(
        farm.url,
        f"{farm.queue_name}.control",
        "sup-l",
        b'{"command": "set_limits", "min_workers": "x"}',
    )

    await wait_until(lambda: "refusing limits min=0 max=0" in supervisor.log())
    await wait_until(lambda: "ignored a command message" in supervisor.log())
    snapshot = await snapshots_of(get_settings(), wait_s=1.0)
    assert (snapshot["settings"]["min_workers"], snapshot["settings"]["max_workers"]) == (1, 2)
    assert supervisor.process.poll() is None


# -- the command line without the dashboard installed ---------------------------------


@pytest.mark.parametrize("command", [["work", "--tui"], ["top"]])
def test_without_the_dashboard_tui_and_top_say_how_to_install_it(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given no dashboard registered under the entry-point group fast-app-farm-tui fills.
    import importlib.metadata

    real = importlib.metadata.entry_points

    def without_dashboards(**params: Any) -> importlib.metadata.EntryPoints:
        if params.get("group") == "fast_app.farm.dashboards":
            return importlib.metadata.EntryPoints(())
        return real(**params)

    monkeypatch.setattr(importlib.metadata, "entry_points", without_dashboards)

    assert main(command) == 2
    assert "pip install fast-app-farm-tui" in capsys.readouterr().err
