"""The dashboard's model: snapshots in, a view at a given time out."""

from __future__ import annotations

from fast_app.farm_tui.model import FarmModel
from fast_app.farm_tui.sample import sample_snapshot

NOW = 1_700_000_000.0


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
