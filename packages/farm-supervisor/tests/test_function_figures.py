"""Figures by function and by minute: runtime histograms, the worker's tally, the
supervisor's minutes, the readers' merge, and the bounds of the messages that carry them."""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass, field

import msgspec
import pytest
from farm_messages import job_run, snapshot

from fast_app.core.queue import JobError, JobOutcome, JobStatus
from fast_app.core.queue.hooks import HookChain
from fast_app.farm.function_figures import function_rows, merged_history
from fast_app.farm.histograms import BUCKETS, RuntimeHistogram, bucket_of, bucket_value
from fast_app.farm.messages import decode_heartbeat, decode_snapshot, encode_snapshot
from fast_app.farm.messages.job_figures import (
    FUNCTIONS_LISTED,
    HISTORY_MINUTES,
    OTHER_FUNCTIONS,
    FunctionFigures,
    MinuteTotals,
)
from fast_app.farm.run_tallies import RunTally
from fast_app.farm.supervisor._job_figures import FUNCTION_WINDOW_MINUTES, JobFigures
from fast_app.farm.worker._function_tally import FunctionTally
from fast_app.farm.worker._statistics import WorkerStatistics

# -- histograms -----------------------------------------------------------------------


def test_buckets_grow_with_the_duration_and_cover_microseconds_to_days() -> None:
    durations = [0.0, 5e-5, 1e-4, 2e-4, 0.001, 0.05, 1.0, 60.0, 3600.0, 86_400.0, 1e7]
    indexes = [bucket_of(seconds) for seconds in durations]
    assert indexes == sorted(indexes)
    assert indexes[0] == indexes[1] == indexes[2] == 0
    assert indexes[-1] == BUCKETS - 1
    assert bucket_of(float("nan")) == 0 and bucket_of(-1.0) == 0
    for seconds in (0.001, 0.05, 1.0, 60.0, 3600.0):
        assert bucket_value(bucket_of(seconds)) == pytest.approx(seconds, rel=0.1)


def test_percentiles_of_a_histogram_are_within_ten_percent_of_the_true_ones() -> None:
    rng = random.Random(7)
    durations = [rng.lognormvariate(-3, 1.2) for _ in range(20_000)]
    histogram = RuntimeHistogram()
    for seconds in durations:
        histogram.add(seconds)
    ordered = sorted(durations)
    assert histogram.count == 20_000
    assert histogram.quantile(0.5) == pytest.approx(statistics.median(durations), rel=0.1)
    assert histogram.quantile(0.95) == pytest.approx(ordered[int(0.95 * 20_000)], rel=0.1)
    assert RuntimeHistogram().quantile(0.5) is None


def test_merged_histograms_give_the_percentiles_of_all_their_durations() -> None:
    # Given a fast worker and a slow one, whose medians (1 ms, 1 s) say nothing together.
    fast, slow, both = RuntimeHistogram(), RuntimeHistogram(), RuntimeHistogram()
    for _ in range(300):
        fast.add(0.001)
        both.add(0.001)
    for _ in range(100):
        slow.add(1.0)
        both.add(1.0)

    # When their buckets travel as pairs and are merged.
    merged = RuntimeHistogram(fast.pairs())
    merged.merge(RuntimeHistogram(slow.pairs()))

    # Then the merge is the histogram of all 400 runs.
    assert merged.pairs() == both.pairs()
    assert merged.quantile(0.5) == pytest.approx(0.001, rel=0.1)
    assert merged.quantile(0.95) == pytest.approx(1.0, rel=0.1)


# -- the worker's tally -----------------------------------------------------------------


