"""Hooks: an application's hooks see each enqueue and each run, in order; a hook that
raises fails nothing; without hooks, none is called."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import queue_core_jobs as jobs

from fast_app.core.queue import JobStatus, JobValidationError, queue
from fast_app.core.queue.handle import Job, JobOutcome
from fast_app.core.queue.hooks import (
    Enqueueing,
    Hook,
    HookChain,
    JobRun,
    add_hook,
    current_hooks,
    installed_hooks,
    remove_hook,
)


class Recorder(Hook):
    """Records every event with what the hook is handed."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def before_enqueue(self, call: Enqueueing) -> None:
        self.events.append(("before_enqueue", call.envelope))

    def job_prepared(self, call: Enqueueing, headers: dict[str, str]) -> None:
        assert call.envelope is not None
        headers["x-recorder"] = call.envelope.id
        self.events.append(("job_prepared", call.envelope.function))

    def after_enqueue(self, call: Enqueueing, job: Job | None, error: BaseException | None) -> None:
        self.events.append(("after_enqueue", type(error).__name__ if error else job))

    def delivered(self, run: JobRun) -> None:
        assert run.envelope is not None
        self.events.append(("delivered", (run.envelope.attempt, dict(run.headers or {}))))

    def before_run(self, run: JobRun) -> None:
        self.events.append(("before_run", run.message_id))

    def after_run(self, run: JobRun, outcome: JobOutcome) -> None:
        assert run.outcome is outcome
        self.events.append(("after_run", outcome.status))

    def retried(self, run: JobRun) -> None:
        self.events.append(("retried", run.envelope.attempt if run.envelope else None))

    def settled(self, run: JobRun) -> None:
        self.events.append(("settled", run.message_id))

    def names(self) -> list[str]:
        return [name for name, _ in self.events]


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    hook = Recorder()
    add_hook(hook)
    yield hook
    remove_hook(hook)


async def test_a_hook_sees_an_enqueue_and_the_run_in_order(recorder: Recorder) -> None:
    # When a job is queued (sync driver: it runs before queue() returns)
    job = await queue(jobs.record, 1)

    # Then the hook saw the enqueue, then the run, with the job's data
    assert recorder.names() == [
        "before_enqueue",
        "job_prepared",
        "delivered",
        "before_run",
        "after_run",
        "settled",
        "after_enqueue",
    ]
    events = dict(recorder.events)
    assert events["before_enqueue"] is None  # not validated yet
    assert events["job_prepared"] == "queue_core_jobs.record"
    # the headers a hook adds at enqueue reach the run, as on a worker
    assert events["delivered"] == (1, {"x-recorder": job.id})
    assert events["before_run"] == job.id
    assert events["after_run"] is JobStatus.SUCCEEDED
    assert events["after_enqueue"] == job


async def test_a_retried_job_is_one_run_per_attempt(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUEUE_RETRY_BASE_S", "0.01")
    jobs.FLAKY_FAILURES["hooks"] = 1

    await queue(jobs.flaky, "hooks", __retries=2)

    runs = [value for name, value in recorder.events if name in ("after_run", "retried")]
    assert runs == [JobStatus.FAILED, 1, JobStatus.SUCCEEDED]
    attempts = [value[0] for name, value in recorder.events if name == "delivered"]
    assert attempts == [1, 2]
    assert recorder.names().count("settled") == 2


async def test_a_call_that_is_not_a_job_ends_its_enqueue_with_the_error(
    recorder: Recorder,
) -> None:
    with pytest.raises(JobValidationError):
        await queue(jobs.record, __retries=-1)

    assert recorder.events == [
        ("before_enqueue", None),
        ("after_enqueue", "JobValidationError"),
    ]


async def test_a_hook_that_raises_is_logged_once_and_fails_nothing(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Hook):
        def after_run(self, run: JobRun, outcome: JobOutcome) -> None:
            raise RuntimeError("broken hook")

    broken = Broken()
    add_hook(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="fast_app.queue"):
            first = await queue(jobs.record, 1)
            second = await queue(jobs.record, 2)
    finally:
        remove_hook(broken)

    assert first.outcome is not None and first.outcome.succeeded
    assert second.outcome is not None and second.outcome.succeeded
    assert len(jobs.calls) == 2
    # the hook after the broken one still ran
    assert recorder.names().count("settled") == 2
    logged = [r.getMessage() for r in caplog.records]
    assert len([m for m in logged if "Broken.after_run raised (ignored" in m]) == 1


def test_without_telemetry_or_hooks_of_its_own_a_process_calls_no_hook() -> None:
    assert installed_hooks() == ()
    assert current_hooks().hooks == ()


def test_adding_and_removing_hooks_changes_the_chain_at_once(recorder: Recorder) -> None:
    assert current_hooks().hooks == (recorder,)
    add_hook(recorder)  # twice: still once
    assert current_hooks().hooks == (recorder,)
    remove_hook(recorder)
    assert current_hooks().hooks == ()
    add_hook(recorder)  # for the fixture's removal


def test_a_chain_calls_only_the_hooks_that_override_an_event() -> None:
    class OnlySettled(Hook):
        def __init__(self) -> None:
            self.settled_runs = 0

        def settled(self, run: JobRun) -> None:
            self.settled_runs += 1

    hook = OnlySettled()
    chain = HookChain([Hook(), hook])

    assert chain._before_run == ()
    assert chain._settled == (hook.settled,)


@pytest.mark.parametrize("with_hooks", [False, True], ids=["no-hooks", "hooks"])
async def test_a_portability_warning_points_at_the_line_that_called_queue(
    with_hooks: bool, recorder: Recorder
) -> None:
    if not with_hooks:
        remove_hook(recorder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await queue(jobs.Mailer.static_send, "x")

    [warning] = [w for w in caught if "inside a class" in str(w.message)]
    assert warning.filename == __file__
    if not with_hooks:
        add_hook(recorder)
