"""Hooks an application adds are called along each delivery on a real worker."""

from __future__ import annotations

import collections
import json
import socket
from pathlib import Path
from typing import Any

import farm_jobs
from farm_testkit import Farm, pid_alive, wait_until

from fast_app.core.queue import queue


def _runs(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Each job id's events, in order."""
    runs: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            event = json.loads(line)
            runs[event["id"]].append(event)
    return runs


def _names(events: list[dict[str, Any]]) -> list[str]:
    return [event["event"] for event in events]


async def test_an_application_s_hooks_see_each_delivery_in_order_and_cannot_fail_it(
    farm: Farm,
) -> None:
    # Given a worker whose application adds a recording hook and a hook that always raises
    path = farm.tmp_path / "hooks.jsonl"
    worker = await farm.start_worker(FARM_IMPORTS="farm_job_hooks", FARM_TEST_JOB_HOOKS=str(path))

    # When it gets a job that succeeds, one that fails twice (one retry), and one whose
    # function it is not allowed to run
    succeeds = await queue(farm_jobs.record, str(farm.results), "ok")
    fails = await queue(farm_jobs.fail, str(farm.results), "bad", __retries=1)
    refused = await queue(pid_alive, 1)
    await farm.dead_letters(2)

    def settled(job_id: str, times: int) -> bool:
        return _names(_runs(path)[job_id]).count("settled") == times

    await wait_until(
        lambda: settled(succeeds.id, 1) and settled(fails.id, 2) and settled(refused.id, 1),
        message="every delivery settled",
    )
    runs = _runs(path)

    # Then each delivery went through the hooks in their documented order
    assert _names(runs[succeeds.id]) == ["delivered", "before_run", "after_run", "settled"]
    assert runs[succeeds.id][2]["status"] == "succeeded"
    assert _names(runs[fails.id]) == [
        *["delivered", "before_run", "after_run", "before_retry", "retried", "settled"],
        *["delivered", "before_run", "after_run", "dead_lettered", "settled"],
    ]
    assert [e["attempt"] for e in runs[fails.id] if e["event"] == "delivered"] == [1, 2]
    assert runs[fails.id][-2]["reason"] == "failed"
    assert _names(runs[refused.id]) == ["delivered", "refused", "dead_lettered", "settled"]
    assert runs[refused.id][1]["reason"] == "not_allowed"
    # with what the worker knows of each
    assert {e["queue"] for e in runs[succeeds.id]} == {farm.queue_name}
    worker_id = f"{socket.gethostname()}-{worker.pid}"
    assert {e["worker_id"] for e in runs[succeeds.id]} == {worker_id}
    # And the hook that raised failed no job: logged once, the success stands
    assert farm.tags("ran").count("ok") == 1
    assert "dead_lettered" not in _names(runs[succeeds.id])
    assert worker.log().count("RaisingHook.after_run raised") == 1
