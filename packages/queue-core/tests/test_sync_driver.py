"""The sync driver: runs each job at once, in-process, through the worker's code path."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
import queue_core_jobs as jobs

from fast_app.core.context import context
from fast_app.core.queue import JobSoftTimeoutError, JobStatus, queue


async def test_queue_returns_after_the_job_ran_with_a_handle_and_outcome() -> None:
    job = await queue(jobs.send_welcome_email, "u1")

    assert jobs.calls == [{"user_id": "u1", "template": "welcome", "context": {}}]
    assert job.driver == "sync"
    assert job.function == "queue_core_jobs.send_welcome_email"
    assert len(job.id) == 32
    assert job.outcome is not None
    assert job.outcome.status is JobStatus.SUCCEEDED


async def test_special_kwargs_are_stripped_before_the_call() -> None:
    await queue(jobs.record, 1, flag=True, __soft_timeout_s=5, __hard_timeout_s=10)

    assert jobs.calls[0]["args"] == (1,)
    assert jobs.calls[0]["kwargs"] == {"flag": True}


async def test_plain_functions_run_in_a_thread_without_blocking_the_loop() -> None:
    release = jobs.THREAD_EVENTS["sync-1"] = threading.Event()
    started = jobs.THREAD_STARTED["sync-1"] = threading.Event()
    running = asyncio.create_task(queue(jobs.block_on, "sync-1"))
    ticks = 0

    # The loop keeps serving other tasks while the job blocks its thread.
    while not started.is_set() and ticks < 5000:
        await asyncio.sleep(0.001)
        ticks += 1
    assert started.is_set()
    assert ticks > 0
    assert not running.done()
    release.set()
    job = await asyncio.wait_for(running, 5)

    assert job.outcome is not None and job.outcome.succeeded
    assert jobs.calls[-1] == {"finished": "sync-1"}


async def test_plain_functions_run_off_the_event_loop_thread() -> None:
    await queue(jobs.record_in_thread, 1)

    assert jobs.calls[0]["thread"] != threading.get_ident()


async def test_the_job_sees_the_callers_context_snapshot() -> None:
    context.set("request_id", "r-1")
    context.set("user_id", "u-9")

    await queue(jobs.record_in_thread, 1)
    await queue(jobs.send_welcome_email, "u-9")

    assert jobs.calls[0]["context"] == {"request_id": "r-1", "user_id": "u-9"}
    assert jobs.calls[1]["context"] == {"request_id": "r-1", "user_id": "u-9"}


async def test_context_changes_made_by_a_job_stay_in_the_job() -> None:
    context.set("request_id", "r-1")

    await queue(jobs.change_context_then_record)

    assert jobs.calls[0]["context"] == {"request_id": "r-1", "set_by_job": True}
    assert context.snapshot() == {"request_id": "r-1"}


async def test_concurrent_jobs_each_see_their_own_context() -> None:
    async def enqueue_as(user_id: str) -> None:
        context.set("user_id", user_id)
        await queue(jobs.send_welcome_email, user_id)

    await asyncio.gather(*(enqueue_as(f"u{n}") for n in range(50)))

    assert sorted(call["user_id"] for call in jobs.calls) == sorted(f"u{n}" for n in range(50))
    assert all(call["context"] == {"user_id": call["user_id"]} for call in jobs.calls)


async def test_soft_timeout_cancels_an_async_job_and_logs_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "fast_app.queue")

    job = await queue(jobs.sleep_then_record, 5, __soft_timeout_s=0.05)

    assert jobs.calls == [{"cancelled": True}]
    assert job.outcome is not None
    assert job.outcome.status is JobStatus.SOFT_TIMEOUT
    assert job.outcome.duration_s < 2
    warning = next(r for r in caplog.records if "soft timeout" in r.getMessage())
    assert job.id in warning.getMessage()
    assert "queue_core_jobs.sleep_then_record" in warning.getMessage()
    assert "cancelling it" in warning.getMessage()


async def test_soft_timeout_stops_waiting_for_a_thread_which_keeps_running(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = jobs.THREAD_EVENTS["soft-thread"] = threading.Event()

    job = await queue(jobs.block_on, "soft-thread", __soft_timeout_s=0.05)

    assert job.outcome is not None
    assert job.outcome.status is JobStatus.SOFT_TIMEOUT
    assert "thread cannot be cancelled" in caplog.text
    assert {"finished": "soft-thread"} not in jobs.calls
    release.set()


async def test_a_job_within_its_soft_timeout_succeeds() -> None:
    job = await queue(jobs.sleep_then_record, 0.01, __soft_timeout_s=5)

    assert job.outcome is not None and job.outcome.succeeded
    assert jobs.calls == [{"slept": 0.01}]


async def test_a_failing_job_is_logged_with_traceback_and_id_and_queue_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    job = await queue(jobs.fail, "boom")

    assert job.outcome is not None
    assert job.outcome.status is JobStatus.FAILED
    assert job.outcome.error is not None
    assert job.outcome.error.type == "builtins.ValueError"
    record = next(r for r in caplog.records if r.levelno == logging.ERROR)
    assert job.id in record.getMessage()
    assert "Traceback" in record.getMessage()
    assert "ValueError: boom" in record.getMessage()


async def test_queue_sync_raise_reraises_the_job_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUE_SYNC_RAISE", "1")

    with pytest.raises(ValueError, match="boom"):
        await queue(jobs.fail, "boom")
    with pytest.raises(ValueError, match="thread boom"):
        await queue(jobs.fail_in_thread, "thread boom")


async def test_the_hard_timeout_is_accepted_and_ignored_in_sync_mode() -> None:
    job = await queue(jobs.sleep_then_record, 0.05, __hard_timeout_s=0.01)

    assert job.outcome is not None and job.outcome.succeeded


async def test_cancelling_the_caller_cancels_the_running_job() -> None:
    started = jobs.ASYNC_STARTED["cancel-1"] = asyncio.Event()
    caller = asyncio.create_task(queue(jobs.announce_then_sleep, "cancel-1", 5))
    await asyncio.wait_for(started.wait(), 5)

    caller.cancel()

    with pytest.raises(asyncio.CancelledError):
        await caller
    assert jobs.calls == [{"cancelled": True}]


async def test_queue_sync_raise_raises_a_soft_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUE_SYNC_RAISE", "1")

    with pytest.raises(JobSoftTimeoutError, match=r"sleep_then_record.*soft timeout of 0\.05s"):
        await queue(jobs.sleep_then_record, 5, __soft_timeout_s=0.05)
    assert jobs.calls == [{"cancelled": True}]


async def test_a_soft_timeout_says_whether_the_job_could_be_stopped() -> None:
    release = jobs.THREAD_EVENTS["still-running"] = threading.Event()

    thread_job = await queue(jobs.block_on, "still-running", __soft_timeout_s=0.05)
    async_job = await queue(jobs.sleep_then_record, 5, __soft_timeout_s=0.05)

    assert thread_job.outcome is not None and thread_job.outcome.still_running
    assert async_job.outcome is not None and not async_job.outcome.still_running
    release.set()
