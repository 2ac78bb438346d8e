"""The pure rules under the dashboard: limits, rates, formats, staleness."""

from __future__ import annotations

import pytest

from fast_app.farm_tui import Limits, adjust_limits
from fast_app.farm_tui._format import (
    age,
    coarse_age,
    count,
    deadline_bar,
    figure,
    per_second,
    seconds,
    shorten,
    sparkline,
    tail,
    wait,
)
from fast_app.farm_tui.limits import LIMIT_CEILING, PendingLimits
from fast_app.farm_tui.rates import RateHistory, SecondSeries, merged_rates
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


def test_pending_requests_of_a_queue_and_of_the_supervisor_are_kept_apart() -> None:
    pending = PendingLimits()
    pending.request("sup", Limits(0, 9), now=100.0, queue="reports")

    assert pending.is_pending("sup", queue="reports")
    assert not pending.is_pending("sup")
    assert pending.effective("sup", Limits(1, 4), now=101.0) == Limits(1, 4)
    assert pending.effective("sup", Limits(0, 8), now=101.0, queue="reports") == Limits(0, 9)


def test_merged_rates_add_completions_and_count_the_shared_backlog_growth_once() -> None:
    # Two supervisors each see the backlog grow by 100/s and complete 50/s themselves.
    assert merged_rates([(150.0, 50.0), (150.0, 50.0)]) == (200.0, 100.0)
    assert merged_rates([]) == (0.0, 0.0)
    assert merged_rates([(0.0, 10.0), (30.0, 10.0)]) == (25.0, 20.0)  # growths -10, +20


def test_rate_history_fills_gaps_with_the_previous_point_and_forgets_old_ones() -> None:
    history = RateHistory(window_s=10, smoothing=2)
    history.record(100.2, 10.0, 5.0)
    history.record(100.9, 12.0, 6.0)  # same second: replaces
    history.record(103.0, 20.0, 8.0)
    history.record(101.0, 99.0, 99.0)  # late: ignored

    enqueue, completion = history.series(now=104.5, points=6)

    assert enqueue == [None, 12.0, 12.0, 12.0, 20.0, 20.0]  # unknown before the first
    assert completion == [None, 6.0, 6.0, 6.0, 8.0, 8.0]
    assert history.current() == (16.0, 7.0)
    history.record(120.0, 1.0, 1.0)  # the earlier points are out of the window now
    assert history.series(now=120.0, points=3) == ([None, None, 1.0], [None, None, 1.0])


def test_rates_stop_over_an_outage_instead_of_drawing_a_plateau() -> None:
    # Given a farm enqueuing 413/s, then no snapshot for 20 s (the broker is down)
    history = RateHistory()
    for second in range(100, 110):
        history.record(second, 413.0, 400.0)

    # When the rates are read with 3 s of tolerated gap (3 heartbeat intervals of 1 s)
    enqueue, _ = history.series(now=129.5, points=25, max_gap_s=3.0)

    # Then a heartbeat's gap is bridged, but the outage's seconds are unknown, not 413/s
    assert enqueue[:5] == [413.0] * 5  # 105..109
    assert enqueue[5:8] == [413.0] * 3  # 110..112: within 3 s of the last point
    assert enqueue[8:] == [None] * 17  # 113..129
    assert history.current(129.5, max_gap_s=3.0) is None
    assert history.current(111.0, max_gap_s=3.0) == (413.0, 400.0)


def test_a_second_series_is_unknown_before_its_first_point_and_repeats_through_gaps() -> None:
    series = SecondSeries(window_s=10)
    series.record(100.5, 3.0)
    series.record(102.0, None)  # not read then: unknown, not 0
    series.record(103.0, 7.0)
    series.record(101.0, 99.0)  # late: ignored

    assert series.series(now=104.9, points=6) == [None, 3.0, 3.0, None, 7.0, 7.0]
    series.record(120.0, 1.0)
    assert series.series(now=120.0, points=2) == [None, 1.0]


def test_a_sparkline_scales_from_zero_to_its_peak_and_says_the_peak() -> None:
    # Given a 300-job burst in a queue that otherwise holds 0 to 2 jobs.
    burst = [0.0, 1.0, 2.0, 300.0, 150.0, 0.0]

    line, peak = sparkline(burst, 6)

    # Then the burst is the full bar, the few jobs still show above zero, and the peak
    # says what the full bar is.
    assert (line, peak) == ("▁▂▂█▅▁", 300.0)
    assert sparkline([300.0] * 4, 4) == ("████", 300.0)  # flat at its height, not ▁
    assert sparkline([0.0] * 3, 3) == ("▁▁▁", 0.0)


def test_a_sparkline_squeezes_by_the_largest_value_leaves_unknowns_blank_pads_left() -> None:
    values: list[float | None] = [0.0] * 50 + [300.0] + [0.0] * 49

    line, peak = sparkline(values, 10)

    assert line == "▁▁▁▁▁█▁▁▁▁"  # one second of 300 survives squeezing 100 points into 10
    assert peak == 300.0
    assert sparkline([None, None, 4.0, 2.0], 4) == ("  █▅", 4.0)
    assert sparkline([5.0], 3) == ("  █", 5.0)  # newest on the right
    assert sparkline([None, None], 2) == ("  ", None)
    assert sparkline([1.0], 0) == ("", None)


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "-"), (0, "0"), (300, "300"), (1840, "1.8k"), (12_345, "12k"), (2.5e6, "2.5M")],
)
def test_short_counts(value: float | None, text: str) -> None:
    assert count(value) == text


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
    assert tail("app.sync.pull", 20) == "app.sync.pull"
    assert tail("app.billing.charge_order", 22) == "…billing.charge_order"  # the dot goes too
    assert tail("app.mail.send_digest", 16) == "…ail.send_digest"
    assert tail("web-1-4242-w3", 4) == "…-w3"
    assert figure(1840) == "1,840"
    assert figure(0) == "0"
    assert figure(None) == "-"
    assert wait(0.31, 1.1) == "0.3s/1.1s"
    assert wait(0.31, 1.1, approximate=True) == "≈0.3s/1.1s"  # several supervisors' medians
    assert wait(None, None) == "-"


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
