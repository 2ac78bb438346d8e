"""Deliveries waiting inside workers for a slot (``FARM_PREFETCH`` above
``FARM_CONCURRENCY``): counted per worker, listed apart from the running jobs, never
with a run time."""

from __future__ import annotations

import json
from typing import Any

from fast_app.farm.messages.snapshots import decode_snapshot
from fast_app.farm_tui import FarmApp, StaticFarm
from fast_app.farm_tui.model import FarmModel
from fast_app.farm_tui.sample import sample_snapshot
from fast_app.farm_tui.screens._job_tables import WAITING_LABEL, running_layout
from fast_app.farm_tui.screens.jobs import running_title, waiting_details
from fast_app.farm_tui.screens.overview import worker_rows

NOW = 1_700_000_000.0
HOSTILE = "\x1b]0;owned\x07\u202e[bold red]markup[/]"


def cell_texts(row: tuple[str, tuple[tuple[str, str], ...]]) -> list[str]:
    return [text for text, _ in row[1]]


def test_the_sample_with_waiting_deliveries_is_what_a_supervisor_sends() -> None:
    decode_snapshot(json.dumps(sample_snapshot(NOW, waiting=(30, 20, 10))).encode())


def test_each_worker_shows_the_deliveries_it_holds_waiting() -> None:
    # Given a supervisor whose third worker holds 12 deliveries waiting for a slot
    model = FarmModel()
    model.ingest(sample_snapshot(NOW, workers=3, waiting=(0, 0, 12)))

    # When the workers table is drawn
    view = model.view(NOW)
    rows = {key: cell_texts((key, cells)) for key, cells in worker_rows(view)}

    # Then each worker's Waiting column says how many it holds, apart from its jobs
    assert [rows[f"web-1-4242-w{n}"][4:6] for n in (1, 2, 3)] == [
        ["2", "0"],
        ["2", "0"],
        ["2", "12"],
    ]
    assert (view.running_total, view.waiting_total) == (6, 12)


def test_a_snapshot_that_does_not_say_leaves_the_waiting_counts_unknown() -> None:
    # Given a snapshot without the waiting fields at all
    snapshot = sample_snapshot(NOW, workers=2)
    del snapshot["waiting"], snapshot["waiting_jobs"]
    model = FarmModel()
    model.ingest(snapshot)

    # When it is shown
    view = model.view(NOW)

    # Then the counts are unknown (-), not 0, and nothing is listed
    assert [cell_texts(row)[5] for row in worker_rows(view)] == ["-", "-"]
    assert (view.waiting_total, view.waiting) == (None, ())
    assert running_title(view) == "Running: 4"


def test_waiting_jobs_follow_the_running_ones_marked_waiting_without_a_run_time() -> None:
    # Given a worker holding 3 deliveries waiting and another holding 1
    model = FarmModel()
    model.ingest(sample_snapshot(NOW, workers=2, waiting=(3, 1)))
    view = model.view(NOW)

    # When the Running table is laid out
    _, rows = running_layout(view, NOW, 130)

    # Then the 4 running jobs come first, then the 4 waiting ones in line order, each
    # marked waiting in place of a run time, with no attempt and no deadline bar
    running, waiting = rows[:4], rows[4:]
    assert [cell_texts(row)[4] for row in running] == ["6.5s", "5.5s", "3.0s", "2.0s"]
    assert [row[1][2][0] for row in waiting] == [
        "web-1-4242-w1",
        "web-1-4242-w2",
        "web-1-4242-w1",
        "web-1-4242-w1",
    ]
    for row in waiting:
        assert cell_texts(row)[3:] == ["-", WAITING_LABEL, "", ""]
    assert len({key for key, _ in rows}) == 8
    assert running_title(view) == "Running: 4 · waiting for a slot: 4"


def test_the_title_says_when_a_snapshot_lists_only_some_of_them() -> None:
    model = FarmModel()
    model.ingest(sample_snapshot(NOW, workers=3, waiting=(30, 20, 10)))

    view = model.view(NOW)

    assert (len(view.waiting), view.waiting_total) == (40, 60)
    assert running_title(view) == "Running: 6 · waiting for a slot: 60 (40 listed)"


def test_a_forged_waiting_job_is_shown_escaped() -> None:
    # Given a snapshot (not decoded strictly) whose waiting job carries escapes and markup
    snapshot = sample_snapshot(NOW, workers=1, waiting=(1,))
    snapshot["waiting_jobs"] = [
        {"id": "a" + HOSTILE, "function": "app." + HOSTILE, "worker_id": "web-1-4242-w1"}
    ]
    model = FarmModel()
    model.ingest(snapshot)
    view = model.view(NOW)

    # When its row and its details are drawn
    _, rows = running_layout(view, NOW, 200)
    [job] = view.waiting
    shown = [*cell_texts(rows[-1]), waiting_details(job).plain]

    # Then no control character reaches the terminal, and the markup stays text
    for text in shown:
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "[bold red]markup[/]" in shown[-1]


def test_a_delivery_naming_no_function_reads_unknown() -> None:
    snapshot = sample_snapshot(NOW, workers=1, waiting=(1,))
    snapshot["waiting_jobs"][0]["function"] = None
    model = FarmModel()
    model.ingest(snapshot)

    [job] = model.view(NOW).waiting

    assert job.function is None
    assert "its delivery names no function" in waiting_details(job).plain


async def test_the_status_bar_adds_the_waiting_deliveries_up_only_when_some_wait() -> None:
    def status(snapshot: dict[str, Any]) -> str:
        app = FarmApp(StaticFarm([snapshot]), clock=lambda: NOW)
        app.model.ingest(snapshot)
        return app.status_text(app.model.view(NOW)).plain

    assert "6 running · 60 waiting" in status(sample_snapshot(NOW, waiting=(30, 20, 10)))
    assert "waiting" not in status(sample_snapshot(NOW))
