"""The pure rules under the dashboard: limits, rates, formats, staleness."""

from __future__ import annotations

import pytest

from fast_app.farm_tui import Limits, adjust_limits
from fast_app.farm_tui._format import (
    age,
    coarse_age,
    deadline_bar,
    per_second,
    seconds,
    shorten,
)
from fast_app.farm_tui.limits import LIMIT_CEILING, PendingLimits
from fast_app.farm_tui.rates import RateHistory, farm_rates
from fast_app.farm_tui.view import is_stale


@pytest.mark.parametrize(
    ("before", "min_change", "max_change", "after"),
    [
        (Limits(1, 4), 1, 0, Limits(2, 4)),
        (Limits(1, 4), 0, -1, Limits(1, 3)),
        (Limits(4, 4), 1, 0, Limits(5, 5)),  # min past max carries max up
        (Limits(3, 3), 0, -1, Limits(2, 2)),  # max under min carries min down
        (Limits(0, 4), -1, 0, Limits(0, 4)),  # never below 0
        (Limits(0, 1), 0, -1, Limits(0, 1)),  # max stays at least 1
        (Limits(1, 1), 0, -1, Limits(1, 1)),
        (Limits(LIMIT_CEILING, LIMIT_CEILING), 1, 1, Limits(LIMIT_CEILING, LIMIT_CEILING)),
        (Limits(5, 2), 0, 0, Limits(2, 2)),  # nonsense in: valid out
    ],
)
def test_adjusted_limits_stay_valid(
    before: Limits, min_change: int, max_change: int, after: Limits
) -> None:
    assert adjust_limits(before, min_change=min_change, max_change=max_change) == after


def test_a_pending_request_counts_until_a_snapshot_shows_it_or_it_expires() -> None:
    pending = PendingLimits(pending_for_s=10)
    reported = Limits(1, 4)

    pending.request("sup", Limits(2, 4), now=100.0)

    assert pending.effective("sup", reported, now=101.0) == Limits(2, 4)
    assert pending.is_pending("sup")
    assert pending.effective("sup", Limits(2, 4), now=102.0) == Limits(2, 4)
    assert not pending.is_pending("sup")  # shown: forgotten
    pending.request("sup", Limits(9, 9), now=200.0)
    assert pending.effective("sup", reported, now=211.0) == reported  # refused, expired


def test_farm_rates_add_completions_and_count_the_shared_backlog_growth_once() -> None:
    # Two supervisors each see the backlog grow by 100/s and complete 50/s themselves.
    first = {"enqueue_rate": 150.0, "completion_rate": 50.0}
    second = {"enqueue_rate": 150.0, "completion_rate": 50.0}

    assert farm_rates([first, second]) == (200.0, 100.0)
    assert farm_rates([]) == (0.0, 0.0)
    assert farm_rates([{"enqueue_rate": "odd", "completion_rate": None}]) == (0.0, 0.0)


def test_rate_history_fills_gaps_with_the_previous_point_and_forgets_old_ones() -> None:
    history = RateHistory(window_s=10, smoothing=2)
    history.record(100.2, 10.0, 5.0)
    history.record(100.9, 12.0, 6.0)  # same second: replaces
    history.record(103.0, 20.0, 8.0)
    history.record(101.0, 99.0, 99.0)  # late: ignored

    enqueue, completion = history.series(now=104.5, points=6)

    assert enqueue == [0.0, 12.0, 12.0, 12.0, 20.0, 20.0]
    assert completion == [0.0, 6.0, 6.0, 6.0, 8.0, 8.0]
    assert history.current() == (16.0, 7.0)
    history.record(120.0, 1.0, 1.0)  # the earlier points are out of the window now
    assert history.series(now=120.0, points=3) == ([0.0, 0.0, 1.0], [0.0, 0.0, 1.0])


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "-"), (-1, "0.0s"), (0.42, "0.4s"), (42, "42s"), (600, "10m"), (9000, "2.5h")],
)
def test_ages(value: float | None, text: str) -> None:
    assert age(value) == text


def test_other_formats() -> None:
    assert coarse_age(0.4) == "0s"
    assert coarse_age(7.6) == "8s"
    assert coarse_age(600) == "10m"
    assert seconds(0.0123) == "12ms"
    assert seconds(1.5) == "1.50s"
    assert per_second(3.14) == "3.1/s"
    assert per_second(12_345) == "12.3k/s"
    assert shorten("a\nb   c", 10) == "a b c"
    assert shorten("abcdefghij", 5) == "abcd…"


def test_deadline_bars_turn_yellow_then_red() -> None:
    assert deadline_bar(2, 10, width=10) == ("██░░░░░░░░ 2.0/10s", "green")
    assert deadline_bar(8, 10, width=10) == ("████████░░ 8.0/10s", "yellow")
    assert deadline_bar(12, 10, width=10) == ("██████████ 12.0/10s", "bold red")
    assert deadline_bar(3, None) == ("-", "dim")


def test_a_heartbeat_is_stale_past_three_intervals_and_a_first_one_15s_later() -> None:
    assert not is_stale(2.9, 1.0)
    assert is_stale(3.1, 1.0)
    assert is_stale(0.7, 0.2)
    assert not is_stale(17.9, 1.0, starting=True)
    assert is_stale(18.1, 1.0, starting=True)
