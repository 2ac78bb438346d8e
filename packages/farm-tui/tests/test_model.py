"""The dashboard's model: snapshots in, a view at a given time out."""

from __future__ import annotations

import json
from typing import Any

from fast_app.farm.messages.snapshots import decode_snapshot
from fast_app.farm_tui import _format as fmt
from fast_app.farm_tui.limits import Limits
from fast_app.farm_tui.model import FarmModel
from fast_app.farm_tui.sample import sample_snapshot
from fast_app.farm_tui.view import NamedQueueView

NOW = 1_700_000_000.0
TWO_QUEUES = ("emails", "reports")


def with_queue(snapshot: dict[str, Any], name: str, **fields: Any) -> dict[str, Any]:
    """``snapshot`` with fields of its ``name`` queue replaced (``figures`` merged)."""
    queues = []
    for entry in snapshot["queues"]:
        if entry["name"] == name:
            figures = {**entry["figures"], **fields.pop("figures", {})}
            entry = {**entry, **fields, "figures": figures}
        queues.append(entry)
    return {**snapshot, "queues": queues}


def row(model: FarmModel, name: str, now: float) -> NamedQueueView:
    return next(queue for queue in model.view(now).queues if queue.name == name)


def test_ages_grow_with_the_time_since_the_snapshot_and_late_heartbeats_are_flagged() -> None:
    model = FarmModel()
    model.ingest(sample_snapshot(NOW, workers=2))

    view = model.view(NOW + 2.5)

    [(first, first_stale), _] = view.workers
    assert first.heartbeat_age_s == 0.3 + 2.5
    assert not first_stale
    model.ingest(sample_snapshot(NOW + 3, workers=2, stale_worker=1))
    [(_, first_stale), (_, second_stale)] = model.view(NOW + 3).workers
    assert (first_stale, second_stale) == (False, True)
    assert view.supervisors[0].snapshot_age_s == 2.5


def test_events_are_taken_once_and_anew_after_a_restart_under_the_same_id() -> None:
    model = FarmModel()
    model.ingest(sample_snapshot(NOW, started_at=NOW - 30))  # events 1..6
    model.ingest(sample_snapshot(NOW + 5, started_at=NOW - 30))  # events 2..7

    events, cursor = model.events_since(0)
    assert [event.seq for event in events] == [1, 2, 3, 4, 5, 6, 7]
    assert model.events_since(cursor) == ([], cursor)

    model.ingest(sample_snapshot(NOW + 10, started_at=NOW - 2))  # restarted: 1, 2 anew
    events, _ = model.events_since(cursor)
    assert [event.seq for event in events] == [1, 2]


def test_ended_jobs_outlive_the_snapshots_that_carried_them() -> None:
    model = FarmModel()
    for tick in range(30):
        model.ingest(sample_snapshot(NOW + tick, tick=tick))

    recent = model.view(NOW + 30).recent
    failed = [job for job in recent if job.outcome != "succeeded"]
    succeeded = [job for job in recent if job.outcome == "succeeded"]
    assert len(failed) == 30  # kept longer than the snapshots keep them
    assert len(succeeded) == 20
    assert recent[0].ended_at >= recent[-1].ended_at


def test_older_snapshots_are_ignored_stopped_and_silent_supervisors_dropped() -> None:
    model = FarmModel(forget_after_s=30)
    model.ingest(sample_snapshot(NOW, supervisor_id="a-1", workers=2))
    model.ingest(sample_snapshot(NOW - 1, supervisor_id="a-1", workers=5))
    model.ingest(sample_snapshot(NOW, supervisor_id="b-2", workers=1))

    assert len(model.view(NOW).workers) == 3
    model.ingest({**sample_snapshot(NOW + 1, supervisor_id="b-2"), "stopped": True})
    assert model.supervisor_ids == ["a-1"]
    model.forget_silent(NOW + 31)
    assert model.supervisor_ids == []


def test_queue_depths_come_from_the_freshest_reading_and_unacked_adds_up() -> None:
    model = FarmModel()
    model.ingest(sample_snapshot(NOW, supervisor_id="a-1", workers=2, ready=10))
    model.ingest(sample_snapshot(NOW + 1, supervisor_id="b-2", workers=3, ready=7))

    queue = model.view(NOW + 1).queue

    assert queue.ready == 7
    assert queue.unacked == 2 * 2 + 3 * 2


