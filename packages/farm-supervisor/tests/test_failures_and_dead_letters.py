"""Failures: retried with backoff, then dead-lettered with the reason; bad input never stops a worker."""

from __future__ import annotations

import datetime as dt
import json
import time

import aio_pika
import farm_jobs
import pytest
from farm_testkit import Farm, wait_until

from fast_app.core.queue import close as close_queue
from fast_app.core.queue import configure, queue
from fast_app.core.queue.amqp import headers as h
from fast_app.core.queue.amqp import sign

SIGNING_KEY = "s3cret-key-of-at-least-32-bytes-for-tests"  # ASYNC_FARM_SIGNING_KEY's minimum


async def _publish_raw(farm: Farm, body: bytes, **properties: object) -> None:
    connection = await aio_pika.connect(farm.url)
    try:
        channel = await connection.channel()
        message = aio_pika.Message(
            body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, **properties
        )  # type: ignore[arg-type]
        await channel.default_exchange.publish(message, routing_key=farm.queue_name)
    finally:
        await connection.close()


async def test_a_flaky_job_is_retried_with_backoff_until_it_succeeds(farm: Farm) -> None:
    await farm.start_worker(QUEUE_RETRY_BASE_S="0.4", QUEUE_RETRY_CAP_S="5")

    job = await queue(farm_jobs.flaky, str(farm.results), "flaky", 2, __retries=3)

    await wait_until(lambda: farm.tags("ran") == ["flaky"], message="the third attempt")
    attempts = [e["at"] for e in farm.events("attempt")]
    assert len(attempts) == 3
    assert attempts[1] - attempts[0] >= 0.2  # upper half of the 0.4 s window
    assert attempts[2] - attempts[1] >= 0.4  # upper half of the 0.8 s window
    assert f"job {job.id}" in farm.workers[0].log()
    assert "retry 1 of 3" in farm.workers[0].log()


async def test_a_job_failing_every_retry_lands_in_the_dead_letter_queue_with_its_error(
    farm: Farm,
) -> None:
    await farm.start_worker()

    job = await queue(farm_jobs.fail, str(farm.results), "doomed", __retries=2)

    [letter] = await farm.dead_letters(1)
    assert letter.message_id == job.id
    assert letter.headers[h.DEAD_REASON] == "failed"
    assert letter.headers[h.DEAD_ERROR_TYPE] == "builtins.ValueError"
    assert letter.headers[h.DEAD_ERROR] == "doomed always fails"
    assert "Traceback" in str(letter.headers[h.DEAD_TRACEBACK])
    assert letter.headers[h.DEAD_ATTEMPTS] == 3
    assert letter.headers[h.DEAD_WORKER]
    failed_at = dt.datetime.fromisoformat(str(letter.headers[h.DEAD_FAILED_AT]))
    assert abs(failed_at.timestamp() - time.time()) < 30
    assert farm.tags("ran") == ["doomed"] * 3
    body = json.loads(letter.body)
    assert body["id"] == job.id
    assert body["attempt"] == 3


async def test_a_soft_timeout_cancels_the_job_then_it_is_dead_lettered(farm: Farm) -> None:
    await farm.start_worker()

    await queue(farm_jobs.sleep_then_record, str(farm.results), "slow", 30, __soft_timeout_s=0.3)

    [letter] = await farm.dead_letters(1)
    assert letter.headers[h.DEAD_REASON] == "soft_timeout"
    assert farm.tags("cancelled") == ["slow"]
    assert "passed its soft timeout of 0.3s" in farm.workers[0].log()


@pytest.mark.parametrize(
    ("body", "properties", "reason", "error"),
    [
        pytest.param(b"\x00\xffnot json", {}, "invalid", "not a job envelope", id="garbage"),
        pytest.param(
            b'{"format": 7}', {}, "invalid", "unknown job format version 7", id="future-format"
        ),
        pytest.param(b"[1, 2]", {}, "invalid", "not a job envelope", id="wrong-shape"),
    ],
)
async def test_messages_that_are_not_jobs_are_dead_lettered_and_the_worker_goes_on(
    farm: Farm, body: bytes, properties: dict[str, object], reason: str, error: str
) -> None:
    await farm.start_worker()

    await _publish_raw(farm, body, message_id="raw-1", **properties)
    await queue(farm_jobs.record, str(farm.results), "after")

    [letter] = await farm.dead_letters(1)
    assert letter.body == body
    assert letter.headers[h.DEAD_REASON] == reason
    assert error in str(letter.headers[h.DEAD_ERROR])
    await wait_until(lambda: farm.tags("ran") == ["after"], message="the next job")


def _envelope_for(function: str, args: list[object]) -> bytes:
    document = {
        "format": 1,
        "id": "f" * 32,
        "function": function,
        "args": args,
        "kwargs": {},
        "context": {},
        "options": {},
        "enqueued_at": time.time(),
        "attempt": 1,
    }
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("function", "args", "reason", "error"),
    [
        pytest.param(
            "os.system", ["touch /tmp/owned"], "not_allowed", "standard library", id="stdlib"
        ),
        pytest.param("builtins.eval", ["1"], "not_allowed", "standard library", id="builtins"),
        pytest.param(
            "aio_pika.connect", [], "not_allowed", "FARM_ALLOWED_MODULES", id="installed-package"
        ),
        pytest.param(
            "farm_jobs.does_not_exist", [], "not_allowed", "has no function", id="unknown-function"
        ),
        pytest.param(
            "farm_jobs.json",
            [],
            "not_allowed",
            "has no function 'json'|not a function",
            id="module-attribute",
        ),
        pytest.param(
            "farm_jobs.read_events",
            [1, 2, 3],
            "invalid",
            "arguments do not match",
            id="bad-arguments",
        ),
    ],
)
async def test_jobs_that_cannot_run_are_dead_lettered_with_the_reason(
    farm: Farm, function: str, args: list[object], reason: str, error: str
) -> None:
    await farm.start_worker()

    await _publish_raw(farm, _envelope_for(function, args), message_id="f" * 32)
    await queue(farm_jobs.record, str(farm.results), "after")

    [letter] = await farm.dead_letters(1)
    assert letter.headers[h.DEAD_REASON] == reason
    assert any(part in str(letter.headers[h.DEAD_ERROR]) for part in error.split("|"))
    await wait_until(lambda: farm.tags("ran") == ["after"], message="the next job")


async def test_with_a_signing_key_unsigned_and_badly_signed_jobs_are_dead_lettered(
    farm: Farm, rabbitmq_url: str
) -> None:
    await farm.start_worker(ASYNC_FARM_SIGNING_KEY=SIGNING_KEY)
    body = _envelope_for("farm_jobs.record", [str(farm.results), "forged"])

    await _publish_raw(farm, body, message_id="unsigned")
    await _publish_raw(
        farm, body, message_id="wrong", headers={h.SIGNATURE: sign(body, b"other-key")}
    )
    configure(
        driver="async_farm",
        rabbitmq_url=rabbitmq_url,
        name=farm.queue_name,
        signing_key=SIGNING_KEY,
    )
    await queue(farm_jobs.record, str(farm.results), "signed")

    letters = await farm.dead_letters(2)
    assert {letter.message_id for letter in letters} == {"unsigned", "wrong"}
    assert {letter.headers[h.DEAD_REASON] for letter in letters} == {"bad_signature"}
    await wait_until(lambda: farm.tags("ran") == ["signed"], message="the signed job")
    await close_queue()
    assert SIGNING_KEY not in farm.workers[0].log()
