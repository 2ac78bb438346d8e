"""What the dashboard knows and how old it is: the link's state, stale data, a broker the
supervisors cannot reach, and labels that say what they count (pilot, controlled clock)."""

from __future__ import annotations

import dataclasses
from typing import Any

from textual.widgets import Static

from fast_app.farm_tui import FarmApp, LinkStatus, StaticFarm
from fast_app.farm_tui.model import FarmModel
from fast_app.farm_tui.sample import sample_dead_letters, sample_history, sample_snapshot
from fast_app.farm_tui.screens import HelpScreen
from fast_app.farm_tui.screens.dead_letters import letter_details
from fast_app.farm_tui.screens.jobs import recent_layout
from fast_app.farm_tui.table import LiveTable

NOW = 1_700_000_000.0
SIZE = (140, 40)


class Clock:
    """A clock the test moves."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def shown(app: FarmApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).content)


def cells(app: FarmApp, table: str) -> dict[str, tuple[str, ...]]:
    rows = app.screen.query_one(table, LiveTable).rows
    return {key: tuple(text for text, _ in row) for key, row in rows}


async def test_top_says_reconnecting_and_stale_data_and_stops_its_rates_over_an_outage() -> None:
    # Given top attached to a farm, one snapshot a second for 30 s
    clock = Clock(NOW)
    link = StaticFarm(sample_history(NOW, seconds=30), owns_farm=False)
    link.link_status = LinkStatus(True, detail="connected to amqp://broker", since=NOW - 60)
    app = FarmApp(link, clock=clock, refresh_s=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.1)
        status = shown(app, "#status")
        assert "connected to amqp://broker" in status
        assert "data 0s old" in status
        assert "unknown" not in shown(app, "#enqueue-label")

        # When the broker goes away: the link reconnects, and 20 s pass without data
        link.link_status = LinkStatus(False, detail="reconnecting", since=NOW + 1)
        clock.now = NOW + 20
        await pilot.pause(0.2)

        # Then the status bar says so, with since when and how old the data is
        status = shown(app, "#status")
        assert "reconnecting since" in status
        assert "(19s ago)" in status
        assert "STALE: last data" in status and "(20s ago)" in status
        # the rates are unknown, not the last ones held
        assert "unknown: data 20s old" in shown(app, "#enqueue-label")
        assert "unknown: data 20s old" in shown(app, "#completion-label")
        view = app.model.view(clock.now)
        assert view.enqueue_history[-10:] == (None,) * 10
        assert view.enqueue_rate is None
        # and healthy workers are unknown, not LATE: their own heartbeats were fresh
        workers = cells(app, "#workers")
        assert workers
        for row in workers.values():
            assert "LATE" not in row[-1]
            assert row[-1] == "?, data 20s old"


def test_a_worker_is_late_only_when_its_own_heartbeats_stop() -> None:
    # Given a snapshot where w2's own heartbeat is late, the others' fresh
    model = FarmModel()
    model.ingest(sample_snapshot(NOW, stale_worker=1))

    # When the dashboard hears nothing more for 20 s
    view = model.view(NOW + 20)

    # Then only w2 is late; the others are not (their heartbeats are unknown)
    late = {worker.worker_id: stale for worker, stale in view.workers}
    assert late == {"web-1-4242-w1": False, "web-1-4242-w2": True, "web-1-4242-w3": False}
    assert all(worker.data_stale for worker, _ in view.workers)
    assert view.data_stale


async def test_work_tui_says_the_broker_is_unreachable_while_the_supervisor_is_fresh() -> None:
    # Given the farm's own supervisor, on time, whose broker reads stopped 30 s ago
    link = StaticFarm([sample_snapshot(NOW, stale_queue="jobs")])
    app = FarmApp(link, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        status = shown(app, "#status")

    # Then the status bar says the broker is unreachable, since the last read
    assert "broker unreachable since" in status
    assert "(30s ago)" in status
    assert "STALE" not in status


def fast_farm_read(read_age_s: float) -> FarmModel:
    """A farm reading its queue every 0.2 s (stale after 0.6 s), its snapshot on time,
    its latest read ``read_age_s`` old."""
    snapshot = sample_snapshot(NOW)
    snapshot["settings"]["heartbeat_interval_s"] = 0.2
    for entry in snapshot["queues"]:
        entry["read_at"] = NOW - read_age_s
    model = FarmModel()
    model.ingest(snapshot)
    return model


def test_a_read_a_second_late_on_a_fast_farm_is_no_broker_alarm() -> None:
    # Given a read 1.5 s old: a busy host's scheduling, not an outage
    view = fast_farm_read(1.5).view(NOW)

    # Then the queue reads stale, but the broker is not said unreachable
    assert all(queue.stale for queue in view.queues)
    assert view.broker_unreachable_since is None
    # ...which it is once the reads are a few seconds old
    assert fast_farm_read(3.5).view(NOW).broker_unreachable_since == NOW - 3.5


async def test_fresh_reads_show_no_broker_alarm() -> None:
    link = StaticFarm([sample_snapshot(NOW)])
    app = FarmApp(link, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        status = shown(app, "#status")
    assert "broker unreachable" not in status
    assert "data 0s old" in status


def ended_while_listed(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The first running job also reported ended (dead-lettered at its hard deadline)."""
    job = snapshot["workers"][0]["in_flight"][0]
    snapshot["recent_jobs"]["failed"] = [
        {
            "id": job["id"],
            "function": job["function"],
            "attempt": job["attempt"],
            "outcome": "dead_lettered",
            "ended_at": job["hard_deadline"],
            "duration_s": 1.0,
            "args": job["args"],
            "context_keys": [],
            "worker_id": snapshot["workers"][0]["worker_id"],
            "error": "fast_app.HardTimeout: ran past its hard deadline",
        }
    ]
    return snapshot


