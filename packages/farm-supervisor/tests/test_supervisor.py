"""The supervisor with real worker processes, real signals and a real broker."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import os
import signal
import time

import farm_jobs
from farm_testkit import Farm, pid_alive, start_supervisor, wait_until

from fast_app.core.queue import queue
from fast_app.core.queue.amqp import headers as h
from fast_app.farm.listener import collect_snapshots


async def test_it_starts_min_workers_that_report_heartbeats(farm: Farm) -> None:
    supervisor = await start_supervisor(farm, "--min-workers", "2", "--max-workers", "3")

    await wait_until(lambda: len(supervisor.live_worker_pids()) == 2, message="2 workers")
    await wait_until(lambda: farm.queue_depth is not None, message="-")
    from fast_app.core.queue import get_settings

    snapshots = await collect_snapshots(get_settings(), wait_s=1.0)
    [snapshot] = snapshots
    assert sorted(w["pid"] for w in snapshot["workers"]) == sorted(
        supervisor.live_worker_pids().values()
    )
    for worker in snapshot["workers"]:
        assert worker["state"] in {"starting", "idle"}
        assert worker["heartbeat_age_s"] < 2
    assert snapshot["settings"]["min_workers"] == 2
    assert snapshot["queue"]["consumers"] is not None


async def test_a_worker_that_dies_is_replaced_and_the_reason_logged(farm: Farm) -> None:
    supervisor = await start_supervisor(farm, "--min-workers", "1", "--max-workers", "1")
    await wait_until(lambda: len(supervisor.live_worker_pids()) == 1, message="a worker")
    [victim] = supervisor.live_worker_pids().values()

    os.kill(victim, signal.SIGKILL)

    await wait_until(
        lambda: supervisor.replaced(victim, 1),
        message="a replacement",
    )
    assert "died unexpectedly" in supervisor.log()
    assert "killed by SIGKILL" in supervisor.log()


async def test_a_crash_loop_is_slowed_down_by_backoff(farm: Farm) -> None:
    supervisor = await start_supervisor(
        farm, "--min-workers", "1", "--max-workers", "1", FARM_IMPORTS="no_such_app_module"
    )

    await wait_until(
        lambda: supervisor.log().count("died unexpectedly") >= 4, timeout=30, message="4 crashes"
    )

    assert "exit code 4 (the application failed to import or start)" in supervisor.log()
    assert "last error: could not start the application: ModuleNotFoundError" in supervisor.log()
    delays = [
        float(part.split("replacing it in ")[1].split("s")[0])
        for part in supervisor.log().splitlines()
        if "replacing it in" in part
    ]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]


async def test_a_hung_worker_is_killed_and_its_jobs_run_elsewhere(farm: Farm) -> None:
    supervisor = await start_supervisor(farm, "--min-workers", "1", "--max-workers", "1")
    await wait_until(lambda: "consuming" in supervisor.log(), message="a consuming worker")
    [stuck] = supervisor.live_worker_pids().values()
    await queue(farm_jobs.sleep_then_record, str(farm.results), "held", 0.5)
    await wait_until(lambda: farm.tags("started") == ["held"], message="the job to start")

    os.kill(stuck, signal.SIGSTOP)  # alive, silent: hung

    await wait_until(
        lambda: "hung" in supervisor.log(), timeout=10, message="the hung worker to be killed"
    )
    await wait_until(
        lambda: "held" in farm.tags("finished"), timeout=20, message="the job elsewhere"
    )
    assert not pid_alive(stuck)


async def test_a_job_blocking_the_event_loop_past_its_hard_timeout_is_killed_from_outside(
    farm: Farm,
) -> None:
    # Hung-worker detection (silence for 25 x 0.2 s) must not get there first.
    supervisor = await start_supervisor(
        farm,
        "--min-workers",
        "1",
        "--max-workers",
        "1",
        "--concurrency",
        "8",
        "--heartbeat-tolerance",
        "25",
    )
    await wait_until(lambda: "consuming" in supervisor.log(), message="a consuming worker")
    [first] = supervisor.live_worker_pids().values()
    results = str(farm.results)
    for number in range(3):
        await queue(farm_jobs.sleep_then_record, results, f"bystander-{number}", 1)
    await wait_until(lambda: len(farm.tags("started")) == 3, message="bystanders in flight")

    job = await queue(farm_jobs.block_loop, results, "blocker", 30, __hard_timeout_s=1)

    await wait_until(lambda: not pid_alive(first), timeout=10, message="the kill")
    started = next(e for e in farm.events("started") if e["tag"] == "blocker")
    assert "passed its hard timeout" in supervisor.log()
    [letter] = await farm.dead_letters(1, timeout=20)
    assert letter.message_id == job.id
    assert letter.headers[h.DEAD_REASON] == "hard_timeout"
    await wait_until(lambda: len(farm.tags("finished")) == 3, timeout=20, message="bystanders")
    assert farm.tags("started").count("blocker") == 1, "the killed job must not run again"
    assert started is not None


async def test_workers_exit_when_their_supervisor_is_sigkilled(farm: Farm) -> None:
    supervisor = await start_supervisor(farm, "--min-workers", "2", "--max-workers", "2")
    await wait_until(lambda: len(supervisor.live_worker_pids()) == 2, message="2 workers")
    workers = list(supervisor.live_worker_pids().values())

    supervisor.send(signal.SIGKILL)

    await wait_until(
        lambda: not any(pid_alive(pid) for pid in workers), timeout=15, message="no orphans"
    )


async def test_sigterm_drains_the_workers_and_exits_zero(farm: Farm) -> None:
    supervisor = await start_supervisor(farm, "--min-workers", "2", "--max-workers", "2")
    await wait_until(
        lambda: (
            supervisor.log().count("consuming") >= 0 and len(supervisor.live_worker_pids()) == 2
        ),
        message="2 workers",
    )
    results = str(farm.results)
    for number in range(4):
        await queue(farm_jobs.sleep_then_record, results, f"job-{number}", 1)
    await wait_until(lambda: len(farm.tags("started")) == 4, message="4 jobs in flight")
    workers = list(supervisor.live_worker_pids().values())

    supervisor.send(signal.SIGTERM)

    assert await supervisor.wait_exit(30) == 0
    assert sorted(farm.tags("finished")) == [f"job-{n}" for n in range(4)]
    assert not any(pid_alive(pid) for pid in workers)


async def test_a_burst_scales_the_pool_up_to_max_then_back_to_min(farm: Farm) -> None:
    # Jobs of 200 ms: one worker (16 slots) drains 80 jobs/s, three 240/s, less than the
    # test publishes even on a busy machine, so the backlog grows until the pool is at max.
    # One worker would take 25 s for the 2000; ask for half a second.
    supervisor = await start_supervisor(
        farm, "--min-workers", "1", "--max-workers", "4", "--cooldown", "2", "--target-drain", "0.5"
    )
    await wait_until(lambda: "consuming" in supervisor.log(), message="a consuming worker")
    results = str(farm.results)

    await asyncio.gather(
        *(queue(farm_jobs.sleep_then_record, results, f"job-{n}", 0.2) for n in range(2000))
    )

    await wait_until(
        lambda: len(supervisor.live_worker_pids()) == 4, timeout=20, message="4 workers"
    )
    await wait_until(lambda: len(farm.tags("finished")) >= 2000, timeout=90, message="2000 jobs")
    await wait_until(
        lambda: len(supervisor.live_worker_pids()) == 1, timeout=30, message="back to 1"
    )
    finished = collections.Counter(farm.tags("finished"))
    assert len(finished) == 2000
    assert set(finished.values()) == {1}
    assert "scale up" in supervisor.log()
    assert "scale down" in supervisor.log()


async def test_a_supervisor_counts_another_host_s_jobs_in_flight_as_taken_slots(
    farm: Farm,
) -> None:
    # Given host A with 2 workers of 4 slots, fixed, and host B with 1 (up to 3).
    slots = {"FARM_CONCURRENCY": "4"}
    host_a = await start_supervisor(
        farm, "--min-workers", "2", "--max-workers", "2", "--supervisor-id", "host-a", **slots
    )
    await wait_until(lambda: len(host_a.live_worker_pids()) == 2, message="host A's workers")
    host_b = await start_supervisor(
        farm, "--min-workers", "1", "--max-workers", "3", "--supervisor-id", "host-b", **slots
    )
    await wait_until(lambda: len(host_b.live_worker_pids()) == 1, message="host B's worker")
    await wait_until(
        lambda: host_b.log().count("consuming") >= 1 and host_a.log().count("consuming") >= 2,
        message="all consuming",
    )

    # When 14 long jobs fill the 12 slots of the farm: 2 stay ready.
    results = str(farm.results)
    await asyncio.gather(
        *(queue(farm_jobs.sleep_then_record, results, f"long-{n}", 8) for n in range(14))
    )

    # Then B adds a worker for them: A's 8 jobs in flight are not free slots. (Counting
    # only its own jobs, B would see 8 free slots for 2 ready jobs and hold.)
    await wait_until(
        lambda: len(host_b.live_worker_pids()) >= 2, timeout=20, message="host B scaling up"
    )
    assert "(+2 other consumers)" in host_b.log()
    assert len(host_a.live_worker_pids()) == 2


async def test_commands_reach_only_the_supervisor_they_are_addressed_to(farm: Farm) -> None:
    from fast_app.core.queue import get_settings
    from fast_app.farm.supervisor._broker import SupervisorBroker

    first = await start_supervisor(farm, "--min-workers", "1", "--supervisor-id", "sup-a")
    second = await start_supervisor(farm, "--min-workers", "1", "--supervisor-id", "sup-b")
    await wait_until(
        lambda: len(first.live_worker_pids()) == 1 and len(second.live_worker_pids()) == 1,
        message="both",
    )
    sender = SupervisorBroker(get_settings(), "test-sender", lambda _command: None)
    try:
        await sender.send_command("sup-a", {"command": "shutdown"})
    finally:
        await sender.close()

    assert await first.wait_exit(30) == 0
    await asyncio.sleep(1)
    assert second.process.poll() is None
    assert len(second.live_worker_pids()) == 1


async def test_invalid_settings_exit_2_with_the_variable_named(farm: Farm) -> None:
    supervisor = await start_supervisor(farm, "--min-workers", "5", "--max-workers", "2")

    assert await supervisor.wait_exit(20) == 2
    assert "FARM_MIN_WORKERS (5) must not be above FARM_MAX_WORKERS (2)" in supervisor.log()
    assert "Traceback" not in supervisor.log()


async def test_an_unreachable_broker_at_start_exits_2(farm: Farm) -> None:
    supervisor = await start_supervisor(
        farm, RABBITMQ_URL="amqp://guest:s3cret@127.0.0.1:1/", QUEUE_CONNECT_TIMEOUT_S="1"
    )

    assert await supervisor.wait_exit(20) == 2
    assert "cannot reach the broker at amqp://guest:***@127.0.0.1:1/" in supervisor.log()
    assert "s3cret" not in supervisor.log()


async def test_a_queue_declared_with_other_arguments_exits_2_naming_the_setting(
    farm: Farm,
) -> None:
    # Given the jobs queue, declared with the default delivery limit.
    await farm.start_worker()

    # When a supervisor configured with another one starts.
    supervisor = await start_supervisor(farm, QUEUE_DELIVERY_LIMIT="7")

    # Then it stops at once with one clear line, not a traceback.
    assert await supervisor.wait_exit(20) == 2
    assert "x-delivery-limit differs from what QUEUE_DELIVERY_LIMIT asks for" in supervisor.log()
    assert "Traceback" not in supervisor.log()


async def test_json_logs_and_fast_app_status(farm: Farm) -> None:
    import json
    import subprocess
    import sys

    supervisor = await start_supervisor(
        farm, "--min-workers", "1", "--json-logs", "--supervisor-id", "sup-json"
    )
    await wait_until(lambda: len(supervisor.live_worker_pids()) == 1, message="a worker")

    status = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "fast_app.farm", "status", "--json", "--wait", "1.5"],
        env={**os.environ, "RABBITMQ_URL": farm.url, "QUEUE_NAME": farm.queue_name},
        capture_output=True,
        timeout=60,
    )

    assert status.returncode == 0, status.stderr
    [snapshot] = json.loads(status.stdout)["supervisors"]
    assert snapshot["supervisor_id"] == "sup-json"
    assert [w["pid"] for w in snapshot["workers"]] == list(supervisor.live_worker_pids().values())
    supervisor_lines = [
        line for line in supervisor.log().splitlines() if '"fast_app.farm.supervisor"' in line
    ]
    started = [json.loads(line) for line in supervisor_lines if "started (pid" in line]
    assert started
    assert started[0]["level"] == "INFO"
    # UTC, to the millisecond
    logged_at = dt.datetime.fromisoformat(started[0]["time"])
    assert logged_at.utcoffset() == dt.timedelta(0)
    assert abs(logged_at.timestamp() - time.time()) < 120
    assert len(started[0]["time"].split(".")[1]) == len("123+00:00")
    assert started[0]["worker_id"] == "sup-json-w1"
