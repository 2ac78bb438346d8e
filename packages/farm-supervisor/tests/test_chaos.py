"""A shortened chaos run: every job accounted for while workers die and the broker restarts."""

from __future__ import annotations

from pathlib import Path

import pytest
from farm_chaos import ChaosConfig, run_chaos


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_every_job_is_accounted_for_under_faults(tmp_path: Path) -> None:
    config = ChaosConfig(
        jobs=400, enqueue_per_s=200, kill_every_s=2.0, fail_ratio=0.02, soft_ratio=0.02, hard_jobs=2
    )

    report = await run_chaos(config, tmp_path, log=lambda _line: None)

    print(report.render())
    assert report.lost == []
    assert report.leaked_pids == []
    assert report.wrong_reason == []
    assert report.succeeded + sum(report.dead.values()) == report.enqueued == 400
    assert report.dead["hard_timeout"] == 2
    assert report.dead["failed"] >= 1
    assert report.kills >= 2
    assert report.broker_restarts == 1
    assert report.whole