def test_the_worker_tallies_each_function_that_ran_by_how_its_run_ended() -> None:
    statistics_hook = WorkerStatistics()
    hooks = HookChain([statistics_hook])
    failed = JobOutcome(JobStatus.FAILED, 0.5, JobError("ValueError", "no"))
    # Given runs that succeeded, failed twice (retried, then dead-lettered), were
    # cancelled by an operator, and passed their hard timeout.
    for job_id, outcome, then in [
        ("a", JobOutcome(JobStatus.SUCCEEDED, 0.01), None),
        ("b", JobOutcome(JobStatus.SUCCEEDED, 0.02), None),
        ("c", failed, "retried"),
        ("d", failed, "dead_lettered"),
    ]:
        run = job_run(job_id)
        hooks.delivered(run)
        hooks.before_run(run)
        hooks.after_run(run, outcome)
        if then == "retried":
            hooks.retried(run)
        elif then == "dead_lettered":
            hooks.dead_lettered(run, "failed")
        hooks.settled(run)
    cancelled = job_run("e")
    hooks.before_run(cancelled)
    hooks.cancelled(cancelled)
    hooks.dead_lettered(cancelled, "cancelled")
    hooks.settled(cancelled)
    hard = job_run("f", "app.jobs.slow")
    hooks.before_run(hard)
    hooks.hard_timeout(hard, "passed its hard timeout")
    hooks.retried(hard)
    hooks.settled(hard)
    # and deliveries that never ran: refused (a name nobody vetted) and abandoned.
    refused = job_run("g", "evil.forged_name")
    hooks.refused(refused, "not_allowed", "no")
    hooks.dead_lettered(refused, "not_allowed")
    hooks.settled(refused)
    abandoned = job_run("h")
    hooks.before_run(abandoned)
    hooks.cancelled(abandoned)
    hooks.settled(abandoned)

    # When the heartbeat takes the tally.
    runs = {entry.function: entry for entry in statistics_hook.functions.take()}

    # Then only the functions that ran are there, each counted by how its run ended.
    assert set(runs) == {"app.jobs.work", "app.jobs.slow"}
    work, slow = runs["app.jobs.work"], runs["app.jobs.slow"]
    assert (work.succeeded, work.retried, work.dead_lettered, work.cancelled) == (2, 1, 1, 1)
    assert work.hard_timeouts == 0
    assert sum(count for _, count in work.runtimes) == 4  # the runs whose code ended
    assert (slow.retried, slow.hard_timeouts, slow.runtimes) == (1, 1, [])
    # And the next heartbeat starts again from nothing.
    assert statistics_hook.functions.take() == []


def test_a_heartbeat_lists_the_busiest_functions_and_sums_the_rest() -> None:
    tally = FunctionTally()
    for number in range(FUNCTIONS_LISTED + 10):
        for _ in range(number + 1):
            tally.of(f"app.jobs.f{number}").succeeded += 1

    listed = tally.take()

    assert len(listed) == FUNCTIONS_LISTED + 1
    assert listed[0].function == f"app.jobs.f{FUNCTIONS_LISTED + 9}"
    other = listed[-1]
    assert other.function == OTHER_FUNCTIONS
    assert other.succeeded == sum(range(1, 11))  # the ten quietest: 1 + 2 + ... + 10


# -- the supervisor's minutes ----------------------------------------------------------


@dataclass
class _Worker:
    queue: str | None = None
    runs: dict[str, RunTally] = field(default_factory=dict)

    def take_function_runs(self) -> dict[str, RunTally]:
        runs, self.runs = self.runs, {}
        return runs


def _tally(
    succeeded: int = 0, retried: int = 0, dead: int = 0, runtime_s: float = 0.01
) -> RunTally:
    tally = RunTally(succeeded=succeeded, retried=retried, dead_lettered=dead)
    for _ in range(succeeded + retried + dead):
        tally.runtimes.add(runtime_s)
    return tally


def test_function_figures_cover_the_last_minutes_and_history_the_last_hour() -> None:
    # Given a supervisor started at 10:00:30 whose workers ran jobs over 70 minutes.
    start = 36_030.0
    figures = JobFigures("jobs", start)
    worker = _Worker()
    for minute in range(70):
        worker.runs = {"app.jobs.work": _tally(succeeded=10, retried=1)}
        figures.collect(worker, start + 60 * minute)  # type: ignore[arg-type]
    worker.runs = {"app.jobs.mail": _tally(dead=2)}
    now = start + 60 * 69 + 5
    figures.collect(worker, now)  # type: ignore[arg-type]
    figures.hard_timeout(None, "app.jobs.mail", now)

    # When a snapshot asks for them.
    functions = {entry.function: entry for entry in figures.functions(now)}
    history = figures.history(now)

    # Then each function's figures add up the last few minutes only, since when they say.
    work = functions["app.jobs.work"]
    assert (work.succeeded, work.retried) == (10 * FUNCTION_WINDOW_MINUTES, FUNCTION_WINDOW_MINUTES)
    assert work.queue == "jobs"
    assert now - work.since < 60 * FUNCTION_WINDOW_MINUTES
    mail = functions["app.jobs.mail"]
    assert (mail.dead_lettered, mail.hard_timeouts) == (2, 1)
    # And the history holds the last hour of minutes, oldest first, the current one last.
    assert len(history) == HISTORY_MINUTES
    assert [minute.at % 60 for minute in history] == [0] * HISTORY_MINUTES
    assert history[-1].at == now - now % 60
    assert (history[-1].succeeded, history[-1].dead_lettered, history[-1].hard_timeouts) == (
        10,
        2,
        1,
    )
    assert all(minute.succeeded == 10 for minute in history[:-1])


