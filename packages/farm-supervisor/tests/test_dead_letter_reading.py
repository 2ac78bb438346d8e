"""Reading a dead letter the broker made itself: the reason is its latest death's."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from fast_app.core.queue import JobEnvelope, JobOptions, encode_envelope
from fast_app.farm._dead_letters_broker import read_dead_letter


@dataclass
class Delivered:
    """What read_dead_letter reads of a delivery (the fields of aio-pika's message)."""

    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)
    message_id: str | None = None
    type: str | None = None


def _job() -> bytes:
    return encode_envelope(
        JobEnvelope(
            format=1,
            id="a" * 32,
            function="app.jobs.send",
            args=[],
            kwargs={},
            context={},
            options=JobOptions(retries=2),
            enqueued_at=0.0,
            attempt=3,
        )
    )


def test_a_retried_job_dead_lettered_at_its_delivery_limit_says_delivery_limit() -> None:
    # Given a retried job: it expired out of a delay queue once, then hit the delivery limit.
    died = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
    headers = {
        "x-death": [
            {"reason": "delivery_limit", "queue": "jobs", "time": died, "count": 1},
            {"reason": "expired", "queue": "jobs.delay.800ms", "time": died, "count": 1},
        ],
        "x-first-death-reason": "expired",
    }

    letter, envelope = read_dead_letter(Delivered(_job(), headers))  # type: ignore[arg-type]

    assert envelope is not None and envelope.attempt == 3
    assert letter.reason == "delivery_limit"
    assert letter.failed_at is not None


def test_the_worker_s_own_reason_wins_over_the_broker_s() -> None:
    headers = {
        "x-fast-app-dead-reason": "exception",
        "x-death": [{"reason": "rejected", "queue": "jobs"}],
    }

    letter, _ = read_dead_letter(Delivered(_job(), headers))  # type: ignore[arg-type]

    assert letter.reason == "exception"
