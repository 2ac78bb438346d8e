"""__delay_s and __retries: validated by queue(), honoured by the sync driver."""

from __future__ import annotations

import time
from typing import Any

import pytest
import queue_core_jobs as jobs

from fast_app.core.queue import JobStatus, JobValidationError, configure, queue
from fast_app.core.queue.retry import retry_delay_s


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    upper = [retry_delay_s(n, base_s=1, cap_s=10, uniform=lambda: 0.999999) for n in range(1, 7)]
    lower = [retry_delay_s(n, base_s=1, cap_s=10, uniform=lambda: 0.0) for n in range(1, 7)]

    assert upper == pytest.approx([1, 2, 4, 8, 10, 10], rel=1e-5)
    assert lower == pytest.approx([0.5, 1, 2, 4, 5, 5])


def test_backoff_is_jittered_within_the_upper_half_of_its_window() -> None:
    delays = {retry_delay_s(3, base_s=1, cap_s=100) for _ in range(200)}

    assert len(delays) > 150
    assert all(2 <= delay < 4 for delay in delays)


def test_backoff_never_overflows_for_huge_attempt_numbers() -> None:
    assert retry_delay_s(5000, base_s=1, cap_s=60, uniform=lambda: 0.5) == 45


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        retry_delay_s(0, base_s=1, cap_s=2)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"__delay_s": -1}, "zero or more", id="negative-delay"),
        pytest.param({"__delay_s": "soon"}, "number of seconds", id="text-delay"),
        pytest.param({"__retries": -1}, "between 0 and 100", id="negative-retries"),
        pytest.param({"__retries": 1.5}, "whole number", id="fractional-retries"),
        pytest.param({"__retries": True}, "whole number", id="bool-retries"),
    ],
)
async def test_invalid_delays_and_retries_are_refused(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(JobValidationError, match=message):
        await queue(jobs.record, **options)


async def test_sync_driver_waits_out_the_delay() -> None:
    started = time.monotonic()

    await queue(jobs.record, 1, __delay_s=0.2)

    assert time.monotonic() - started >= 0.2
    assert jobs.calls[0]["args"] == (1,)


async def test_sync_driver_retries_with_backoff_until_success() -> None:
    configure(retry_base_s=0.05, retry_cap_s=0.2)
    jobs.FLAKY_FAILURES["twice"] = 2

    job = await queue(jobs.flaky, "twice", __retries=3)

    assert job.outcome is not None and job.outcome.succeeded
    times = [call["at"] for call in jobs.calls]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.025  # first backoff: upper half of 0.05 s
    assert times[2] - times[1] >= 0.05  # second: upper half of 0.1 s


async def test_sync_driver_gives_up_after_the_last_retry(caplog: pytest.LogCaptureFixture) -> None:
    configure(retry_base_s=0.01, retry_cap_s=0.01)
    jobs.FLAKY_FAILURES["always"] = 100

    job = await queue(jobs.flaky, "always", __retries=2)

    assert len(jobs.calls) == 3
    assert job.outcome is not None
    assert job.outcome.status is JobStatus.FAILED
    assert caplog.text.count("retrying in") == 2
    assert "always failed" in caplog.text


async def test_without_retries_a_failure_is_final() -> None:
    jobs.FLAKY_FAILURES["once"] = 1

    job = await queue(jobs.flaky, "once")

    assert len(jobs.calls) == 1
    assert job.outcome is not None and job.outcome.status is JobStatus.FAILED


async def test_sync_driver_retries_a_soft_timeout_like_workers_do() -> None:
    configure(retry_base_s=0.001, retry_cap_s=0.001)

    job = await queue(jobs.sleep_then_record, 5, __soft_timeout_s=0.05, __retries=1)

    assert jobs.calls == [{"cancelled": True}, {"cancelled": True}]
    assert job.outcome is not None and job.outcome.status is JobStatus.SOFT_TIMEOUT
