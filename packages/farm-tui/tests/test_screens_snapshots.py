"""SVG snapshots of each screen, from fixed sample data at a fixed time.

Update them after a deliberate change of the screens:
``uv run pytest packages/farm-tui/tests/test_screens_snapshots.py --snapshot-update``,
then look at the SVGs (or the report pytest-textual-snapshot writes on a failure).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot

from fast_app.farm_tui import FarmApp, LinkStatus, LogLine, StaticFarm
from fast_app.farm_tui.sample import sample_dead_letters, sample_history

NOW = 1_700_000_000.0
SIZE = (130, 38)

SnapCompare = Callable[..., bool]


def dashboard(*, owns_farm: bool = True, **sample: Any) -> FarmApp:
    link = StaticFarm(
        sample_history(NOW, **sample),
        dead_letters=sample_dead_letters(NOW),
        log_lines=[
            LogLine(NOW - 3, "info", "fast_app.farm.supervisor", "worker web-1-4242-w3 started"),
            LogLine(NOW - 2, "output", "web-1-4242-w3", "INFO worker consuming jobs"),
            LogLine(NOW - 1, "error", "fast_app.farm.worker", "job 1042 dead-lettered"),
        ],
        owns_farm=owns_farm,
    )
    return FarmApp(link, clock=lambda: NOW)


def test_overview(snap_compare: SnapCompare) -> None:
    """Supervisors, workers (w2's heartbeat is late; w3 and w4 hold 12 and 3 deliveries
    waiting for a slot, which the status bar adds up), queue rates, decisions, events."""
    assert snap_compare(
        dashboard(stale_worker=1, workers=4, waiting=(0, 0, 12, 3)), terminal_size=SIZE
    )


def test_overview_of_top_with_two_supervisors(snap_compare: SnapCompare) -> None:
    """Two supervisors; top offers S to shut one down."""

    async def second_supervisor(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, FarmApp)
        for snapshot in sample_history(NOW, seconds=5, supervisor_id="web-2-777", workers=2):
            app.model.ingest(snapshot)

    assert snap_compare(
        dashboard(owns_farm=False), terminal_size=SIZE, run_before=second_supervisor
    )


def test_overview_of_two_queues(snap_compare: SnapCompare) -> None:
    """A row per queue: reports' 300-job burst under its peak, its delayed count unknown
    (``-``); emails' broker figures 30 s old (red, with their age); a queue per worker."""
    assert snap_compare(
        dashboard(queues=("emails", "reports"), stale_queue="emails", workers=4),
        terminal_size=SIZE,
    )


def test_overview_of_two_queues_on_80_by_24(snap_compare: SnapCompare) -> None:
    """At 80 by 24 the queue rows stay whole (shorter labels, a narrower sparkline); the
    decisions and events step aside for the workers."""
    assert snap_compare(dashboard(queues=("emails", "reports"), workers=4), terminal_size=(80, 24))


def test_overview_on_80_by_24(snap_compare: SnapCompare) -> None:
    """One queue at 80 by 24: the workers stay visible with their jobs and deliveries
    waiting, and so do the footer's keys."""
    assert snap_compare(
        dashboard(stale_worker=1, workers=4, waiting=(0, 0, 12, 3)), terminal_size=(80, 24)
    )


def test_overview_on_200_by_50(snap_compare: SnapCompare) -> None:
    """At 200 by 50 the rates pane shares the width with the supervisors, its sparklines
    and the queues' backlog sparklines as wide as the room (with their peak)."""
    assert snap_compare(dashboard(queues=("emails", "reports"), workers=4), terminal_size=(200, 50))


def test_overview_of_top_over_a_broker_outage(snap_compare: SnapCompare) -> None:
    """top 20 s into an outage: reconnecting since, the data's age, rates unknown and
    blank since, workers unknown rather than LATE."""
    app = dashboard(owns_farm=False, workers=3)
    app.link.link_status = LinkStatus(  # type: ignore[attr-defined]
        False, detail="reconnecting", since=NOW + 1
    )
    app._clock = lambda: NOW + 20
    assert snap_compare(app, terminal_size=SIZE)


def test_help(snap_compare: SnapCompare) -> None:
    """? lists every key, by where it works."""
    assert snap_compare(dashboard(), press=["question_mark"], terminal_size=SIZE)


def test_jobs_on_200_by_50(snap_compare: SnapCompare) -> None:
    """At 200 by 50 the recent runs' errors are whole."""
    assert snap_compare(dashboard(), press=["2"], terminal_size=(200, 50))


def test_jobs_with_a_failure_selected(snap_compare: SnapCompare) -> None:
    """Deadline bars of running jobs; the selected dead-lettered run's error and traceback."""
    assert snap_compare(dashboard(), press=["2", "tab", "down", "down"], terminal_size=SIZE)


