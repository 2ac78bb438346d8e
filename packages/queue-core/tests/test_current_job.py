"""current_job(): a job's code knows its id, attempt and limits; code outside a job sees None."""

from __future__ import annotations

import queue_core_jobs as jobs

from fast_app.core.queue import configure, current_job, queue


def test_outside_a_job_there_is_no_current_job() -> None:
    assert current_job() is None


async def test_a_job_sees_its_own_id_attempts_and_timeouts() -> None:
    configure(retry_base_s=0.001, retry_cap_s=0.001)
    jobs.FLAKY_FAILURES["twice"] = 2

    job = await queue(jobs.report_current_job, "twice", __retries=3, __soft_timeout_s=5)

    seen = [call["job"] for call in jobs.calls]
    assert [run.attempt for run in seen] == [1, 2, 3]
    assert {run.id for run in seen} == {job.id}
    assert {run.max_attempts for run in seen} == {4}
    assert [run.is_last_attempt for run in seen] == [False, False, False]
    assert seen[0].function == "queue_core_jobs.report_current_job"
    assert seen[0].soft_timeout_s == 5 and seen[0].hard_timeout_s is None
    assert current_job() is None  # nothing leaks into the caller


async def test_the_last_attempt_knows_it_is_the_last() -> None:
    await queue(jobs.report_current_job, "once")

    assert jobs.calls[0]["job"].is_last_attempt


async def test_plain_functions_in_threads_see_it_too() -> None:
    job = await queue(jobs.report_current_job_in_thread)

    assert jobs.calls[0]["job"].id == job.id