def test_an_odd_snapshot_shows_as_unknowns_rather_than_failing() -> None:
    model = FarmModel()
    model.ingest({"type": "snapshot", "supervisor_id": "x", "workers": [{"pid": "?"}, 3]})

    view = model.view(NOW)

    assert [worker.worker_id for worker, _ in view.workers] == ["?", "?"]
    assert view.queue.ready is None


def test_the_sample_snapshots_are_what_a_supervisor_sends() -> None:
    for queues in (("jobs",), TWO_QUEUES):
        decode_snapshot(json.dumps(sample_snapshot(NOW, queues=queues)).encode())


def test_two_queues_show_as_two_rows_with_their_pools_backlogs_and_waits() -> None:
    model = FarmModel()
    model.ingest(sample_snapshot(NOW, workers=3, queues=TWO_QUEUES, tick=40))

    view = model.view(NOW + 0.5)

    emails, reports = view.queues
    assert (emails.name, reports.name) == TWO_QUEUES
    assert (emails.workers, emails.desired_workers, emails.min_workers, emails.max_workers) == (
        2,
        2,
        1,
        4,
    )
    assert (reports.workers, reports.min_workers, reports.max_workers) == (1, 0, 8)
    assert (reports.figures.ready, reports.figures.unacked, reports.figures.dead) == (300, 2, 1)
    assert (reports.wait_p50_s, reports.wait_max_s, reports.waits_counted) == (41.0, 150.0, 30)
    assert not reports.wait_p50_approximate  # one supervisor's median: exact
    assert reports.clear_s is not None and reports.clear_s > 7
    # Then the farm's totals add the queues up, and the workers say whose they are.
    assert (view.queue.ready, view.queue.unacked) == (420, 6)
    assert [worker.queue for worker, _ in view.workers] == ["emails", "reports", "emails"]


def test_unknown_figures_stay_unknown_rather_than_zero() -> None:
    # Given a queue whose delayed count was not read yet, and one never read at all.
    snapshot = with_queue(
        sample_snapshot(NOW, queues=TWO_QUEUES),
        "emails",
        figures={"ready": None, "consumers": None},
        read_at=None,
        clear_s=None,
    )
    model = FarmModel()
    model.ingest(snapshot)

    emails, reports = model.view(NOW).queues

    assert reports.figures.delayed is None
    assert (emails.figures.ready, emails.clear_s, emails.read_age_s) == (None, None, None)
    assert not emails.stale  # unknown, not old
    assert emails.backlog_history[-1] is None
    assert model.view(NOW).queue.ready is None  # a total of an unknown is unknown


def test_figures_of_an_old_broker_read_are_stale() -> None:
    model = FarmModel()
    model.ingest(sample_snapshot(NOW, queues=TWO_QUEUES, stale_queue="reports"))

    emails, reports = model.view(NOW + 1).queues

    assert not emails.stale
    assert reports.stale
    assert reports.read_age_s == 31.0
    # A snapshot that stopped coming makes its queues' figures stale too.
    assert row(model, "emails", NOW + 10).stale


def test_figures_read_at_each_slower_scaling_check_are_not_stale_between_two_reads() -> None:
    # Given a supervisor sending a snapshot a second, reading the broker every 5 s.
    model = FarmModel()
    for second in range(12):
        read_at = NOW + second - second % 5
        model.ingest(with_queue(sample_snapshot(NOW + second), "jobs", read_at=read_at))

    # Then figures 4 s old are as fresh as they come; 3 reads missed, they are stale.
    assert row(model, "jobs", NOW + 14).read_age_s == 4.0
    assert not row(model, "jobs", NOW + 14).stale
    assert row(model, "jobs", NOW + 26).stale


