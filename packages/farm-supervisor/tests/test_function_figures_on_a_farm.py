"""Figures by function and the hour's history, on a real farm: workers tally, the
supervisor keeps them by minute, ``fast-app status`` shows them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import farm_jobs
import pytest
from farm_cli import run_status, status_json_until
from farm_testkit import Farm, start_supervisor, wait_until

from fast_app.core.queue import queue

pytestmark = pytest.mark.rabbitmq


def _functions(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["function"]: row for row in report.get("functions", [])}


async def test_status_shows_each_functions_runs_failures_and_runtimes_and_the_hours_history(
    farm: Farm,
) -> None:
    # Given a farm that ran five quick jobs, one slow one, one that always fails
    # (retried once, then dead-lettered) and one its worker ended at its hard timeout
    # (the worker exits after a last heartbeat that tells it).
    supervisor = await start_supervisor(farm, "--min-workers", "1", "--max-workers", "1")
    await wait_until(lambda: len(supervisor.live_worker_pids()) == 1, message="a worker")
    started = time.time()
    for number in range(5):
        await queue(farm_jobs.record, str(farm.results), f"quick-{number}")
    await queue(farm_jobs.sleep_then_record, str(farm.results), "slow", 0.4)
    await queue(farm_jobs.fail, str(farm.results), "doomed", __retries=1)
    await farm.dead_letters(1)
    await queue(farm_jobs.traced_sleep, str(farm.results), "stuck", 60, __hard_timeout_s=1)
    await farm.dead_letters(1)

    # When status is asked, once the supervisor has counted them.
    def counted(report: dict[str, Any]) -> bool:
        rows = _functions(report)
        doomed = rows.get("farm_jobs.fail", {})
        return (
            rows.get("farm_jobs.record", {}).get("succeeded") == 5
            # a rate once the supervisor's window is long enough to give one (5 s)
            and rows["farm_jobs.record"].get("runs_per_minute") is not None
            and rows.get("farm_jobs.sleep_then_record", {}).get("succeeded") == 1
            and doomed.get("dead_lettered") == 1
            and doomed.get("retried") == 1
            and rows.get("farm_jobs.traced_sleep", {}).get("hard_timeouts") == 1
        )

    report = await status_json_until(farm, counted)

    # Then each function has its runs, failures and runtimes, by queue.
    rows = _functions(report)
    quick, slow, doomed = (
        rows["farm_jobs.record"],
        rows["farm_jobs.sleep_then_record"],
        rows["farm_jobs.fail"],
    )
    assert quick["queue"] == farm.queue_name
    assert quick["failure_ratio"] == 0.0 and doomed["failure_ratio"] == 1.0
    assert slow["p50_s"] == pytest.approx(0.4, rel=0.15)
    assert quick["p95_s"] < 0.2
    assert quick["runs_per_minute"] == pytest.approx(5 * 60 / quick["window_s"], rel=0.2)
    assert quick["supervisors"] == 1
    stuck = rows["farm_jobs.traced_sleep"]
    assert (stuck["dead_lettered"], stuck["hard_timeouts"], stuck["p50_s"]) == (1, 1, None)
    # And the supervisor's history has this minute (and the last) with the same runs.
    history = report["history"]
    assert history and history[-1]["at"] <= time.time()
    assert sum(minute["succeeded"] for minute in history) == 6
    assert sum(minute["retried"] for minute in history) == 1
    assert sum(minute["dead_lettered"] for minute in history) == 2
    assert sum(minute["hard_timeouts"] for minute in history) == 1
    assert history[0]["at"] >= (started // 60 - 1) * 60

    # And the text lists the functions, busiest first, with their figures.
    finished = await asyncio.to_thread(run_status, farm, "--wait", "1")
    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("FUNCTION"))
    assert lines[header].split()[1:] == [
        "QUEUE",
        "RUNS/MIN",
        "FAILED",
        "DEAD",
        "HARD",
        "P50",
        "P95",
    ]
    first = lines[header + 1].split()
    assert first[0] == "farm_jobs.record"
    doomed_line = next(line for line in lines[header:] if line.startswith("farm_jobs.fail"))
    assert doomed_line.split()[3:5] == ["100%", "1"]
    assert any(line.startswith("last hour: 6 succeeded") for line in lines), lines
