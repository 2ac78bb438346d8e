"""fast-app dlq against hostile dead letters: it never crashes, launders or lets text drive
the terminal. Each dead letter here is what anyone allowed to publish could put there."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from typing import Any

import aio_pika
import farm_jobs
import pytest
from farm_testkit import Farm, wait_until

from fast_app.core.queue import configure, queue
from fast_app.core.queue.amqp import Topology, sign
from fast_app.core.queue.amqp import headers as h
from fast_app.core.queue.settings import get_settings
from fast_app.core.queue.worker_side import JobEnvelope, JobOptions, encode_envelope
from fast_app.farm.cli.dlq import add_dlq_parser, run_dlq
from fast_app.farm.dead_letters import (
    AmbiguousJobIdError,
    find_dead_letter,
    list_dead_letters,
    requeue_dead_letters,
)
from fast_app.farm.dead_letters import _broker as _dead_letters_broker

KEY = "dlq-hardening-signing-key-0123456789abcdef"  # signing keys have 32 bytes or more
NEVER_SIGNED = (
    "its job was never signed with ASYNC_FARM_SIGNING_KEY: requeuing would sign it; "
    "--force to requeue anyway"
)
NOT_VERIFIED = (
    "Verified:   no — not written by a worker holding the signing key; reason, attempts "
    "and traceback are what the message says"
)
DEEP_JOB = b'{"format": 1, "id": "x", "function": "f", "args": ' + b"[" * 100_000
FORGED_HEADERS: dict[str, aio_pika.abc.FieldValue] = {
    h.DEAD_REASON: "failed",
    h.DEAD_ERROR_TYPE: "builtins.ValueError",
    h.DEAD_ERROR: "forged error",
    h.DEAD_TRACEBACK: "Traceback (most recent call last):\n  forged frame\n",
    h.DEAD_ATTEMPTS: 9,
    h.DEAD_WORKER: "forged-worker",
    h.DEAD_FAILED_AT: "2026-01-02T03:04:05.678+00:00",
}


# -- helpers ------------------------------------------------------------------------


async def dlq(*argv: str) -> int:
    """Run ``fast-app dlq ARGV`` as the CLI would (in a thread: it runs its own loop)."""
    parser = argparse.ArgumentParser(prog="fast-app")
    add_dlq_parser(parser.add_subparsers(dest="command", required=True))
    options = parser.parse_args(["dlq", *argv])
    return await asyncio.to_thread(run_dlq, options)


def job_body(job_id: str, tag: str = "t", **changes: Any) -> bytes:
    fields: dict[str, Any] = {
        "format": 1,
        "id": job_id,
        "function": "farm_jobs.record",
        "args": ["results.jsonl", tag],
        "kwargs": {},
        "context": {},
        "options": JobOptions(),
        "enqueued_at": time.time() - 60,
        "attempt": 2,
    }
    fields.update(changes)
    return encode_envelope(JobEnvelope(**fields))


async def publish_dead(
    farm: Farm,
    body: bytes,
    headers: dict[str, aio_pika.abc.FieldValue] | None = None,
    *,
    message_id: str | None = None,
    type: str | None = None,
) -> None:
    """Publish ``body`` into ``<queue>.dead`` the way anyone may: through ``<queue>.dlx``."""
    await _publish(farm, body, headers, message_id=message_id, type=type, dead=True)


async def publish_job(
    farm: Farm, body: bytes, headers: dict[str, aio_pika.abc.FieldValue] | None = None
) -> None:
    """Publish ``body`` straight into the jobs queue."""
    await _publish(farm, body, headers, message_id=None, type=None, dead=False)


async def _publish(
    farm: Farm,
    body: bytes,
    headers: dict[str, aio_pika.abc.FieldValue] | None,
    *,
    message_id: str | None,
    type: str | None,
    dead: bool,
) -> None:
    connection = await aio_pika.connect(farm.url)
    try:
        channel = await connection.channel()
        topology = Topology.from_settings(get_settings())
        await topology.declare(channel)
        message = aio_pika.Message(
            body,
            headers=dict(headers or {}),
            message_id=message_id,
            type=type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        if dead:
            exchange = await channel.get_exchange(topology.dead_exchange)
            await exchange.publish(message, routing_key=farm.queue_name)
        else:
            await channel.default_exchange.publish(message, routing_key=farm.queue_name)
    finally:
        await connection.close()


async def take_all(farm: Farm, name: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect(farm.url)
    try:
        channel = await connection.channel()
        source = await channel.get_queue(name, ensure=False)
        messages = []
        while (message := await source.get(no_ack=True, fail=False)) is not None:
            messages.append(message)
        return messages
    finally:
        await connection.close()


async def wait_for_depth(farm: Farm, name: str, expected: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while (found := await farm.queue_depth(name)) != expected:
        if time.monotonic() > deadline:
            logs = "\n".join(w.log()[-3000:] for w in farm.workers)
            raise AssertionError(f"{name} holds {found} messages, not {expected}\n{logs}")
        await asyncio.sleep(0.05)


def dead(farm: Farm) -> str:
    return f"{farm.queue_name}.dead"


def sign_with_key(farm: Farm) -> None:
    configure(driver="async_farm", rabbitmq_url=farm.url, name=farm.queue_name, signing_key=KEY)


def worker_said(
    body: bytes, *, reason: str = "failed", attempts: int = 3, signed_job: bool = True
) -> dict[str, aio_pika.abc.FieldValue]:
    """Headers of a dead letter as a worker holding KEY writes them (no job signature)."""
    headers: dict[str, aio_pika.abc.FieldValue] = {
        h.DEAD_REASON: reason,
        h.DEAD_ERROR_TYPE: "builtins.ValueError",
        h.DEAD_ERROR: "boom",
        h.DEAD_ATTEMPTS: attempts,
        h.DEAD_WORKER: "host-1",
        h.DEAD_FAILED_AT: "2026-01-02T03:04:05.678+00:00",
        h.DEAD_SIGNATURE: h.dead_letter_signature(
            body, reason=reason, attempts=attempts, signed_job=signed_job, key=KEY.encode()
        ),
    }
    if signed_job:
        headers[h.DEAD_SIGNED_JOB] = 1
    return headers


# -- 1. one dead letter nested too deep or unreadable does not stop the others ------------


@pytest.mark.parametrize("body", [b"[" * 100_000, DEEP_JOB], ids=["array", "job"])
async def test_a_body_nested_too_deep_is_listed_shown_and_left_by_requeue(
    farm: Farm, body: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a dead letter whose body is nested deeper than any decoder goes, and a job.
    await publish_dead(farm, body, {h.DEAD_REASON: "invalid"}, message_id="deep")
    await publish_dead(farm, job_body("job-a"), {h.DEAD_REASON: "failed"})

    # Then every command reads past it, and shows it as what it is: not a job.
    assert await dlq("list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(line.split("  ")[0] for line in lines) == ["deep", "job-a"]

    assert await dlq("list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert {entry["job_id"] for entry in listed} == {"deep", "job-a"}
    [deep] = [entry for entry in listed if entry["job_id"] == "deep"]
    assert deep["args"] is None and deep["body_encoding"] == "base64"

    assert await dlq("show", "deep") == 0
    assert f"Body ({len(body)} bytes, not a job envelope):" in capsys.readouterr().out

    assert await dlq("requeue", "--all") == 1
    assert capsys.readouterr().out.splitlines() == [
        "requeued job-a",
        "skipped deep: not a valid job envelope; left in place",
        "1 requeued, 1 skipped, 0 not found",
    ]
    [left] = await take_all(farm, dead(farm))
    assert left.body == body


POISON_TIME = "poisoned time"


@pytest.fixture
def poison(monkeypatch: pytest.MonkeyPatch) -> dict[str, aio_pika.abc.FieldValue]:
    """Headers whose reading raises: what no hardening of the reader foresaw."""
    moment = _dead_letters_broker._moment

    def reading_that_fails(value: object) -> Any:
        if value == POISON_TIME:
            raise RecursionError("maximum recursion depth exceeded")
        return moment(value)

    monkeypatch.setattr(_dead_letters_broker, "_moment", reading_that_fails)
    return {h.DEAD_REASON: "invalid", h.DEAD_FAILED_AT: POISON_TIME}


async def test_an_unreadable_dead_letter_is_skipped_by_its_position_and_the_others_are_read(
    farm: Farm, poison: dict[str, aio_pika.abc.FieldValue], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an unreadable dead letter second of three.
    await publish_dead(farm, job_body("job-a"), {h.DEAD_REASON: "failed"})
    await publish_dead(farm, b"poison", poison, message_id="poisoned")
    await publish_dead(farm, job_body("job-b"), {h.DEAD_REASON: "failed"})
    note = "fast-app dlq: skipped dead letter #2: unreadable (RecursionError)\n"

    assert await dlq("list") == 0
    captured = capsys.readouterr()
    assert [line.split("  ")[0] for line in captured.out.splitlines()] == ["job-a", "job-b"]
    assert captured.err == note

    assert await dlq("show", "job-b") == 0
    captured = capsys.readouterr()
    assert "Job ID:     job-b" in captured.out
    assert captured.err == note

    assert await dlq("requeue", "--all") == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        "requeued job-a",
        "requeued job-b",
        "2 requeued, 0 skipped, 0 not found, 1 unreadable",
    ]
    assert captured.err == note
    [left] = await take_all(farm, dead(farm))
    assert left.body == b"poison"


async def test_the_api_never_raises_for_one_unreadable_dead_letter(
    farm: Farm, poison: dict[str, aio_pika.abc.FieldValue], caplog: pytest.LogCaptureFixture
) -> None:
    await publish_dead(farm, b"poison", poison)
    await publish_dead(farm, job_body("job-a"), {h.DEAD_REASON: "failed"})
    told: list[Any] = []

    with caplog.at_level(logging.WARNING, logger="fast_app.farm.dead_letters"):
        letters = await list_dead_letters(get_settings())
    found = await find_dead_letter(get_settings(), "job-a", on_unreadable=told.append)
    report = await requeue_dead_letters(get_settings(), ["job-a"])

    assert [letter.job_id for letter in letters] == ["job-a"]
    assert "skipped dead letter #1: unreadable (RecursionError)" in caplog.text
    assert found is not None and found.job_id == "job-a"
    assert [(t.position, t.reason) for t in told] == [(1, "unreadable (RecursionError)")]
    assert report.requeued == ("job-a",)
    assert [(u.position, u.reason) for u in report.unreadable] == [
        (1, "unreadable (RecursionError)")
    ]
    assert not report.complete  # the unreadable one might have been job-a's too


async def publish_dead_nested_header(farm: Farm, depth: int) -> None:
    """A dead letter whose header table nests ``depth`` deep (AMQP allows it)."""
    nested: dict[str, Any] = {}
    inner = nested
    for _ in range(depth):
        inner["a"] = {}
        inner = inner["a"]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20 * depth))  # only to encode it here
    try:
        await publish_dead(farm, b"deep header", {"deep": nested}, message_id="deep")
    finally:
        sys.setrecursionlimit(limit)


async def test_a_dead_letter_with_headers_nested_thousands_deep_is_read_like_the_others(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a dead letter whose headers nest 1,500 levels deep between two others (without
    # the client's depth limit, its decoder overflowed and dropped the connection)
    await publish_dead(farm, job_body("job-a"), {h.DEAD_REASON: "failed"})
    await publish_dead_nested_header(farm, 1500)
    await publish_dead(farm, job_body("job-b"), {h.DEAD_REASON: "failed"})

    # When the dead letters are listed, then job-a requeued
    assert await dlq("list") == 0
    listed = capsys.readouterr()
    assert await dlq("requeue", "job-a") == 0
    requeued = capsys.readouterr()

    # Then all three are listed, nothing is skipped, and job-a goes back to the queue
    assert [line.split("  ")[0] for line in listed.out.splitlines()] == [
        "job-a",
        "deep",
        "job-b",
    ]
    assert listed.err == ""
    assert requeued.out.splitlines()[0] == "requeued job-a"
    assert await farm.queue_depth(farm.queue_name) == 1
    assert await farm.queue_depth(dead(farm)) == 2


# -- 2. with a signing key, requeue never signs what nobody signed ------------------------


async def test_with_a_signing_key_requeue_leaves_a_job_that_was_never_signed(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given signing on, and an unsigned job published straight into the dead-letter queue
    # with a worker's reason: requeuing it would sign it, and workers would run it.
    sign_with_key(farm)
    await publish_dead(farm, job_body("forged-1", "laundered"), {h.DEAD_REASON: "failed"})

    assert await dlq("requeue", "--all") == 1
    assert await dlq("requeue", "forged-1") == 1

    out = capsys.readouterr().out.splitlines()
    assert (
        out
        == [
            f"skipped forged-1: {NEVER_SIGNED}; left in place",
            "0 requeued, 1 skipped, 0 not found",
        ]
        * 2
    )
    assert await farm.queue_depth(farm.queue_name) == 0
    assert await farm.queue_depth(dead(farm)) == 1


async def test_force_requeues_a_job_never_signed_with_a_loud_warning_and_it_runs(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    sign_with_key(farm)
    await farm.start_worker(ASYNC_FARM_SIGNING_KEY=KEY)
    body = job_body("forged-1", "laundered", args=[str(farm.results), "laundered"])
    await publish_dead(farm, body, {h.DEAD_REASON: "failed"})

    # When requeued without --force, it stays and does not run.
    assert await dlq("requeue", "--all") == 1
    assert await farm.queue_depth(dead(farm)) == 1
    capsys.readouterr()

    # With --force, it is requeued signed, says so loudly, and a signing worker runs it.
    assert await dlq("requeue", "--all", "--force") == 0

    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["requeued forged-1", "1 requeued, 0 skipped, 0 not found"]
    [warning] = captured.err.splitlines()
    assert warning.startswith(
        "fast-app dlq: WARNING: --force requeued forged-1: its job was never signed"
    )
    await wait_until(lambda: farm.tags("ran") == ["laundered"], message="the forced job")
    assert farm.tags("ran") == ["laundered"]


async def test_force_through_the_api_reports_each_forced_job(farm: Farm) -> None:
    sign_with_key(farm)
    body = job_body("forged-1")
    await publish_dead(farm, body, {h.DEAD_REASON: "failed"})
    await publish_dead(farm, job_body("bad-1"), {h.DEAD_REASON: "bad_signature"})

    report = await requeue_dead_letters(get_settings(), None, force=True)

    assert report.requeued == ("forged-1", "bad-1")
    assert [forced.job_id for forced in report.forced] == ["forged-1", "bad-1"]
    assert report.complete
    for message in await take_all(farm, farm.queue_name):
        assert message.headers[h.SIGNATURE] == sign(message.body, KEY.encode())


async def test_a_job_whose_own_signature_verifies_is_requeued(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    sign_with_key(farm)
    body = job_body("signed-1")
    await publish_dead(farm, body, {**FORGED_HEADERS, h.SIGNATURE: sign(body, KEY.encode())})

    assert await dlq("requeue", "signed-1") == 0

    assert capsys.readouterr().out == "requeued signed-1\n1 requeued, 0 skipped, 0 not found\n"
    [message] = await take_all(farm, farm.queue_name)
    assert message.headers[h.SIGNATURE] == sign(message.body, KEY.encode())


async def test_a_worker_s_signed_word_that_the_job_was_signed_is_enough_to_requeue_it(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    # A worker's dead letter need not carry the job's signature: its own signature says
    # the job's was verified. Without that signature the same word counts for nothing.
    sign_with_key(farm)
    body = job_body("vouched-1")
    await publish_dead(farm, body, worker_said(body))
    unsigned = job_body("claimed-1")
    await publish_dead(farm, unsigned, {**FORGED_HEADERS, h.DEAD_SIGNED_JOB: 1})
    not_verified = job_body("unverified-1")
    await publish_dead(farm, not_verified, worker_said(not_verified, signed_job=False))

    assert await dlq("requeue", "--all") == 1

    assert capsys.readouterr().out.splitlines() == [
        "requeued vouched-1",
        f"skipped claimed-1: {NEVER_SIGNED}; left in place",
        f"skipped unverified-1: {NEVER_SIGNED}; left in place",
        "1 requeued, 2 skipped, 0 not found",
    ]


async def test_a_bad_signature_dead_letter_stays_even_with_a_valid_job_signature(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    sign_with_key(farm)
    body = job_body("bad-1")
    await publish_dead(
        farm, body, {h.DEAD_REASON: "bad_signature", h.SIGNATURE: sign(body, KEY.encode())}
    )

    assert await dlq("requeue", "bad-1") == 1

    assert "skipped bad-1: its signature was wrong (requeuing would sign it)" in (
        capsys.readouterr().out
    )
    assert await farm.queue_depth(dead(farm)) == 1


async def test_without_a_signing_key_requeue_takes_unsigned_jobs_as_before(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    await publish_dead(farm, job_body("plain-1"), {h.DEAD_REASON: "failed"})

    assert await dlq("requeue", "--all") == 0

    assert capsys.readouterr().out == "requeued plain-1\n1 requeued, 0 skipped, 0 not found\n"
    [message] = await take_all(farm, farm.queue_name)
    assert h.SIGNATURE not in (message.headers or {})


async def test_a_signing_worker_s_dead_letter_is_verified_and_requeued(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    # End to end: needs the worker that signs its dead letters (x-fast-app-dead-signature).
    sign_with_key(farm)
    await farm.start_worker(ASYNC_FARM_SIGNING_KEY=KEY)
    job = await queue(farm_jobs.fail, str(farm.results), "doomed", __retries=0)
    await wait_for_depth(farm, dead(farm), 1)

    assert await dlq("show", job.id) == 0
    out = capsys.readouterr().out
    assert "Reason:     failed" in out
    assert "Job signed: yes" in out
    assert "Verified:   yes" in out

    assert await dlq("requeue", job.id) == 0
    assert capsys.readouterr().out.startswith(f"requeued {job.id}\n")
    await wait_until(lambda: farm.tags("ran") == ["doomed", "doomed"], message="the rerun")


# -- 3. forged dead-letter headers are not shown as a worker's ----------------------------


async def test_headers_a_job_brought_are_ignored_when_the_broker_dead_lettered_it(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a job published with dead-letter headers of its own, which the broker
    # dead-letters (a reject here; the delivery limit does the same).
    await publish_job(farm, job_body("job-1"), FORGED_HEADERS)
    connection = await aio_pika.connect(farm.url)
    try:
        channel = await connection.channel()
        jobs = await channel.get_queue(farm.queue_name, ensure=False)
        message = await jobs.get()
        await message.reject(requeue=False)
    finally:
        await connection.close()
    await wait_for_depth(farm, dead(farm), 1)

    assert await dlq("show", "job-1") == 0
    out = capsys.readouterr().out
    assert "forged" not in out
    assert "Reason:     rejected" in out
    assert "Attempts:   -" in out
    assert "Source:     the broker dead-lettered it from the jobs queue" in out

    assert await dlq("show", "job-1", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["by_broker"] is True
    assert shown["traceback"] is shown["error"] is shown["attempts"] is shown["worker"] is None


async def test_with_a_signing_key_dlq_says_whether_a_worker_wrote_each_dead_letter(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    sign_with_key(farm)
    body = job_body("by-worker")
    await publish_dead(farm, body, worker_said(body))
    await publish_dead(farm, job_body("by-anyone"), FORGED_HEADERS)

    assert await dlq("show", "by-anyone") == 0
    out = capsys.readouterr().out
    assert NOT_VERIFIED in out
    assert "Job signed: no" in out
    assert await dlq("show", "by-worker") == 0
    assert "Verified:   yes" in capsys.readouterr().out

    assert await dlq("list") == 0
    lines = capsys.readouterr().out.splitlines()
    verdicts = {line.split("  ")[0]: line.split("  ")[-1] for line in lines}
    assert verdicts == {"by-worker": "verified=yes", "by-anyone": "verified=no"}

    assert await dlq("list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert {e["job_id"]: (e["verified"], e["job_signed"]) for e in listed} == {
        "by-worker": (True, True),
        "by-anyone": (False, False),
    }


async def test_without_a_signing_key_nothing_is_said_about_verification(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    await publish_dead(farm, job_body("job-1"), FORGED_HEADERS)

    assert await dlq("show", "job-1") == 0
    assert await dlq("list") == 0

    out = capsys.readouterr().out
    assert "Verified" not in out and "verified=" not in out


# -- 4. text from a dead letter cannot drive the terminal --------------------------------


async def test_untrusted_text_is_printed_escaped(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given dead letters whose every field is text meant for the operator's terminal: a job
    # id and function path (envelopes refuse such ids: these come from message properties)
    # and an envelope's context.
    evil_id = "evil\x1b]0;pwned\x07\nFAKE"
    await publish_dead(
        farm,
        b"not a job",
        {
            h.DEAD_REASON: "failed\x1b[2J",
            h.DEAD_ERROR_TYPE: "builtins.ValueError",
            h.DEAD_ERROR: "bad\x1b[31m\nnext",
            h.DEAD_TRACEBACK: "Traceback (most recent call last):\n\t\x1b[31mred\r\n",
            h.DEAD_WORKER: "w\x07",
            h.DEAD_FAILED_AT: "2026-01-02T03:04:05.678+00:00",
        },
        message_id=evil_id,
        type="farm_jobs.\x1b[8mhidden",
    )
    await publish_dead(farm, job_body("job-1", context={"k\x1b": "v\u202e"}), FORGED_HEADERS)
    escaped_id = "evil\\x1b]0;pwned\\x07\\x0aFAKE"
    printed: list[str] = []

    assert await dlq("list") == 0
    out = capsys.readouterr().out
    printed.append(out)
    first, _ = out.splitlines()
    assert first.startswith(f"{escaped_id}  farm_jobs.\\x1b[8mhidden  failed\\x1b[2J  ")
    assert "builtins.ValueError: bad\\x1b[31m next" in first

    assert await dlq("show", evil_id) == 0
    out = capsys.readouterr().out
    printed.append(out)
    assert f"Job ID:     {escaped_id}\n" in out
    assert "Worker:     w\\x07\n" in out
    assert "Error:      builtins.ValueError: bad\\x1b[31m\\x0anext\n" in out
    assert "  Traceback (most recent call last):\n  \t\\x1b[31mred\\x0d\n" in out

    assert await dlq("show", "job-1") == 0
    out = capsys.readouterr().out
    printed.append(out)
    assert '  k\\x1b = "v\\u202e"\n' in out

    assert await dlq("list", "--json") == 0
    out = capsys.readouterr().out
    printed.append(out)
    assert json.loads(out)[0]["job_id"] == evil_id  # JSON escapes, and keeps the text

    assert await dlq("requeue", evil_id) == 1
    captured = capsys.readouterr()
    printed += [captured.out, captured.err]
    assert captured.out.startswith(f"skipped {escaped_id}: not a valid job envelope;")

    for text in printed:
        assert not {"\x1b", "\x07", "\u202e"} & set(text)


async def test_ids_asked_for_and_not_found_are_printed_escaped(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await dlq("show", "nope\x1b[2J") == 1
    assert await dlq("requeue", "nope\x1b[2J") == 1

    captured = capsys.readouterr()
    assert "\x1b" not in captured.out + captured.err
    assert "no dead letter of job nope\\x1b[2J" in captured.err
    assert "not found nope\\x1b[2J" in captured.out


# -- 5. a unique prefix of a job id will do ----------------------------------------------


async def test_show_and_requeue_take_a_unique_prefix_of_six_characters_or_more(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    await publish_dead(farm, job_body("0f3a9c11aa"), {h.DEAD_REASON: "failed"})
    await publish_dead(farm, job_body("0f3a9c22bb"), {h.DEAD_REASON: "failed"})
    await publish_dead(farm, job_body("77e1d0cc"), {h.DEAD_REASON: "failed"})

    assert await dlq("show", "0f3a9c2") == 0
    assert "Job ID:     0f3a9c22bb" in capsys.readouterr().out
    assert await dlq("show", "77e1d") == 1  # five characters: too short to stand for it
    assert "no dead letter of job 77e1d" in capsys.readouterr().err

    assert await dlq("requeue", "77e1d0", "0f3a9c11") == 0

    assert capsys.readouterr().out.splitlines() == [
        "requeued 0f3a9c11aa",
        "requeued 77e1d0cc",
        "2 requeued, 0 skipped, 0 not found",
    ]
    [left] = await take_all(farm, dead(farm))
    assert b"0f3a9c22bb" in left.body


async def test_an_ambiguous_prefix_lists_the_candidates_and_requeues_nothing(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    await publish_dead(farm, job_body("0f3a9c11aa"), {h.DEAD_REASON: "failed"})
    await publish_dead(farm, job_body("0f3a9c22bb"), {h.DEAD_REASON: "failed"})
    await publish_dead(farm, job_body("77e1d0cc"), {h.DEAD_REASON: "failed"})
    ambiguity = (
        "fast-app dlq: job id prefix 0f3a9c is ambiguous: it matches 0f3a9c11aa, 0f3a9c22bb\n"
    )

    assert await dlq("show", "0f3a9c") == 1
    assert capsys.readouterr().err == ambiguity
    assert await dlq("requeue", "77e1d0cc", "0f3a9c") == 1
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", ambiguity)
    assert await farm.queue_depth(dead(farm)) == 3
    assert await farm.queue_depth(farm.queue_name) == 0

    with pytest.raises(AmbiguousJobIdError) as raised:
        await requeue_dead_letters(get_settings(), ["0f3a9c"], prefixes=True)
    assert raised.value.candidates == {"0f3a9c": ("0f3a9c11aa", "0f3a9c22bb")}


async def test_the_api_matches_whole_ids_only_unless_asked(farm: Farm) -> None:
    await publish_dead(farm, job_body("0f3a9c11aa"), {h.DEAD_REASON: "failed"})

    assert await find_dead_letter(get_settings(), "0f3a9c") is None
    report = await requeue_dead_letters(get_settings(), ["0f3a9c"])
    assert report.not_found == ("0f3a9c",)
    assert await farm.queue_depth(dead(farm)) == 1
