"""Worker processes under real signals: hard timeouts, SIGKILL, graceful shutdown."""

from __future__ import annotations

import asyncio
import collections
import signal

import farm_jobs
from farm_testkit import Farm, wait_until

from fast_app.core.queue import queue
from fast_app.core.queue.amqp import headers as h
from fast_app.farm.worker import EXIT_HARD_TIMEOUT


async def test_a_hard_timeout_ends_the_worker_and_bystanders_complete_elsewhere(farm: Farm) -> None:
    first = await farm.start_worker(FARM_CONCURRENCY="8")
    results = str(farm.results)
    for number in range(5):
        await queue(farm_jobs.sleep_then_record, results, f"bystander-{number}", 2)
    job = await queue(farm_jobs.sleep_then_record, results, "runaway", 60, __hard_timeout_s=0.5)

    assert await first.wait_exit(20) == EXIT_HARD_TIMEOUT
    [letter] = await farm.dead_letters(1)
    assert letter.message_id == job.id
    assert letter.headers[h.DEAD_REASON] == "hard_timeout"
    assert "passed its hard timeout of 0.5s" in first.log()

    second = await farm.start_worker()
    await wait_until(
        lambda: len(farm.tags("finished")) == 5, timeout=30, message="the bystanders to finish"
    )
    assert sorted(farm.tags("finished")) == [f"bystander-{n}" for n in range(5)]
    assert {e["pid"] for e in farm.events("finished")} == {second.pid}
    # The runaway job is settled: it does not come back to the new worker.
    await asyncio.sleep(0.5)
    assert farm.tags("started").count("runaway") == 1
    assert await farm.queue_depth() == 0


async def test_a_hard_timeout_with_retries_left_is_retried_not_dead_lettered(farm: Farm) -> None:
    first = await farm.start_worker()

    await queue(
        farm_jobs.sleep_then_record,
        str(farm.results),
        "again",
        60,
        __hard_timeout_s=0.3,
        __retries=1,
    )

    assert await first.wait_exit(20) == EXIT_HARD_TIMEOUT
    await farm.start_worker()
    [letter] = await farm.dead_letters(1, timeout=30)
    assert letter.headers[h.DEAD_REASON] == "hard_timeout"
    assert letter.headers[h.DEAD_ATTEMPTS] == 2
    assert farm.tags("started") == ["again", "again"]


async def test_jobs_of_a_sigkilled_worker_all_complete_on_another(farm: Farm) -> None:
    doomed = await farm.start_worker(FARM_CONCURRENCY="20")
    results = str(farm.results)
    for number in range(20):
        await queue(farm_jobs.sleep_then_record, results, f"job-{number}", 1.5)
    await wait_until(lambda: len(farm.tags("started")) == 20, message="20 jobs in flight")

    doomed.send(signal.SIGKILL)
    assert await doomed.wait_exit() == -signal.SIGKILL
    rescuer = await farm.start_worker(FARM_CONCURRENCY="20")

    await wait_until(lambda: len(farm.tags("finished")) == 20, timeout=30, message="20 jobs")
    assert sorted(farm.tags("finished")) == sorted(f"job-{n}" for n in range(20))
    assert {e["pid"] for e in farm.events("finished")} == {rescuer.pid}
    assert "finished" not in {e["event"] for e in farm.events() if e["pid"] == doomed.pid}


async def test_sigterm_lets_in_flight_jobs_finish_then_exits_zero(farm: Farm) -> None:
    worker = await farm.start_worker(FARM_GRACE_PERIOD_S="10")
    results = str(farm.results)
    for number in range(3):
        await queue(farm_jobs.sleep_then_record, results, f"job-{number}", 1)
    await wait_until(lambda: len(farm.tags("started")) == 3, message="3 jobs in flight")

    worker.send(signal.SIGTERM)

    assert await worker.wait_exit() == 0
    assert sorted(farm.tags("finished")) == ["job-0", "job-1", "job-2"]
    assert farm.tags("cancelled") == []
    assert "3 succeeded" in worker.log()


