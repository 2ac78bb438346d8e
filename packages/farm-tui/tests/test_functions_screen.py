"""The Functions screen: the supervisors' hour of history and each function's figures,
merged over supervisors, shown from the first snapshot a dashboard hears."""

from __future__ import annotations

from typing import Any

from fast_app.farm.histograms import RuntimeHistogram
from fast_app.farm_tui import FarmApp, StaticFarm
from fast_app.farm_tui.job_figures import farm_figures
from fast_app.farm_tui.sample import sample_snapshot
from fast_app.farm_tui.screens.functions import FunctionsScreen, history_lines
from fast_app.farm_tui.table import LiveTable

NOW = 1_700_000_000.0


def _with_figures(snapshot: dict[str, Any], runs: int, runtime_s: float) -> dict[str, Any]:
    runtimes = RuntimeHistogram()
    for _ in range(runs):
        runtimes.add(runtime_s)
    snapshot["functions"] = [
        {
            "function": "app.jobs.work",
            "queue": "jobs",
            "since": snapshot["at"] - 300,
            "succeeded": runs,
            "retried": 0,
            "dead_lettered": 0,
            "cancelled": 0,
            "hard_timeouts": 0,
            "runtimes": runtimes.pairs(),
        }
    ]
    start = snapshot["at"] - snapshot["at"] % 60
    snapshot["history"] = [[start - 60 * n, runs, 0, 0, 0, 0] for n in range(60, -1, -1)]
    return snapshot


async def test_a_dashboard_that_starts_shows_the_last_hour_at_once() -> None:
    # Given two supervisors that have run jobs for an hour, heard once each.
    first = _with_figures(sample_snapshot(NOW, supervisor_id="web-1-1"), 300, 0.01)
    second = _with_figures(sample_snapshot(NOW - 2, supervisor_id="web-2-2"), 100, 1.0)
    app = FarmApp(StaticFarm([first, second]), clock=lambda: NOW)

    async with app.run_test(size=(120, 30)) as pilot:
        # When the Functions screen is shown.
        await pilot.press("5")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, FunctionsScreen)
        table = screen.query_one("#functions", LiveTable)
        history = str(screen.query_one("#history").render())

        # Then the function's figures are the two supervisors' together...
        [(_, cells)] = [row for row in table.rows if row[0] == "jobs/app.jobs.work"]
        texts = [text for text, _ in cells]
        assert texts[2] == "80"  # 300 + 100 runs over 5 minutes
        assert texts[3] == "0%"
        assert texts[6] == "10ms"  # the median of 400 runs, 300 of them 10 ms
        assert texts[7] == "1.06s"  # their 95th percentile: 1 s, to within its bucket
        assert "2 supervisors" in str(table.border_title)
        # ...and the hour is there at once, minute by minute, with its totals.
        assert "peak 400/min" in history
        assert "24,400 succeeded" in history  # 61 minutes of 400


async def test_a_silent_supervisors_figures_are_said_to_be_old() -> None:
    # Given two supervisors with figures, one of them silent for 12 s (not forgotten yet)
    fresh = _with_figures(sample_snapshot(NOW, supervisor_id="web-1-1"), 300, 0.01)
    silent = _with_figures(sample_snapshot(NOW - 12, supervisor_id="web-2-2"), 100, 1.0)
    app = FarmApp(StaticFarm([fresh, silent]), clock=lambda: NOW)

    async with app.run_test(size=(160, 30)) as pilot:
        # When the Functions screen is shown
        await pilot.press("5")
        await pilot.pause()
        table = app.screen.query_one("#functions", LiveTable)

        # Then its title says that one supervisor's figures are 12 s old
        title = str(table.border_title)
        assert "2 supervisors, newest 0s old" in title
        assert "1 SILENT for up to 12s, counted as of then" in title


def test_merged_figures_leave_out_what_does_not_convert() -> None:
    # Given a snapshot whose figures a forger bent (a string count, a bucket out of range)
    # and one from a supervisor before these figures.
    good = _with_figures(sample_snapshot(NOW, supervisor_id="good-1"), 60, 0.5)
    bent = _with_figures(sample_snapshot(NOW, supervisor_id="bent-1"), 60, 0.5)
    bent["functions"][0]["succeeded"] = "many"
    bent["history"][0][0] = -5
    old = sample_snapshot(NOW, supervisor_id="old-1")
    del old["functions"], old["history"]

    figures = farm_figures([good, bent, old])

    # Then the bent parts are left out, not guessed at, and nothing raises.
    [row] = figures.functions
    assert row.tally.succeeded == 60
    assert figures.supervisors == 1
    assert sum(minute.succeeded for minute in figures.history) == 60 * 61


def test_a_minute_no_supervisor_reported_is_blank_not_zero() -> None:
    # Given a history with a gap of ten minutes (no supervisor ran then).
    figures = farm_figures(
        [
            {
                "at": NOW,
                "functions": [],
                "history": [[60.0 * m, 10, 0, 0, 0, 0] for m in (*range(10), *range(20, 30))],
            }
        ]
    )

    succeeded, failed, totals = history_lines(figures.history, 80)

    # Then the gap shows as blanks between the bars, and the totals count the known.
    bars = succeeded.plain.split()[1]
    assert " " in succeeded.plain[10:40]
    assert bars.count("█") == 10
    assert "200 succeeded" in totals.plain
    assert failed.plain.startswith("failed")
