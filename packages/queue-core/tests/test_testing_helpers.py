"""The test kit as application tests use it: partial ``assert_enqueued``, ``run_all`` with
retries and delays, and the documented imports."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from unittest.mock import ANY

import pytest
import queue_core_kit_jobs as kit

from fast_app.core.queue import JobStatus, configure, queue
from fast_app.core.queue.testing import JobRecorder


@pytest.fixture(autouse=True)
def reset_kit_jobs() -> Iterator[None]:
    kit.reset()
    yield
    kit.reset()


# -- assert_enqueued: only the given arguments are compared ----------------------------


async def test_a_job_with_a_now_argument_matches_by_its_other_arguments(
    queued_jobs: JobRecorder,
) -> None:
    # Given a job with a timestamp the test cannot know
    await queue(kit.record_signup, "u1", dt.datetime.now(dt.UTC), plan="pro")

    # Then it matches by the arguments the test does know, or with ANY for the timestamp
    job = queued_jobs.assert_enqueued(kit.record_signup, "u1")
    assert queued_jobs.assert_enqueued(kit.record_signup, plan="pro") is job
    assert queued_jobs.assert_enqueued(kit.record_signup, "u1", ANY, plan="pro") is job
    assert queued_jobs.assert_enqueued(kit.record_signup, user_id="u1", at=ANY) is job


async def test_assert_enqueued_with_only_the_function_means_any_job_of_it(
    queued_jobs: JobRecorder,
) -> None:
    await queue(kit.record_signup, "u1", dt.datetime.now(dt.UTC))

    job = queued_jobs.assert_enqueued(kit.record_signup)

    assert job.args[0] == "u1"
    with pytest.raises(AssertionError, match=r"kit_jobs.note was not enqueued with any arguments"):
        queued_jobs.assert_enqueued(kit.note)


async def test_positional_and_keyword_arguments_match_by_parameter_name(
    queued_jobs: JobRecorder,
) -> None:
    await queue(kit.record_signup, user_id="u1", at=dt.datetime(2024, 1, 2, tzinfo=dt.UTC))

    queued_jobs.assert_enqueued(kit.record_signup, "u1")
    queued_jobs.assert_enqueued(kit.record_signup, "u1", dt.datetime(2024, 1, 2, tzinfo=dt.UTC))


async def test_defaults_are_what_the_function_receives(queued_jobs: JobRecorder) -> None:
    await queue(kit.record_signup, "u1", dt.datetime.now(dt.UTC))

    queued_jobs.assert_enqueued(kit.record_signup, plan="free")
    with pytest.raises(AssertionError, match=r"plan='free', expected 'pro'"):
        queued_jobs.assert_enqueued(kit.record_signup, plan="pro")


async def test_items_of_star_args_and_star_star_kwargs_match_one_by_one(
    queued_jobs: JobRecorder,
) -> None:
    await queue(kit.notify, "ada", "line 1", "line 2", subject="hi", priority="high")

    queued_jobs.assert_enqueued(kit.notify, "ada", "line 1")
    queued_jobs.assert_enqueued(kit.notify, ANY, ANY, "line 2", priority="high")
    with pytest.raises(AssertionError, match=r"lines\[1\]='line 2', expected 'line 3'"):
        queued_jobs.assert_enqueued(kit.notify, "ada", "line 1", "line 3")
    with pytest.raises(AssertionError, match=r"reply_to not given"):
        queued_jobs.assert_enqueued(kit.notify, reply_to="bob")


async def test_the_first_matching_job_is_returned(queued_jobs: JobRecorder) -> None:
    await queue(kit.note, "first")
    await queue(kit.note, "second")

    assert queued_jobs.assert_enqueued(kit.note).args == ("first",)
    assert queued_jobs.assert_enqueued(kit.note, "second").args == ("second",)


async def test_a_failure_lists_the_jobs_of_the_function_and_how_each_differs(
    queued_jobs: JobRecorder,
) -> None:
    await queue(kit.record_signup, "u1", dt.datetime(2024, 1, 2, tzinfo=dt.UTC), plan="pro")
    await queue(kit.record_signup, "u2", dt.datetime(2024, 1, 3, tzinfo=dt.UTC))

    with pytest.raises(AssertionError) as failure:
        queued_jobs.assert_enqueued(kit.record_signup, "u3")

    message = str(failure.value)
    assert message.startswith("queue_core_kit_jobs.record_signup was not enqueued with ('u3')")
    assert "recorded jobs of queue_core_kit_jobs.record_signup:" in message
    assert (
        "queue_core_kit_jobs.record_signup('u1', datetime.datetime(2024, 1, 2, 0, 0, "
        "tzinfo=datetime.timezone.utc), plan='pro'): user_id='u1', expected 'u3'"
    ) in message
    assert "user_id='u2', expected 'u3'" in message


async def test_a_failure_lists_every_job_when_none_is_of_the_function(
    queued_jobs: JobRecorder,
) -> None:
    with pytest.raises(AssertionError, match="no job was recorded"):
        queued_jobs.assert_enqueued(kit.note)

    await queue(kit.note, "other")

    with pytest.raises(
        AssertionError,
        match=r"no job of queue_core_kit_jobs.flaky was recorded; recorded jobs:\n"
        r"  queue_core_kit_jobs.note\('other'\)",
    ):
        queued_jobs.assert_enqueued(kit.flaky)


async def test_expected_arguments_that_cannot_be_a_call_are_a_type_error(
    queued_jobs: JobRecorder,
) -> None:
    await queue(kit.note, "a")

    with pytest.raises(
        TypeError,
        match=r"do not fit queue_core_kit_jobs.note\(.*unexpected keyword argument 'nmae'",
    ):
        queued_jobs.assert_enqueued(kit.note, nmae="a")


async def test_assert_enqueued_exactly_compares_the_whole_call(queued_jobs: JobRecorder) -> None:
    at = dt.datetime(2024, 1, 2, tzinfo=dt.UTC)
    await queue(kit.record_signup, "u1", at)
    await queue(kit.take_no_arguments)

    queued_jobs.assert_enqueued_exactly(kit.record_signup, "u1", at)
    queued_jobs.assert_enqueued_exactly(kit.record_signup, "u1", ANY, plan="free")
    queued_jobs.assert_enqueued_exactly(kit.take_no_arguments)
    with pytest.raises(
        AssertionError, match=r"not enqueued with exactly \('u1', <ANY>, plan='pro'\)"
    ):
        queued_jobs.assert_enqueued_exactly(kit.record_signup, "u1", ANY, plan="pro")
    with pytest.raises(TypeError, match="missing a required argument: 'at'"):
        queued_jobs.assert_enqueued_exactly(kit.record_signup, "u1")


async def test_exactly_with_no_arguments_refuses_a_call_with_arguments(
    queued_jobs: JobRecorder,
) -> None:
    await queue(kit.notify, "ada", "line 1")

    with pytest.raises(AssertionError, match=r"lines\[0\]='line 1' not expected"):
        queued_jobs.assert_enqueued_exactly(kit.notify, "ada")


# -- run_all: retries and delays as the sync driver honours them -----------------------


async def test_run_all_retries_a_flaky_job_until_it_succeeds(queued_jobs: JobRecorder) -> None:
    # Given a job that fails twice, queued with two retries and a long backoff
    configure(retry_base_s=30, retry_cap_s=60)
    kit.failures_left["flaky"] = 2
    await queue(kit.flaky, "flaky", __retries=2)

    # When the recorded jobs run
    started = time.monotonic()
    outcomes = await queued_jobs.run_all()

    # Then it succeeds on its third run, without waiting for the backoff
    assert kit.runs == [("flaky", 1), ("flaky", 2), ("flaky", 3)]
    assert [outcome.status for outcome in outcomes] == [JobStatus.SUCCEEDED]
    assert time.monotonic() - started < 5
    assert queued_jobs.jobs == []


async def test_run_all_ends_a_job_that_always_fails_after_its_last_retry(
    queued_jobs: JobRecorder,
) -> None:
    kit.failures_left["always"] = 100
    await queue(kit.flaky, "always", __retries=2)

    outcomes = await queued_jobs.run_all(raise_errors=False)

    assert kit.runs == [("always", 1), ("always", 2), ("always", 3)]
    assert [outcome.status for outcome in outcomes] == [JobStatus.FAILED]


async def test_run_all_raises_only_once_the_retries_are_spent(queued_jobs: JobRecorder) -> None:
    kit.failures_left["always"] = 100
    await queue(kit.flaky, "always", __retries=1)
    await queue(kit.note, "later", __delay_s=3600)

    with pytest.raises(RuntimeError, match="always failed"):
        await queued_jobs.run_all()

    assert kit.runs == [("always", 1), ("always", 2)]
    # The job not run yet stays recorded, to run or inspect.
    [left] = queued_jobs.jobs
    assert left.args == ("later",)


async def test_run_all_runs_jobs_in_the_order_they_fall_due(queued_jobs: JobRecorder) -> None:
    # Given a failing job with a 5-10 s backoff and jobs delayed before and after it
    configure(retry_base_s=10, retry_cap_s=10)
    kit.failures_left["retried"] = 1
    await queue(kit.note, "in an hour", __delay_s=3600)
    await queue(kit.flaky, "retried", __retries=1)
    await queue(kit.note, "in a second", __delay_s=1)
    await queue(kit.note, "now")

    started = time.monotonic()
    await queued_jobs.run_all()

    assert kit.names() == ["retried", "now", "in a second", "retried", "in an hour"]
    assert time.monotonic() - started < 5


async def test_jobs_enqueued_by_a_job_fall_due_after_it_ran(queued_jobs: JobRecorder) -> None:
    # Given a job due in 100 s that enqueues a child delayed 10 s more, and one due at 105 s
    await queue(kit.note, "at 105 s", __delay_s=105)
    await queue(kit.note_then_queue, "parent", "child", 10, __delay_s=100)

    await queued_jobs.run_all()

    # Then the child, due at 110 s on run_all's clock, runs last
    assert kit.names() == ["parent", "at 105 s", "child"]


# -- the documented imports --------------------------------------------------------------


def test_the_test_kit_is_imported_from_fast_app_core_queue_testing() -> None:
    import fast_app.core.queue.testing as testing
    from fast_app.core.queue.testing import _plugin

    assert {"CapturedJob", "JobRecorder"} <= set(testing.__all__)
    assert _plugin.queued_jobs.__module__ == "fast_app.core.queue.testing._plugin"