async def test_jobs_outlasting_the_grace_period_return_to_the_queue(farm: Farm) -> None:
    worker = await farm.start_worker(FARM_GRACE_PERIOD_S="0.5")
    results = str(farm.results)
    await queue(farm_jobs.sleep_then_record, results, "long", 3)
    await queue(farm_jobs.sleep_then_record, results, "short", 0.1)
    await wait_until(lambda: "long" in farm.tags("started"), message="the long job to start")

    worker.send(signal.SIGINT)

    assert await worker.wait_exit() == 0
    assert "still running after the 0.5s grace period" in worker.log()
    await farm.start_worker()
    await wait_until(lambda: "long" in farm.tags("finished"), timeout=20, message="the long job")
    finished = collections.Counter(farm.tags("finished"))
    assert finished == {"long": 1, "short": 1}


async def test_a_thread_job_outlasting_the_grace_period_ends_with_its_worker(farm: Farm) -> None:
    # Given a plain function sleeping in a worker thread, which nothing can cancel.
    worker = await farm.start_worker(FARM_GRACE_PERIOD_S="0.5")
    results = str(farm.results)
    await queue(farm_jobs.sleep_in_thread_then_record, results, "thread", 4)
    await wait_until(lambda: "thread" in farm.tags("started"), message="the thread job")

    # When the worker is asked to stop.
    worker.send(signal.SIGTERM)

    # Then it ends soon after its grace period instead of waiting for the thread, and the
    # job runs again elsewhere, alone: the first run never finishes.
    assert await worker.wait_exit(timeout=3) == 0
    assert "still running in threads after the drain" in worker.log()
    await farm.start_worker()
    await wait_until(lambda: "thread" in farm.tags("finished"), timeout=20, message="rerun")
    assert farm.tags("started") == ["thread", "thread"]
    assert farm.tags("finished") == ["thread"]


async def test_a_queue_with_other_arguments_stops_the_worker_with_the_setting_named(
    farm: Farm,
) -> None:
    # Given the jobs queue declared with the default delivery limit.
    await farm.start_worker()

    # When a worker asks for another one.
    worker = await farm.start_worker(wait=False, QUEUE_DELIVERY_LIMIT="7")

    # Then it stops at once, saying why, instead of retrying forever.
    assert await worker.wait_exit(timeout=20) == 4
    assert "x-delivery-limit differs from what QUEUE_DELIVERY_LIMIT asks for" in worker.log()
    assert "retrying" not in worker.log()


async def test_a_broken_application_import_exits_with_a_clear_error(farm: Farm) -> None:
    worker = await farm.start_worker(wait=False, FARM_IMPORTS="no_such_module_here")

    code = await worker.wait_exit()

    assert code == 4
    assert "No module named 'no_such_module_here'" in worker.log()


async def test_invalid_worker_settings_exit_2_with_the_variable_named(farm: Farm) -> None:
    worker = await farm.start_worker(wait=False, FARM_CONCURRENCY="0")

    assert await worker.wait_exit() == 2
    assert "FARM_CONCURRENCY" in worker.log()
    assert "Traceback" not in worker.log()


async def test_startup_and_shutdown_hooks_run_once_around_consuming(farm: Farm) -> None:
    hooks = farm.tmp_path / "hooks.jsonl"
    worker = await farm.start_worker(
        FARM_STARTUP="farm_jobs:on_startup",
        FARM_SHUTDOWN="farm_jobs:on_shutdown",
        FARM_TEST_HOOKS=str(hooks),
    )
    assert [e["event"] for e in farm_jobs.read_events(hooks)] == ["startup"]
    await queue(farm_jobs.record, str(farm.results), "between")
    await wait_until(lambda: farm.tags("ran") == ["between"], message="the job")

    worker.send(signal.SIGTERM)

    assert await worker.wait_exit() == 0
    assert [e["event"] for e in farm_jobs.read_events(hooks)] == ["startup", "shutdown"]
    assert {e["pid"] for e in farm_jobs.read_events(hooks)} == {worker.pid}
