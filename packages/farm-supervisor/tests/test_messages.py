"""The farm's message contract: bounded by construction, strict at the edge."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from farm_messages import heartbeat

from fast_app.core.context import context
from fast_app.core.queue import PayloadTooLargeError, queue
from fast_app.core.queue.amqp import headers as h
from fast_app.core.queue.amqp import sign, signature_matches
from fast_app.core.queue.envelope import JobEnvelope, JobOptions, decode_envelope, encode_envelope
from fast_app.core.queue.errors import InvalidJobError
from fast_app.core.queue.handle import JobError
from fast_app.farm.messages import (
    HEARTBEAT_MAX_BYTES,
    CommandGate,
    Refusals,
    command_from_dict,
    decode_command,
    decode_heartbeat,
    decode_tombstone,
    encode_command,
    encode_line,
    message_signature,
    signed_by,
)
from fast_app.farm.printable import printable
from fast_app.farm.supervisor._workers import WorkerProcess
from fast_app.farm.worker._state import InFlightJob, RecentJobs

KEY = b"k" * 32
HOSTILE = "\x1b]0;owned\x07\n\u202e" + "é" * 100_000


_HOSTILE_ENVELOPE = JobEnvelope(
    format=1,
    id="x",
    function="app.jobs.work",
    args=[HOSTILE, {"nested": [HOSTILE] * 50}],
    kwargs={HOSTILE[:50]: HOSTILE},
    context={HOSTILE + str(n): n for n in range(50)},
    options=JobOptions(hard_timeout_s=5),
    enqueued_at=time.time(),
)


def hostile_envelope(job_id: str) -> JobEnvelope:
    return msgspec.structs.replace(_HOSTILE_ENVELOPE, id=job_id)


def test_a_heartbeat_of_hostile_jobs_stays_bounded_and_decodes() -> None:
    # Given a worker with 10,000 jobs in flight whose arguments, context keys and errors
    # hold huge strings with escape sequences, newlines and bidi overrides
    now = time.time()
    jobs = [
        InFlightJob(
            envelope=hostile_envelope(f"{n:032x}"),
            message=None,  # type: ignore[arg-type]
            started_at=now,
            soft_deadline=None,
            hard_deadline=now + n,
        )
        for n in range(10_000)
    ]
    recent = RecentJobs()
    for n in range(20):
        error = JobError(HOSTILE, HOSTILE, HOSTILE)
        recent.add(hostile_envelope(f"{n:032x}"), "dead_lettered", 1.0, error)

    # When the heartbeat is built as the worker builds it (the nearest deadlines first)
    listed = sorted(jobs, key=lambda job: job.hard_deadline or 0.0)[:256]
    line = encode_line(
        heartbeat(
            in_flight=[job.describe() for job in listed],
            in_flight_count=len(jobs),
            ended=recent.take(),
            state="busy",
        )
    )

    # Then it is far below the reader's limit, and the supervisor decodes it
    assert len(line) < HEARTBEAT_MAX_BYTES / 2, len(line)
    beat = decode_heartbeat(line)
    assert beat.in_flight_count == 10_000
    assert beat.in_flight[0].hard_deadline == now
    assert "\x1b" not in line.decode() and "\\\\x1b" in line.decode()


def test_a_job_whose_code_returned_is_reported_without_a_hard_deadline() -> None:
    # Given a job with a hard deadline, running, then returned and being settled (a slow
    # broker may take longer than the deadline to confirm its retry)
    now = time.time()
    job = InFlightJob(
        envelope=hostile_envelope("a" * 32),
        message=None,  # type: ignore[arg-type]
        started_at=now,
        soft_deadline=None,
        hard_deadline=now + 1,
    )
    running = job.describe()
    job.code_returned = True

    # Then heartbeats stop giving its deadline once its code returned (a supervisor
    # would kill the worker past it), unless the code still runs past its soft timeout
    assert running.hard_deadline == now + 1
    assert job.describe().hard_deadline is None
    job.still_running = True
    assert job.describe().hard_deadline == now + 1


async def test_the_supervisor_reads_past_an_oversized_or_malformed_heartbeat_line() -> None:
    # Given a link carrying a line over the limit, garbage, then a valid heartbeat
    reader = asyncio.StreamReader(limit=HEARTBEAT_MAX_BYTES)
    reader.feed_data(b"x" * (HEARTBEAT_MAX_BYTES + 10) + b"\n")
    reader.feed_data(b'{"type": "heartbeat", "worker_id": "w\\u0000"}\n')
    reader.feed_data(b"\xff\xfe not json\n")
    reader.feed_data(encode_line(heartbeat("w1", state="busy")))
    reader.feed_eof()
    process: Any = SimpleNamespace(pid=1, returncode=None)
    worker = WorkerProcess("w1", process, time.monotonic(), None)  # type: ignore[arg-type]

    # When the supervisor's reader runs over it
    await asyncio.wait_for(worker._read_heartbeats(reader), 5)

    # Then it refused three lines and took the heartbeat
    assert worker.refusals.counts["heartbeat_oversized"] == 1
    assert worker.refusals.counts["heartbeat_malformed"] == 2
    assert worker.heartbeat is not None and worker.heartbeat.state == "busy"


@pytest.mark.parametrize(
    "body",
    [
        b'{"type": "tombstone", "job_id": "a\\u0000b", "function": "a.b", "worker": "w"}',
        b'{"type": "tombstone", "job_id": "'
        + b"a" * 200_000
        + b'", "function": "a.b", "worker": "w"}',
        b'{"type": "tombstone", "job_id": "ab", "function": "a.b", "worker": "w\\nforged log line"}',
        b'{"type": "tombstone", "job_id": 7, "function": "a.b", "worker": "w"}',
        b"[" * 100_000,
    ],
)
def test_forged_tombstones_do_not_decode(body: bytes) -> None:
    with pytest.raises((msgspec.DecodeError, RecursionError)):
        decode_tombstone(body)


def test_commands_are_admitted_once_and_only_while_fresh() -> None:
    gate = CommandGate(max_age_s=300)
    command = decode_command(encode_command(command_from_dict({"command": "pause"})))
    now = command.sent_at

    assert gate.refusal(command, now) is None
    assert gate.refusal(command, now + 1) == (
        "replayed",
        f"pause from {command.sender} {command.id} was obeyed already",
    )
    stale = msgspec.structs.replace(command, id="f" * 32, sent_at=now - 301)
    assert gate.refusal(stale, now) is not None
    assert gate.refusal(stale, now)[0] == "stale"  # type: ignore[index]
    ahead = msgspec.structs.replace(stale, sent_at=now + 301)
    assert gate.refusal(ahead, now)[0] == "stale"  # type: ignore[index]


@pytest.mark.parametrize(
    "fields",
    [
        {"command": "set_limits", "max_workers": 1025},
        {"command": "set_limits", "min_workers": -1},
        {"command": "drain_worker", "worker_id": "w\x1b[2J"},
        {"command": "launch_missiles"},
    ],
)
def test_commands_out_of_bounds_are_refused_where_they_are_made(fields: dict[str, Any]) -> None:
    with pytest.raises(msgspec.ValidationError):
        command_from_dict(fields)


def test_a_control_signature_is_bound_to_its_kind_and_key() -> None:
    body = encode_command(command_from_dict({"command": "shutdown"}))
    signature = message_signature("command", body, KEY)

    assert signed_by("command", body, signature, KEY)
    assert not signed_by("snapshot", body, signature, KEY)
    assert not signed_by("command", body, signature, b"o" * 32)
    assert not signed_by("command", body, sign(body, KEY), KEY)  # a job's signature
    assert not signed_by("command", body, None, KEY)


@pytest.mark.parametrize(
    "signature", ["é" * 64, b"\xff" * 64, "a" * 63, 12, None, ["x"], "a" * 10_000]
)
def test_a_malformed_signature_header_is_a_wrong_signature(signature: object) -> None:
    assert signature_matches(b"body", signature, KEY) is False


def test_a_dead_letter_signature_covers_reason_attempts_and_the_job() -> None:
    said = {"reason": "failed", "attempts": 3, "signed_job": True}
    signature = h.dead_letter_signature(b"body", key=KEY, **said)  # type: ignore[arg-type]

    assert signature == h.dead_letter_signature(b"body", key=KEY, **said)  # type: ignore[arg-type]
    for changed in ({"reason": "invalid"}, {"attempts": 1}, {"signed_job": False}):
        other = {**said, **changed}
        assert signature != h.dead_letter_signature(b"body", key=KEY, **other)  # type: ignore[arg-type]
    assert signature != h.dead_letter_signature(b"bodY", key=KEY, **said)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("job_id", "function"),
    [
        ("a" * 70_000, "app.jobs.work"),
        ("a\x00b", "app.jobs.work"),
        ("abc\n", "app.jobs.work"),
        ("abc", "app.jobs.work\n"),
        ("abc", "app.jobs.\x1b[2Jwork"),
        ("abc", "a." * 1000 + "b"),
    ],
)
def test_an_envelope_with_a_forged_id_or_path_is_invalid(job_id: str, function: str) -> None:
    envelope = msgspec.structs.replace(hostile_envelope("ok"), id=job_id, function=function)

    with pytest.raises(InvalidJobError):
        decode_envelope(encode_envelope(envelope))


def test_a_deeply_nested_body_is_an_invalid_job_not_a_crash() -> None:
    with pytest.raises(InvalidJobError):
        decode_envelope(b'{"format": 1, "args": ' + b"[" * 100_000)


async def test_queue_refuses_a_context_over_its_limit() -> None:
    token = context.set("big", "x" * 20_000)
    try:
        with pytest.raises(PayloadTooLargeError, match="context"):
            await queue(printable, "fine")
    finally:
        context.clear("big")
    del token


def test_refusals_are_counted_always_and_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    refusals = Refusals(logging.getLogger("test.refusals"), interval_s=3600)
    with caplog.at_level(logging.WARNING, logger="test.refusals"):
        for _ in range(1000):
            refusals.refuse("command", "malformed", "garbage\x1b[2J")

    assert refusals.counts["command_malformed"] == 1000
    assert len(caplog.records) == 1
    assert "\x1b" not in caplog.text and "\\x1b" in caplog.text


def test_printable_escapes_every_control_character() -> None:
    assert printable("a\x1b]0;t\x07b\nc\u202ed") == "a\\x1b]0;t\\x07b\\x0ac\\u202ed"
    assert printable("line 1\n\tline 2\x1b", keep_lines=True) == "line 1\n\tline 2\\x1b"


# -- a newer sender's fields: ignored by older readers (rolling upgrades) ---------------


_NEW = {"from_v9": [1, "x"]}


def _with_unknown_fields(message: dict[str, Any], *nested: str) -> dict[str, Any]:
    """``message`` with a field no reader knows at the top and in each object (or each
    object of the list) at the keys ``nested``."""
    grown = {**message, **_NEW}
    for key in nested:
        value = grown[key]
        if isinstance(value, list):
            grown[key] = [{**item, **_NEW} for item in value]
        else:
            grown[key] = {**value, **_NEW}
    return grown


def test_a_heartbeat_from_a_newer_worker_decodes_without_its_new_fields() -> None:
    # Given a worker started from newer code than its supervisor (a deploy, fresh start)
    beat = heartbeat("w1", in_flight_count=1, waiting=1)
    grown = _with_unknown_fields(msgspec.to_builtins(beat), "counters")
    body = msgspec.json.encode(grown)
    # Then its supervisor reads every field it knows and ignores the rest
    assert decode_heartbeat(body) == beat


def test_a_snapshot_from_a_newer_supervisor_decodes_without_its_new_fields() -> None:
    from farm_messages import snapshot

    from fast_app.farm.messages import decode_snapshot

    # Given a peer supervisor, a dashboard or a CLI older than the supervisor it reads
    sent = snapshot("host-b", 3, 1, waiting={"host-b-w0": 2})
    grown = _with_unknown_fields(msgspec.to_builtins(sent), "settings", "workers", "queue")
    body = msgspec.json.encode(grown)
    # Then it reads every field it knows and ignores the rest
    assert decode_snapshot(body) == sent


_PAUSE = {"command": "pause", "sender": "ops", "id": "0" * 32}
_TOMBSTONE = {"type": "tombstone", "job_id": "j1", "function": "app.f", "worker": "w1"}


@pytest.mark.parametrize("kind", ["command", "tombstone"])
def test_commands_and_tombstones_with_fields_not_understood_are_refused(kind: str) -> None:
    # A command or tombstone acts: one carrying what this reader cannot honour must not
    # be carried out as if it did not.
    decode = decode_command if kind == "command" else decode_tombstone
    message: dict[str, Any] = _PAUSE if kind == "command" else _TOMBSTONE
    decode(msgspec.json.encode(message))  # as sent today: read
    with pytest.raises(msgspec.ValidationError):
        decode(msgspec.json.encode({**message, **_NEW}))
