"""The queues ``top`` reads from the broker itself, in the model: no processes, no broker."""

from __future__ import annotations

from fast_app.farm.broker_queues import QueueReading
from fast_app.farm_tui.model import FarmModel
from fast_app.farm_tui.sample import sample_history

NOW = 1_700_000_000.0


def reading(ready: int, consumers: int, *, at: float = NOW, name: str = "jobs") -> QueueReading:
    return QueueReading(name, True, ready, consumers, 2, 1, at)


def test_a_queue_no_supervisor_serves_gets_a_row_from_the_broker() -> None:
    # Given no supervisor, and the broker's 50 ready jobs with no consumer.
    model = FarmModel(broker_read_interval_s=2.0)
    model.ingest_readings([reading(50, 0)])

    # Then the queue shows, and so does the backlog nobody consumes.
    view = model.view(NOW + 1)
    (queue,) = view.queues
    assert (queue.name, queue.figures.ready, queue.figures.consumers) == ("jobs", 50, 0)
    assert (queue.figures.dead, queue.figures.delayed, queue.supervisors) == (2, 1, 0)
    assert view.unconsumed == ("jobs",)


def test_an_old_read_or_a_consumer_is_no_unconsumed_backlog() -> None:
    model = FarmModel(broker_read_interval_s=2.0)
    model.ingest_readings([reading(50, 1, name="served"), reading(50, 0, name="old", at=NOW - 30)])

    view = model.view(NOW)
    assert view.unconsumed == ()
    # Rows of queues no supervisor serves come by name; the old read is stale.
    assert [(queue.name, queue.stale) for queue in view.queues] == [
        ("old", True),
        ("served", False),
    ]


def test_a_fresher_broker_read_replaces_the_supervisors_figures() -> None:
    # Given a supervisor's snapshots whose broker read is 30 s old (it lost the broker).
    model = FarmModel(broker_read_interval_s=2.0)
    for snapshot in sample_history(NOW, seconds=5, stale_queue="jobs"):
        model.ingest(snapshot)
    assert model.view(NOW).queues[0].stale

    # When top reads the queue itself.
    model.ingest_readings([reading(7, 0)])

    # Then the row has the broker's figures, fresh.
    (queue,) = model.view(NOW).queues
    assert (queue.figures.ready, queue.figures.consumers, queue.stale) == (7, 0, False)
    assert model.view(NOW).unconsumed == ("jobs",)
