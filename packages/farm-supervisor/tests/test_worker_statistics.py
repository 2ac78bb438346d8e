"""The worker's statistics hook: counters and recently ended jobs from the hook events."""

from __future__ import annotations

from farm_messages import job_run

from fast_app.core.queue import JobError, JobOutcome, JobStatus
from fast_app.core.queue.hooks import HookChain
from fast_app.farm.worker._statistics import WorkerStatistics


def test_each_run_is_counted_and_listed_with_how_its_delivery_ended() -> None:
    statistics = WorkerStatistics()
    hooks = HookChain([statistics])
    failed = JobOutcome(JobStatus.FAILED, 0.5, JobError("ValueError", "no"))

    # a success, a failure retried, a failure dead-lettered, a soft timeout retried
    for job_id, outcome, then in [
        ("a", JobOutcome(JobStatus.SUCCEEDED, 0.1), None),
        ("b", failed, "retried"),
        ("c", failed, "dead_lettered"),
        ("d", JobOutcome(JobStatus.SOFT_TIMEOUT, 2.0), "retried"),
    ]:
        run = job_run(job_id)
        hooks.delivered(run)
        hooks.after_run(run, outcome)
        if then == "retried":
            hooks.retried(run)
        elif then == "dead_lettered":
            hooks.dead_lettered(run, "failed")
        hooks.settled(run)
    # one abandoned at shutdown, one stopped by its hard timeout, one refused
    abandoned, hard, refused = job_run("e"), job_run("f"), job_run("g")
    hooks.cancelled(abandoned)
    hooks.settled(abandoned)
    hooks.hard_timeout(hard, "passed its hard timeout")
    hooks.retried(hard)
    hooks.settled(hard)
    hooks.refused(refused, "not_allowed", "no")
    hooks.dead_lettered(refused, "not_allowed")
    hooks.settled(refused)

    counters = statistics.counters
    assert (counters.succeeded, counters.failed, counters.soft_timeouts) == (1, 4, 1)
    assert (counters.retried, counters.dead_lettered, counters.hard_timeouts) == (3, 2, 1)
    # only runs whose code ended are listed, with how their delivery ended
    listed = {job.id: job.outcome for job in statistics.recent.take()}
    assert listed == {"a": "succeeded", "b": "retried", "c": "dead_lettered", "d": "retried"}
    assert statistics.recent.take() == []