def test_jobs_with_a_waiting_job_selected(snap_compare: SnapCompare) -> None:
    """After the running jobs, the deliveries waiting in workers for a slot: marked
    ``waiting`` where a run time would be, with no attempt nor deadline bars (they have
    not started); the title counts them apart; the selected one's details say why."""
    assert snap_compare(dashboard(waiting=(2, 0, 1)), press=["2", "end"], terminal_size=SIZE)


def test_jobs_with_waiting_jobs_on_80_by_24(snap_compare: SnapCompare) -> None:
    """60 deliveries waiting at 80 by 24: the running jobs first, the title says how many
    wait and that a snapshot lists 40 of them."""
    assert snap_compare(dashboard(waiting=(30, 20, 10)), press=["2"], terminal_size=(80, 24))


def test_dead_letters(snap_compare: SnapCompare) -> None:
    """The dead letters, the first one in full."""
    assert snap_compare(dashboard(), press=["3"], terminal_size=SIZE)


def test_purge_asks_first(snap_compare: SnapCompare) -> None:
    """Purge opens a confirmation over the dead letters."""
    assert snap_compare(dashboard(), press=["3", "x"], terminal_size=SIZE)


def test_output(snap_compare: SnapCompare) -> None:
    """The supervisor's log records and the workers' lines."""
    assert snap_compare(dashboard(), press=["4"], terminal_size=SIZE)


def test_jobs_on_80_by_24(snap_compare: SnapCompare) -> None:
    """At 80 by 24 the 6 running jobs all show; the recent runs and the selected job
    share the lines they leave."""
    assert snap_compare(dashboard(), press=["2"], terminal_size=(80, 24))


def test_dead_letters_on_80_by_24(snap_compare: SnapCompare) -> None:
    """The dead letters at 80 by 24: the footer keeps q and ?, and leaves Pause, Reload
    and Requeue all to the help."""
    assert snap_compare(dashboard(), press=["3"], terminal_size=(80, 24))


def test_dead_letters_of_top_on_80_by_24(snap_compare: SnapCompare) -> None:
    """The most keys of any footer (top adds S) at 80 by 24: q Detach and ? still show."""
    assert snap_compare(dashboard(owns_farm=False), press=["3"], terminal_size=(80, 24))


def test_dead_letters_on_200_by_50(snap_compare: SnapCompare) -> None:
    """The dead letters at 200 by 50."""
    assert snap_compare(dashboard(), press=["3"], terminal_size=(200, 50))


def test_output_on_80_by_24(snap_compare: SnapCompare) -> None:
    """The output at 80 by 24."""
    assert snap_compare(dashboard(), press=["4"], terminal_size=(80, 24))


def test_output_on_200_by_50(snap_compare: SnapCompare) -> None:
    """The output at 200 by 50."""
    assert snap_compare(dashboard(), press=["4"], terminal_size=(200, 50))


def test_functions(snap_compare: SnapCompare) -> None:
    """The last hour a minute a cell (a burst half an hour ago, a few minutes with
    failures), then each function busiest first with its rate, failures and runtimes."""
    assert snap_compare(dashboard(), press=["5"], terminal_size=SIZE)


def test_functions_on_80_by_24(snap_compare: SnapCompare) -> None:
    """The functions at 80 by 24: the hour squeezed into the width, peaks kept."""
    assert snap_compare(dashboard(), press=["5"], terminal_size=(80, 24))


def test_functions_on_200_by_50(snap_compare: SnapCompare) -> None:
    """The functions at 200 by 50: a cell a minute for the whole hour."""
    assert snap_compare(dashboard(), press=["5"], terminal_size=(200, 50))


def test_help_on_80_by_24(snap_compare: SnapCompare) -> None:
    """The help at 80 by 24: its list scrolls, the footer keeps its keys."""
    assert snap_compare(dashboard(), press=["question_mark"], terminal_size=(80, 24))


def test_help_on_200_by_50(snap_compare: SnapCompare) -> None:
    """The help at 200 by 50."""
    assert snap_compare(dashboard(), press=["question_mark"], terminal_size=(200, 50))


def test_overview_of_top_with_a_backlog_and_no_supervisor(snap_compare: SnapCompare) -> None:
    """top with no supervisor heard: the queue read from the broker, 835 ready and no
    consumer, says so first on the status line, in white on red; at 80 columns the footer
    leaves S out for q Detach."""
    from fast_app.farm.broker_queues import QueueReading

    app = FarmApp(StaticFarm(owns_farm=False), clock=lambda: NOW)

    async def broker_read(pilot: Pilot[Any]) -> None:
        app.model.ingest_readings([QueueReading("jobs", True, 835, 0, 3, 12, NOW - 1)])
        app.refresh_screen()

    assert snap_compare(app, terminal_size=(80, 24), run_before=broker_read)
