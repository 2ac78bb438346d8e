"""What jobs record: one file per run, written as it goes, readable by any process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fast_app_demo.activity import ActivityLog, RunStatus, journal
from fast_app_demo.context_keys import REQUEST_ID, USER_ID

from fast_app.core.context import context


async def test_a_run_records_its_context_steps_and_result(tmp_path: Path) -> None:
    context.install({REQUEST_ID: "req-1", USER_ID: "usr_1"})

    with journal("send_welcome_email", tmp_path) as run:
        run.step("rendered")
        run.produced(email="/outbox/1.eml")

    [recorded] = ActivityLog(tmp_path).runs()
    assert recorded.status is RunStatus.SUCCEEDED
    assert (recorded.request_id, recorded.user_id) == ("req-1", "usr_1")
    assert recorded.steps == ("rendered",)
    assert recorded.result == {"email": "/outbox/1.eml"}
    assert recorded.ended_at is not None and recorded.ended_at >= recorded.started_at
    assert (recorded.attempt, recorded.max_attempts) == (1, 1)  # outside a job


async def test_a_run_in_progress_is_visible_before_it_ends(tmp_path: Path) -> None:
    with journal("generate_report", tmp_path) as run:
        run.step("section 1/3")

        [recorded] = ActivityLog(tmp_path).runs(run.run.job_id)
        assert recorded.status is RunStatus.RUNNING
        assert recorded.steps == ("section 1/3",)
        assert recorded.ended_at is None


async def test_a_failure_is_recorded_and_still_raised(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="refused"), journal("export_invoice", tmp_path):
        raise ValueError("refused")

    [recorded] = ActivityLog(tmp_path).runs()
    assert recorded.status is RunStatus.FAILED
    assert recorded.error == "ValueError: refused"


async def test_a_cancelled_run_is_recorded_as_cancelled(tmp_path: Path) -> None:
    started = asyncio.Event()

    async def job() -> None:
        with journal("generate_report", tmp_path):
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(job())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    [recorded] = ActivityLog(tmp_path).runs()
    assert recorded.status is RunStatus.CANCELLED
    assert recorded.error == "cancelled (its worker stopped)"  # no soft timeout outside a job


async def test_unreadable_files_are_skipped(tmp_path: Path) -> None:
    with journal("send_welcome_email", tmp_path):
        pass
    (tmp_path / "activity" / "broken.001.json").write_text("{not json", encoding="utf-8")

    assert len(ActivityLog(tmp_path).runs()) == 1
