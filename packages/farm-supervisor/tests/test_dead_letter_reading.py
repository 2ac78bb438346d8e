"""Reading a dead letter: whose word its headers are, and what a signing key proves."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pytest

from fast_app.core.queue.amqp import headers as h
from fast_app.core.queue.worker_side import JobEnvelope, JobOptions, encode_envelope
from fast_app.farm.dead_letters import DeadLetter
from fast_app.farm.dead_letters._broker import read_dead_letter


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


def read(
    delivered: Delivered, signing_key: bytes | None = None
) -> tuple[DeadLetter, JobEnvelope | None]:
    return read_dead_letter(delivered, jobs_queue="jobs", signing_key=signing_key)  # type: ignore[arg-type]


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

    letter, envelope = read(Delivered(_job(), headers))

    assert envelope is not None and envelope.attempt == 3
    assert letter.reason == "delivery_limit"
    assert letter.failed_at is not None


def test_the_worker_s_own_reason_wins_over_a_delay_queue_s_death() -> None:
    # An older worker copied every header of the job, its passage through a delay queue too.
    headers = {
        "x-fast-app-dead-reason": "exception",
        "x-death": [{"reason": "expired", "queue": "jobs.delay.800ms"}],
    }

    letter, _ = read(Delivered(_job(), headers))

    assert letter.reason == "exception"
    assert not letter.by_broker


# -- whose word the headers are ----------------------------------------------------------

KEY = b"dead-letter-reading-key-0123456789abcdef"  # signing keys have 32 bytes or more
FORGED = {
    "x-fast-app-dead-reason": "failed",
    "x-fast-app-error-type": "builtins.ValueError",
    "x-fast-app-error": "forged error",
    "x-fast-app-traceback": "Traceback (most recent call last):\n  forged\n",
    "x-fast-app-attempts": 7,
    "x-fast-app-worker": "forged-worker",
    "x-fast-app-failed-at": "2020-01-01T00:00:00.000+00:00",
    "x-fast-app-signed-job": 1,
    "x-fast-app-original-headers": "forged summary",
}


def worker_headers(
    body: bytes,
    *,
    reason: str = "failed",
    attempts: int | None = 3,
    signed_job: bool = True,
    key: bytes = KEY,
) -> dict[str, Any]:
    """Headers of a dead letter as a worker holding ``key`` writes them."""
    headers: dict[str, Any] = {
        "x-fast-app-dead-reason": reason,
        "x-fast-app-error-type": "builtins.ValueError",
        "x-fast-app-error": "boom",
        "x-fast-app-traceback": "Traceback (most recent call last):\n  boom\n",
        "x-fast-app-worker": "host-1",
        "x-fast-app-failed-at": "2026-01-02T03:04:05.678+00:00",
        "x-fast-app-dead-signature": h.dead_letter_signature(
            body, reason=reason, attempts=attempts, signed_job=signed_job, key=key
        ),
    }
    if attempts is not None:
        headers["x-fast-app-attempts"] = attempts
    if signed_job:
        headers["x-fast-app-signed-job"] = 1
    return headers


def test_headers_of_a_job_the_broker_dead_lettered_from_the_jobs_queue_are_ignored() -> None:
    # Given a job published with dead-letter headers of its own, then rejected from the
    # jobs queue: the broker copied them along, no worker wrote them.
    died = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
    headers = {**FORGED, "x-death": [{"reason": "rejected", "queue": "jobs", "time": died}]}

    letter, envelope = read(Delivered(_job(), headers), KEY)

    assert envelope is not None
    assert letter.by_broker
    assert letter.reason == "rejected"
    assert letter.failed_at == died
    assert letter.error is letter.error_type is letter.traceback is None
    assert letter.attempts is letter.worker is letter.original_headers is None
    assert letter.verified is False
    assert letter.job_signed is False  # its signed-job header is its own word


def test_a_worker_s_dead_letter_is_verified_by_its_dead_letter_signature() -> None:
    body = _job()

    letter, _ = read(Delivered(body, worker_headers(body)), KEY)

    assert letter.verified is True
    assert letter.job_signed is True  # the worker verified the job's signature
    assert (letter.reason, letter.attempts, letter.error) == ("failed", 3, "boom")
    assert not letter.by_broker


def test_without_a_signing_key_nothing_is_verified() -> None:
    body = _job()

    letter, _ = read(Delivered(body, worker_headers(body)), None)

    assert letter.verified is None and letter.job_signed is None
    assert letter.reason == "failed"


@pytest.mark.parametrize(
    "change",
    [
        {"x-fast-app-dead-reason": "soft_timeout"},
        {"x-fast-app-attempts": 1},
        {"x-fast-app-signed-job": 0},
        {"x-fast-app-dead-signature": "0" * 64},
        {"x-fast-app-dead-signature": None},
        {"x-fast-app-dead-signature": 12},
        {"x-fast-app-dead-signature": ["a", {"b": 1}]},
        {"x-fast-app-dead-signature": b"\xff\xfe"},
        {"x-fast-app-dead-signature": "é" * 64},
        {"x-fast-app-dead-reason": b"failed"},
        {"x-fast-app-attempts": "3"},
    ],
)
def test_a_dead_letter_changed_after_a_worker_signed_it_is_not_verified(
    change: dict[str, Any],
) -> None:
    body = _job()
    headers = {**worker_headers(body), **change}

    letter, _ = read(Delivered(body, headers), KEY)

    assert letter.verified is False
    assert letter.job_signed is False


def test_a_dead_letter_signed_with_another_key_or_for_another_body_is_not_verified() -> None:
    body = _job()
    other_key = worker_headers(body, key=b"another-key-of-at-least-32-bytes-000")
    other_body = worker_headers(body + b" ")

    assert read(Delivered(body, other_key), KEY)[0].verified is False
    assert read(Delivered(body, other_body), KEY)[0].verified is False


def test_the_job_s_own_signature_makes_it_signed_whoever_wrote_the_dead_letter() -> None:
    body = _job()
    headers = {**FORGED, h.SIGNATURE: h.sign(body, KEY)}

    letter, _ = read(Delivered(body, headers), KEY)

    assert letter.verified is False
    assert letter.job_signed is True


def test_a_worker_that_did_not_verify_the_job_leaves_it_unsigned() -> None:
    body = _job()

    letter, _ = read(Delivered(body, worker_headers(body, signed_job=False)), KEY)

    assert letter.verified is True
    assert letter.job_signed is False


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b'{"format": 1, "id": "x", "function": "f", "args": ' + b"[" * 100_000,
        b'{"a": ' * 100_000,
        b"\xff\xfe\x00 not text",
    ],
)
def test_a_body_nested_too_deep_or_not_text_is_a_dead_letter_without_a_job(body: bytes) -> None:
    letter, envelope = read(Delivered(body, {"x-fast-app-dead-reason": "invalid"}, "deep"), KEY)

    assert envelope is None
    assert letter.job_id == "deep"
    assert letter.args is None
    assert letter.reason == "invalid"


def test_headers_of_any_type_are_read_without_raising() -> None:
    odd: list[Any] = [
        None,
        1.5,
        True,
        b"\xff",
        ["x", [1]],
        {"a": {"b": b"\x00"}},
        dt.datetime(2026, 1, 1),
    ]
    for value in odd:
        headers = dict.fromkeys([*FORGED, "x-death", h.SIGNATURE, h.DEAD_SIGNATURE], value)

        letter, _ = read(Delivered(_job(), headers), KEY)

        assert letter.verified is False
