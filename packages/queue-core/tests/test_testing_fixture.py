"""The queued_jobs fixture: record jobs in application tests, assert on them, run them."""

from __future__ import annotations

import pytest
import queue_core_jobs as jobs

from fast_app.core.context import context
from fast_app.core.queue import JobStatus, JobValidationError, queue
from fast_app.core.queue.testing import JobRecorder


async def signup(email: str) -> None:
    """Application code under test: enqueues a welcome email."""
    context.set("request_id", "req-7")
    await queue(jobs.send_welcome_email, email, template="short", __soft_timeout_s=30)


async def test_jobs_are_recorded_not_run(queued_jobs: JobRecorder) -> None:
    await signup("ada@example.com")

    assert jobs.calls == []
    [job] = queued_jobs.jobs
    assert job.function == "queue_core_jobs.send_welcome_email"
    assert job.args == ("ada@example.com",)
    assert job.kwargs == {"template": "short"}
    assert job.context == {"request_id": "req-7"}
    assert job.options.soft_timeout_s == 30
    assert job.is_for(jobs.send_welcome_email)


async def test_assert_enqueued_finds_the_job_or_lists_what_was_recorded(
    queued_jobs: JobRecorder,
) -> None:
    await signup("ada@example.com")

    job = queued_jobs.assert_enqueued(jobs.send_welcome_email, "ada@example.com", template="short")
    assert job in queued_jobs.for_function(jobs.send_welcome_email)
    with pytest.raises(
        AssertionError,
        match=r"recorded jobs of queue_core_jobs.send_welcome_email:\n"
        r"  queue_core_jobs.send_welcome_email\('ada@example.com', template='short'\): "
        r"user_id='ada@example.com', expected 'bob@example.com'",
    ):
        queued_jobs.assert_enqueued(jobs.send_welcome_email, "bob@example.com")


async def test_arguments_are_recorded_after_the_codec_round_trip(queued_jobs: JobRecorder) -> None:
    await queue(jobs.receive_dataclass, jobs.Point(1, 2.0))
    await queue(jobs.record, jobs.Point(1, 2.0))

    assert queued_jobs.jobs[0].args == (jobs.Point(1, 2.0),)
    assert queued_jobs.jobs[1].args == ({"x": 1, "y": 2.0},)


async def test_run_all_runs_the_jobs_with_their_context(queued_jobs: JobRecorder) -> None:
    await signup("ada@example.com")
    context.clear()

    outcomes = await queued_jobs.run_all()

    assert [outcome.status for outcome in outcomes] == [JobStatus.SUCCEEDED]
    assert jobs.calls == [
        {"user_id": "ada@example.com", "template": "short", "context": {"request_id": "req-7"}}
    ]
    assert queued_jobs.jobs == []


async def test_run_all_raises_a_failing_job_s_exception(queued_jobs: JobRecorder) -> None:
    await queue(jobs.fail, "boom")

    with pytest.raises(ValueError, match="boom"):
        await queued_jobs.run_all()


async def test_run_all_can_collect_failures_instead(queued_jobs: JobRecorder) -> None:
    await queue(jobs.fail, "boom")
    await queue(jobs.record, 1)

    outcomes = await queued_jobs.run_all(raise_errors=False)

    assert [outcome.status for outcome in outcomes] == [JobStatus.FAILED, JobStatus.SUCCEEDED]


async def test_the_recorder_validates_as_strictly_as_workers(queued_jobs: JobRecorder) -> None:
    with pytest.raises(JobValidationError, match="is a lambda"):
        await queue(lambda: None)
    assert queued_jobs.jobs == []


async def test_capture_works_without_pytest_fixtures() -> None:
    recorder = JobRecorder()

    with recorder.capture():
        await queue(jobs.record, 1)
    await queue(jobs.record, 2)  # outside: the sync driver runs it

    assert len(recorder.jobs) == 1
    assert jobs.calls[0]["args"] == (2,)