def test_a_job_that_ended_is_not_shown_running_past_its_deadline() -> None:
    model = FarmModel()
    snapshot = ended_while_listed(sample_snapshot(NOW))
    ended_id = snapshot["workers"][0]["in_flight"][0]["id"]
    model.ingest(snapshot)

    view = model.view(NOW + 30)

    assert ended_id not in {job.job_id for job in view.running}
    assert ended_id in {job.job_id for job in view.recent}


async def test_help_lists_every_key_and_screen_from_the_bindings() -> None:
    app = FarmApp(StaticFarm([sample_snapshot(NOW)]), clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = shown(app, "#help-text")
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)

    for screen in ("1 Overview", "2 Jobs", "3 Dead letters", "4 Output"):
        assert screen in text
    for key, does in (("+", "Min+"), ("p", "Pause"), ("d", "Drain"), ("x", "Purge")):
        assert f"{key}  " in text and does in text
    assert "Quit: drains the farm" in text
    assert "Shut down" not in text  # top only
    assert "Detach" not in text


async def test_q_in_top_says_it_detaches() -> None:
    link = StaticFarm([sample_snapshot(NOW)], owns_farm=False)
    app = FarmApp(link, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        text = shown(app, "#help-text")
        await pilot.press("escape")
        footer = app.screen.active_bindings["q"].binding.description
        await pilot.press("q")
    assert "Detach: leaves the dashboard; the farm runs on" in text
    assert "Quit" not in text
    assert footer == "Detach"
    assert link.stop_requests == 0 and app.return_code == 0


async def test_top_watching_a_supervisor_stop_does_not_offer_to_kill_its_workers() -> None:
    snapshot = sample_snapshot(NOW, workers=1)
    snapshot["stopping"] = True
    app = FarmApp(StaticFarm([snapshot], owns_farm=False), clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        status = shown(app, "#status")
    assert "STOPPING: draining 1 worker, 2 jobs in flight" in status
    assert "kill" not in status


async def test_counts_say_1_worker_and_failed_counts_dead_letters_apart_from_tries() -> None:
    app = FarmApp(StaticFarm([sample_snapshot(NOW, workers=1)]), clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        status = shown(app, "#status")
        header = [column.label for column in app.screen.query_one("#workers", LiveTable).columns]
        worker = app.model.view(NOW).workers[0][0]
        row = cells(app, "#workers")[worker.worker_id]
    assert "1 supervisor · 1 worker · " in status
    failed = header.index("Failed")
    assert row[failed] == str(worker.dead_lettered)
    assert row[header.index("Failed tries")] == str(worker.failed)


def test_a_dead_letter_after_1_attempt_says_attempt() -> None:
    letter = dataclasses.replace(sample_dead_letters(NOW, count=1)[0], attempts=1)
    assert "after 1 attempt on" in letter_details(letter, NOW).plain
    letter = dataclasses.replace(letter, attempts=3)
    assert "after 3 attempts on" in letter_details(letter, NOW).plain


def test_errors_show_their_message_not_the_job_id_again() -> None:
    # Given a long error that names its own job first, in a wide recent table
    job_id = "a40c9c1f" + "0" * 24
    error = (
        f"fast_app.core.queue.errors.HardTimeoutError: job {job_id} ran past its hard "
        "deadline of 1s and was dead-lettered"
    )
    model = FarmModel()
    snapshot = ended_while_listed(sample_snapshot(NOW))
    snapshot["recent_jobs"]["failed"][0].update(id=job_id, error=error)
    model.ingest(snapshot)

    # When the rows are drawn 200 columns wide
    _, rows = recent_layout(model.view(NOW), NOW, 198)

    # Then the message is whole, the type without its module, the id short
    shown_error = rows[0][1][-1][0]
    assert shown_error == (
        "HardTimeoutError: job a40c9c1f ran past its hard deadline of 1s and was dead-lettered"
    )
