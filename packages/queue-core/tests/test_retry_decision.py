"""decide_after_run / decide_after_failure: the one retry rule, without processes or brokers."""

from __future__ import annotations

import pytest

from fast_app.core.queue.envelope import FORMAT_VERSION, JobEnvelope, JobOptions
from fast_app.core.queue.handle import JobStatus
from fast_app.core.queue.retry import (
    DONE,
    Bury,
    Retry,
    decide_after_failure,
    decide_after_run,
)


def _never_random() -> float:
    raise AssertionError("no backoff is drawn for this decision")


def _envelope(*, attempt: int = 1, retries: int = 0) -> JobEnvelope:
    return JobEnvelope(
        format=FORMAT_VERSION,
        id="0123456789abcdef0123456789abcdef",
        function="jobs.send_mail",
        args=[],
        kwargs={},
        context={},
        options=JobOptions(retries=retries),
        enqueued_at=1_732_812_345.0,
        attempt=attempt,
    )


def test_a_success_is_done_whatever_the_retries() -> None:
    decision = decide_after_run(
        JobStatus.SUCCEEDED,
        _envelope(attempt=2, retries=5),
        base_s=1,
        cap_s=10,
        uniform=_never_random,
    )

    assert decision is DONE


def test_a_failure_with_retries_left_is_retried_after_the_backoff() -> None:
    decision = decide_after_run(
        JobStatus.FAILED, _envelope(attempt=1, retries=2), base_s=1, cap_s=10, uniform=lambda: 0.5
    )

    assert decision == Retry(attempt=2, delay_s=0.75, reason="failed")


def test_the_last_allowed_attempt_is_still_retried() -> None:
    decision = decide_after_run(
        JobStatus.FAILED, _envelope(attempt=3, retries=3), base_s=1, cap_s=100, uniform=lambda: 0.0
    )

    assert decision == Retry(attempt=4, delay_s=2.0, reason="failed")


@pytest.mark.parametrize(
    ("attempt", "retries"),
    [
        pytest.param(1, 0, id="no-retries"),
        pytest.param(4, 3, id="retries-used-up"),
        pytest.param(9, 3, id="past-the-retries"),
    ],
)
def test_a_failure_with_no_retries_left_is_dead_lettered(attempt: int, retries: int) -> None:
    decision = decide_after_run(
        JobStatus.FAILED,
        _envelope(attempt=attempt, retries=retries),
        base_s=1,
        cap_s=10,
        uniform=_never_random,
    )

    assert decision == Bury(reason="failed", attempts=attempt)


def test_a_soft_timeout_is_retried_like_a_failure() -> None:
    retried = decide_after_run(
        JobStatus.SOFT_TIMEOUT, _envelope(retries=1), base_s=2, cap_s=10, uniform=lambda: 0.0
    )
    buried = decide_after_run(
        JobStatus.SOFT_TIMEOUT,
        _envelope(attempt=2, retries=1),
        base_s=2,
        cap_s=10,
        uniform=_never_random,
    )

    assert retried == Retry(attempt=2, delay_s=1.0, reason="soft_timeout")
    assert buried == Bury(reason="soft_timeout", attempts=2)


@pytest.mark.parametrize("attempt", [1, 3])
def test_an_invalid_job_is_never_retried(attempt: int) -> None:
    decision = decide_after_run(
        JobStatus.INVALID,
        _envelope(attempt=attempt, retries=10),
        base_s=1,
        cap_s=10,
        uniform=_never_random,
    )

    assert decision == Bury(reason="invalid", attempts=attempt)


def test_the_reasons_are_plain_strings() -> None:
    # They go into AMQP headers and signatures: not enum members.
    decision = decide_after_run(
        JobStatus.FAILED, _envelope(), base_s=1, cap_s=10, uniform=_never_random
    )

    assert isinstance(decision, Bury)
    assert type(decision.reason) is str


def test_a_hard_timeout_reason_from_the_worker_is_retried_then_dead_lettered() -> None:
    retried = decide_after_failure(
        "hard_timeout", _envelope(retries=1), base_s=1, cap_s=10, uniform=lambda: 0.0
    )
    buried = decide_after_failure(
        "hard_timeout",
        _envelope(attempt=2, retries=1),
        base_s=1,
        cap_s=10,
        uniform=_never_random,
    )

    assert retried == Retry(attempt=2, delay_s=0.5, reason="hard_timeout")
    assert buried == Bury(reason="hard_timeout", attempts=2)


def test_attempts_are_numbered_from_the_failed_run() -> None:
    attempts = [
        decide_after_run(
            JobStatus.FAILED,
            _envelope(attempt=attempt, retries=5),
            base_s=1,
            cap_s=100,
            uniform=lambda: 0.0,
        )
        for attempt in range(1, 7)
    ]

    assert [getattr(decision, "attempt", None) for decision in attempts] == [2, 3, 4, 5, 6, None]
    assert attempts[-1] == Bury(reason="failed", attempts=6)


def test_the_backoff_doubles_then_stays_at_the_cap() -> None:
    delays = [
        decide_after_run(
            JobStatus.FAILED,
            _envelope(attempt=attempt, retries=100),
            base_s=1,
            cap_s=10,
            uniform=lambda: 0.999999,
        )
        for attempt in (1, 2, 3, 4, 5, 6, 80)
    ]

    assert [d.delay_s for d in delays if isinstance(d, Retry)] == pytest.approx(
        [1, 2, 4, 8, 10, 10, 10], rel=1e-5
    )


def test_the_jitter_comes_from_the_injected_source() -> None:
    draws = iter([0.0, 0.25, 0.999])
    delays = [
        decide_after_failure(
            "failed",
            _envelope(attempt=3, retries=5),
            base_s=1,
            cap_s=100,
            uniform=lambda: next(draws),
        )
        for _ in range(3)
    ]

    assert [d.delay_s for d in delays if isinstance(d, Retry)] == pytest.approx([2.0, 2.5, 3.998])
