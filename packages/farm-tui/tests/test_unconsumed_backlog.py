"""A served queue with a backlog and no consumer (a paused farm, a pool at 0): the
dashboard says how long its oldest job has waited at least, from what its supervisor
watched — and nothing when it cannot know."""

from __future__ import annotations

from typing import Any

from fast_app.farm_tui import FarmApp, StaticFarm
from fast_app.farm_tui.model import FarmModel
from fast_app.farm_tui.sample import sample_snapshot
from fast_app.farm_tui.screens.overview import queue_rows

NOW = 1_700_000_000.0


def _unconsumed(unconsumed_since: float | None, consumers: int = 0) -> dict[str, Any]:
    snapshot = sample_snapshot(NOW, workers=0)
    [entry] = snapshot["queues"]
    entry["figures"] |= {"ready": 300, "consumers": consumers}
    entry["read_at"] = NOW
    entry["unconsumed_since"] = unconsumed_since
    entry["wait_p50_s"] = entry["wait_max_s"] = None
    entry["waits_counted"] = 0
    return snapshot


def test_the_wait_column_says_the_oldest_job_waited_at_least_that_long() -> None:
    model = FarmModel()
    model.ingest(_unconsumed(NOW - 240))

    view = model.view(NOW)

    [queue] = view.queues
    assert queue.oldest_wait_at_least_s == 240
    [(_, cells)] = queue_rows(view, 130)
    assert cells[6][0] == "≥4m"


def test_without_a_watch_or_once_a_consumer_is_back_nothing_is_claimed() -> None:
    for snapshot in (_unconsumed(None), _unconsumed(NOW - 240, consumers=1)):
        model = FarmModel()
        model.ingest(snapshot)
        [queue] = model.view(NOW).queues
        assert queue.oldest_wait_at_least_s is None


async def test_the_status_bar_says_how_long_nothing_consumed_the_backlog() -> None:
    app = FarmApp(StaticFarm([_unconsumed(NOW - 240)]), clock=lambda: NOW)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        status = app.status_text(app.model.view(NOW)).plain
    assert status.startswith(" BACKLOG WITH NO CONSUMERS for ≥4m: 300 ready in jobs")