def test_a_queue_served_by_two_supervisors_merges_pools_rates_and_the_freshest_read() -> None:
    # Given two supervisors serving reports: b read the broker last, though a's
    # snapshot is the later one.
    first = with_queue(
        sample_snapshot(NOW + 1, supervisor_id="a-1", workers=2, queues=TWO_QUEUES),
        "reports",
        figures={"ready": 500, "unacked": 3},
        read_at=NOW - 2,
        enqueue_rate=60.0,
        completion_rate=40.0,
        wait_p50_s=10.0,
        wait_max_s=20.0,
        waits_counted=30,
    )
    second = with_queue(
        sample_snapshot(NOW, supervisor_id="b-2", workers=2, queues=("reports",)),
        "reports",
        figures={"ready": 400, "unacked": 5},
        read_at=NOW - 0.5,
        enqueue_rate=70.0,
        completion_rate=50.0,
        wait_p50_s=40.0,
        wait_max_s=90.0,
        waits_counted=10,
        min_workers=1,
        max_workers=4,
    )
    model = FarmModel()
    model.ingest(first)
    model.ingest(second)

    reports = row(model, "reports", NOW + 1)

    assert reports.supervisors == 2
    assert (reports.min_workers, reports.max_workers) == (0 + 1, 8 + 4)
    assert reports.workers == 1 + 2
    assert reports.figures.ready == 400  # b's read is the freshest
    assert reports.figures.unacked == 3 + 5
    # Arrivals counted once: the mean growth (20/s) plus every completion (90/s).
    assert (reports.enqueue_rate, reports.completion_rate) == (110.0, 90.0)
    # Medians do not merge: the weighted mean of theirs, shown as an estimate (≈), as
    # fast-app status shows it; the longest is exact.
    assert reports.wait_p50_s == (10.0 * 30 + 40.0 * 10) / 40
    assert (reports.wait_max_s, reports.waits_counted) == (90.0, 40)
    assert reports.wait_p50_approximate
    shown = fmt.wait(
        reports.wait_p50_s, reports.wait_max_s, approximate=reports.wait_p50_approximate
    )
    assert shown == "≈18s/90s"
    assert reports.clear_s == (400 + 8) / 90.0  # from the merged backlog and drain
    assert [queue.name for queue in model.view(NOW + 1).queues] == list(TWO_QUEUES)


def test_each_queue_keeps_its_backlog_history_and_forgets_a_queue_no_one_serves() -> None:
    model = FarmModel(history_points=5)
    for tick in range(38, 43):
        model.ingest(sample_snapshot(NOW + tick - 42, queues=TWO_QUEUES, tick=tick))

    reports = row(model, "reports", NOW)

    # The burst of the sample: 300 at tick 40, 15 fewer a tick either side (plus 0 or
    # 2 jobs in flight).
    assert reports.backlog_history == (270.0 + 2, 285.0 + 2, 300.0 + 2, 285.0 + 2, 270.0 + 2)
    model.ingest(sample_snapshot(NOW + 1, queues=("emails",)))
    assert [queue.name for queue in model.view(NOW + 1).queues] == ["emails"]
    model.ingest(sample_snapshot(NOW + 2, queues=TWO_QUEUES))
    assert row(model, "reports", NOW + 2).backlog_history[:-1] == (None,) * 4  # anew


def test_a_snapshot_without_queues_shows_its_one_queue_from_the_totals() -> None:
    # A supervisor from before named queues.
    snapshot = sample_snapshot(NOW, workers=2)
    del snapshot["queues"]
    for worker in snapshot["workers"]:
        del worker["queue"]
    model = FarmModel()
    model.ingest(snapshot)

    view = model.view(NOW)

    [jobs] = view.queues
    assert (jobs.name, jobs.workers, jobs.min_workers, jobs.max_workers) == ("jobs", 2, 1, 8)
    assert jobs.figures == view.queue
    assert (jobs.wait_p50_s, jobs.clear_s) == (None, None)
    assert [worker.queue for worker, _ in view.workers] == ["jobs", "jobs"]


def test_limits_of_a_queue_are_its_pool_s_and_a_request_shows_until_a_snapshot_does() -> None:
    model = FarmModel()
    model.ingest(sample_snapshot(NOW, queues=TWO_QUEUES))

    assert model.limits("web-1-4242", NOW, queue="reports") == Limits(0, 8)
    assert model.limits("web-1-4242", NOW) == Limits(1, 8)  # overall: sum of minimums
    assert model.limits("web-1-4242", NOW, queue="bulk") is None
    assert model.room_for_minimum("web-1-4242", "reports", NOW) == 8 - 1
    model.pending_limits.request("web-1-4242", Limits(2, 9), NOW, queue="reports")

    reports = row(model, "reports", NOW)
    assert (reports.min_workers, reports.max_workers, reports.limits_pending) == (2, 9, True)
    assert not row(model, "emails", NOW).limits_pending
    assert model.room_for_minimum("web-1-4242", "emails", NOW) == 8 - 2


def test_a_supervisor_of_one_queue_has_one_set_of_limits() -> None:
    model = FarmModel()
    model.ingest(sample_snapshot(NOW, queues=("reports",)))
    model.pending_limits.request("web-1-4242", Limits(3, 8), NOW)

    assert not model.serves_several_queues("web-1-4242")
    assert model.limits("web-1-4242", NOW, queue="reports") == Limits(3, 8)
    assert row(model, "reports", NOW).limits_pending