def test_history_starts_when_the_supervisor_did_and_quiet_minutes_are_zero() -> None:
    start = 36_000.0
    figures = JobFigures("jobs", start)
    worker = _Worker(queue="reports")
    worker.runs = {"app.jobs.report": _tally(succeeded=3)}
    figures.collect(worker, start + 10)  # type: ignore[arg-type]

    history = figures.history(start + 200)
    functions = figures.functions(start + 200)

    assert [minute.at for minute in history] == [start, start + 60, start + 120, start + 180]
    assert [minute.succeeded for minute in history] == [3, 0, 0, 0]
    [report] = functions
    assert (report.queue, report.since) == ("reports", start)  # not before it started


# -- merging snapshots -----------------------------------------------------------------


def test_readers_add_supervisors_up_exactly_and_rates_from_each_ones_window() -> None:
    # Given two supervisors of one queue: one up for a minute, one for five.
    young, old = RuntimeHistogram(), RuntimeHistogram()
    for _ in range(60):
        young.add(0.001)
    for _ in range(90):
        old.add(2.0)
    old.add(2.0)
    old.add(2.0)
    now = 100_000.0
    snapshots = [
        snapshot(
            "young",
            at=now,
            functions=[
                FunctionFigures(
                    function="app.jobs.work",
                    queue="jobs",
                    since=now - 60,
                    succeeded=60,
                    runtimes=young.pairs(),
                )
            ],
            history=[MinuteTotals(now - 60, 60)],
        ),
        snapshot(
            "old",
            at=now,
            functions=[
                FunctionFigures(
                    function="app.jobs.work",
                    queue="jobs",
                    since=now - 300,
                    succeeded=90,
                    dead_lettered=2,
                    runtimes=old.pairs(),
                )
            ],
            history=[MinuteTotals(now - 120, 30), MinuteTotals(now - 60, 62, 0, 2)],
        ),
    ]

    [row] = function_rows((s.at, s.functions) for s in snapshots)
    history = merged_history(s.history for s in snapshots)

    assert (row.tally.succeeded, row.tally.dead_lettered, row.supervisors) == (150, 2, 2)
    assert row.runs_per_minute == pytest.approx(60 + 92 / 5)
    assert row.failure_ratio == pytest.approx(2 / 152)
    assert row.p50_s == pytest.approx(2.0, rel=0.1)  # 92 slow runs of 152
    assert row.p95_s == pytest.approx(2.0, rel=0.1)
    assert [(m.at, m.succeeded, m.dead_lettered) for m in history] == [
        (now - 120, 30, 0),
        (now - 60, 122, 2),
    ]


# -- the bounds of the messages ------------------------------------------------------


def _heartbeat(**fields: object) -> bytes:
    beat = {
        "type": "heartbeat",
        "worker_id": "w1",
        "pid": 1,
        "state": "idle",
        "at": time.time(),
        "started_at": time.time(),
        "concurrency": 1,
        "in_flight": [],
        "in_flight_count": 0,
        "counters": {},
        "ended": [],
        "rss_bytes": None,
        **fields,
    }
    return msgspec.json.encode(beat)


@pytest.mark.parametrize(
    "functions",
    [
        [{"function": f"app.f{n}"} for n in range(FUNCTIONS_LISTED + 2)],  # too many
        [{"function": "app.f", "runtimes": [[BUCKETS, 1]]}],  # no such bucket
        [{"function": "app.f", "runtimes": [[1, -1]]}],  # a negative count
        [{"function": "app.f", "succeeded": 2**60}],  # past any count
        [{"function": "app.f\x00x"}],  # a NUL in the name
        [{"function": "a" * 301}],  # a name too long
        [{"function": "app.f", "runtimes": [[1, 2, 3]]}],  # not a pair
    ],
)
def test_heartbeats_with_function_runs_out_of_bounds_do_not_decode(
    functions: list[dict[str, object]],
) -> None:
    assert decode_heartbeat(_heartbeat(functions=[])).functions == []
    with pytest.raises(msgspec.ValidationError):
        decode_heartbeat(_heartbeat(functions=functions))


@pytest.mark.parametrize(
    "fields",
    [
        {"history": [[60.0, 1, 0, 0, 0, 0]] * (HISTORY_MINUTES + 1)},
        {"history": [[-60.0, 1, 0, 0, 0, 0]]},
        {"history": [{"at": 60.0}]},  # an object, not the array a minute travels as
        {"functions": [{"function": "app.f", "queue": "q", "since": 1.0}] * 200},
        {"functions": [{"function": "app.f", "since": 1.0}]},  # no queue
    ],
)
def test_snapshots_with_figures_out_of_bounds_do_not_decode(fields: dict[str, object]) -> None:
    body = encode_snapshot(snapshot("s1"))
    document = msgspec.json.decode(body)
    document.update(fields)
    with pytest.raises(msgspec.ValidationError):
        decode_snapshot(msgspec.json.encode(document))
