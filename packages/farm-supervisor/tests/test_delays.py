"""How soon the next delayed job is due: a bound from the delay queues' counts."""

from __future__ import annotations

import pytest

from fast_app.core.queue.amqp import DELAY_LEVELS_MS, delay_level_ms
from fast_app.farm.delays import next_due_within_s


def test_the_next_job_is_due_within_twice_the_smallest_level_that_holds_one() -> None:
    assert next_due_within_s({100: 0, 409_600: 1, 819_200: 5}) == pytest.approx(819.2)
    assert next_due_within_s({100: 3, 409_600: 1}) == pytest.approx(0.2)


def test_nothing_waiting_or_only_in_the_top_level_bounds_nothing() -> None:
    assert next_due_within_s({}) is None
    assert next_due_within_s(dict.fromkeys(DELAY_LEVELS_MS, 0)) is None
    assert next_due_within_s({DELAY_LEVELS_MS[-1]: 4}) is None


@pytest.mark.parametrize("delay_s", [0.15, 1.0, 7.3, 600.0, 3600.0, 86_400.0])
def test_the_bound_holds_for_any_delay_below_the_top_level(delay_s: float) -> None:
    # Given a job delayed by ``delay_s``, in the level the publisher chooses for it
    level = delay_level_ms(delay_s)
    assert level is not None

    # Then the bound read from that level is never shorter than what it still waits
    bound = next_due_within_s({level: 1})
    assert bound is not None and delay_s < bound <= 2 * delay_s
