"""fast-app dlq: list, show, requeue and purge dead letters on a real broker."""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import io
import json
import random
import socket
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
from fast_app.farm.dead_letters import list_dead_letters, requeue_dead_letters

T0 = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC)
TRACEBACK = (
    'Traceback (most recent call last):\n  File "jobs.py", line 3, in fail\nValueError: boom\n'
)
KEY = "dlq-commands-signing-key-0123456789abcdef"  # signing keys have 32 bytes or more


# -- helpers ------------------------------------------------------------------------


async def dlq(*argv: str) -> int:
    """Run ``fast-app dlq ARGV`` as the CLI would (in a thread: it runs its own loop)."""
    parser = argparse.ArgumentParser(prog="fast-app")
    add_dlq_parser(parser.add_subparsers(dest="command", required=True))
    options = parser.parse_args(["dlq", *argv])
    return await asyncio.to_thread(run_dlq, options)


def envelope(job_id: str, *args: Any, **changes: Any) -> JobEnvelope:
    fields: dict[str, Any] = {
        "format": 1,
        "id": job_id,
        "function": "farm_jobs.record",
        "args": list(args),
        "kwargs": {},
        "context": {},
        "options": JobOptions(retries=2),
        "enqueued_at": time.time() - 60,
        "attempt": 3,
        "not_before": None,
    }
    fields.update(changes)
    return JobEnvelope(**fields)


async def bury(
    farm: Farm,
    job_id: str | None,
    *,
    body: bytes | None = None,
    failed_at: dt.datetime = T0,
    reason: str = "failed",
    error: str | None = None,
    signed_with: str | None = None,
    **job: Any,
) -> bytes:
    """Store a dead letter in ``<queue>.dead`` as a worker would; return its body.

    ``signed_with``: the job carries its signature under that key, as an old worker's
    dead letter (a copy of every header of the job) does.
    """
    if body is None:
        assert job_id is not None
        body = encode_envelope(envelope(job_id, *job.pop("args", ()), **job))
    headers: dict[str, aio_pika.abc.FieldValue] = {
        h.DEAD_REASON: reason,
        h.DEAD_ERROR_TYPE: "builtins.ValueError",
        h.DEAD_ERROR: error or f"{job_id} went wrong",
        h.DEAD_TRACEBACK: TRACEBACK,
        h.DEAD_ATTEMPTS: 3,
        h.DEAD_WORKER: "host-1234",
        h.DEAD_FAILED_AT: failed_at.isoformat(timespec="milliseconds"),
    }
    if signed_with is not None:
        headers[h.SIGNATURE] = sign(body, signed_with.encode())
    connection = await aio_pika.connect(farm.url)
    try:
        channel = await connection.channel()
        topology = Topology.from_settings(get_settings())
        await topology.declare(channel)
        exchange = await channel.get_exchange(topology.dead_exchange)
        message = aio_pika.Message(
            body,
            headers=headers,
            message_id=job_id,
            type="farm_jobs.record",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await exchange.publish(message, routing_key=farm.queue_name)
    finally:
        await connection.close()
    return body


async def wait_for_depth(farm: Farm, name: str, expected: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while (found := await farm.queue_depth(name)) != expected:
        if time.monotonic() > deadline:
            logs = "\n".join(w.log()[-3000:] for w in farm.workers)
            raise AssertionError(f"{name} holds {found} messages, not {expected}\n{logs}")
        await asyncio.sleep(0.05)


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


async def dead_letters_left(farm: Farm, expected: int) -> None:
    """Wait until the dead-letter queue holds ``expected`` letters: those a command read
    and left in place count again only once the broker has taken them back from its
    closed connection."""
    depth = -1

    async def settled() -> bool:
        nonlocal depth
        depth = await farm.queue_depth(dead(farm))
        return depth == expected

    deadline = time.monotonic() + 10
    while not await settled():
        assert time.monotonic() < deadline, f"{depth} dead letters, not {expected}"
        await asyncio.sleep(0.05)


def dead(farm: Farm) -> str:
    return f"{farm.queue_name}.dead"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


# -- list -----------------------------------------------------------------------------


async def test_list_prints_one_line_per_dead_letter_oldest_first(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    await farm.start_worker()
    job = await queue(farm_jobs.fail, str(farm.results), "doomed", __retries=0)
    await wait_for_depth(farm, dead(farm), 1)
    await bury(farm, "older", failed_at=T0, args=["a"])

    code = await dlq("list")

    out = capsys.readouterr().out
    assert code == 0
    first, second = out.splitlines()
    assert first.split("  ") == [
        "older",
        "farm_jobs.record",
        "failed",
        "builtins.ValueError: older went wrong",
        "attempts=3",
        "2026-01-02T03:04:05.678+00:00",
        f"queue={farm.queue_name}",
    ]
    fields = second.split("  ")
    assert fields[:5] == [
        job.id,
        "farm_jobs.fail",
        "failed",
        "builtins.ValueError: doomed always fails",
        "attempts=1",
    ]
    assert abs(dt.datetime.fromisoformat(fields[5]).timestamp() - time.time()) < 60


async def test_list_shortens_long_errors_to_keep_one_line_each(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    await bury(farm, "job-1", error="first line\n" + "y" * 300)

    assert await dlq("list") == 0

    [line] = capsys.readouterr().out.splitlines()
    assert "builtins.ValueError: first line yyyy" in line
    assert "y" * 300 not in line
    assert "… (332 chars)  attempts=3" in line


async def test_list_json_has_every_field_and_the_body(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    body = await bury(farm, "job-1", args=["a", 2], context={"request_id": "r-1"})
    garbage = b"\x00\xffnot json"
    await bury(farm, "raw-1", body=garbage, reason="invalid", failed_at=T0 + dt.timedelta(1))

    assert await dlq("list", "--json") == 0

    job, raw = json.loads(capsys.readouterr().out)
    assert job == {
        "job_id": "job-1",
        "queue": farm.queue_name,
        "function": "farm_jobs.record",
        "reason": "failed",
        "error_type": "builtins.ValueError",
        "error": "job-1 went wrong",
        "traceback": TRACEBACK,
        "attempts": 3,
        "worker": "host-1234",
        "failed_at": "2026-01-02T03:04:05.678000+00:00",
        "verified": None,
        "job_signed": None,
        "by_broker": False,
        "original_headers": None,
        "args": ["a", 2],
        "kwargs": {},
        "context": {"request_id": "r-1"},
        "body": body.decode(),
        "body_encoding": "utf-8",
    }
    assert raw["job_id"] == "raw-1"
    assert raw["args"] is raw["kwargs"] is raw["context"] is None
    assert raw["body_encoding"] == "base64"
    assert base64.b64decode(raw["body"]) == garbage


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
async def test_list_removes_nothing_and_gives_the_same_order_every_time(
    farm: Farm, queue_type: str, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(
        driver="async_farm", rabbitmq_url=farm.url, name=farm.queue_name, queue_type=queue_type
    )
    # More than 32: a quorum queue returns that many unacked messages in hash order.
    minutes = list(range(40))
    random.Random(7).shuffle(minutes)
    for number, minute in enumerate(minutes):
        await bury(farm, f"job-{number:02}", failed_at=T0 + dt.timedelta(minutes=minute))
    oldest_first = [f"job-{minutes.index(minute):02}" for minute in range(40)]

    listings = [[letter.job_id for letter in await list_dead_letters(get_settings())]]
    for _ in range(3):
        assert await dlq("list", "--json") == 0
        listings.append([entry["job_id"] for entry in json.loads(capsys.readouterr().out)])
    assert await dlq("list", "--limit", "5", "--json") == 0
    oldest_five = [entry["job_id"] for entry in json.loads(capsys.readouterr().out)]

    assert listings == [oldest_first] * 4
    assert oldest_five == oldest_first[:5]
    await dead_letters_left(farm, 40)


async def test_list_of_a_farm_without_dead_letters_creates_nothing(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await dlq("list") == 0

    assert capsys.readouterr().out == f"no dead letters in {dead(farm)}\n"
    connection = await aio_pika.connect(farm.url)
    try:
        channel = await connection.channel()
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
            await channel.declare_queue(dead(farm), passive=True)
    finally:
        await connection.close()


async def test_a_job_the_broker_dead_lettered_shows_the_broker_reason(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    job = await queue(farm_jobs.record, str(farm.results), "rejected")
    connection = await aio_pika.connect(farm.url)
    try:
        channel = await connection.channel()
        jobs = await channel.get_queue(farm.queue_name, ensure=False)
        message = await jobs.get()
        await message.reject(requeue=False)
    finally:
        await connection.close()
    await wait_for_depth(farm, dead(farm), 1)

    assert await dlq("list", "--json") == 0

    [letter] = json.loads(capsys.readouterr().out)
    assert letter["job_id"] == job.id
    assert letter["reason"] == "rejected"
    failed_at = dt.datetime.fromisoformat(letter["failed_at"])
    assert abs(failed_at.timestamp() - time.time()) < 60
    assert letter["error"] is None


# -- show -----------------------------------------------------------------------------


async def test_show_prints_arguments_shortened_the_context_and_the_full_traceback(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    await bury(farm, "other")
    await bury(farm, "job-1", args=["z" * 1000, 7], kwargs={"flag": True}, context={"tenant": "t1"})

    assert await dlq("show", "job-1") == 0

    out = capsys.readouterr().out
    assert "Job ID:     job-1" in out
    assert "Error:      builtins.ValueError: job-1 went wrong" in out
    assert "Worker:     host-1234" in out
    assert "z" * 150 in out
    assert "z" * 1000 not in out
    assert "(1002 chars)" in out
    assert "  [1] 7" in out
    assert "  flag=true" in out
    assert '  tenant = "t1"' in out
    for line in TRACEBACK.splitlines():
        assert f"  {line}" in out
    assert "other" not in out


async def test_show_json_keeps_long_arguments_whole(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    await bury(farm, "job-1", args=["z" * 1000])

    assert await dlq("show", "job-1", "--json") == 0

    assert json.loads(capsys.readouterr().out)["args"] == ["z" * 1000]


async def test_show_of_a_job_with_no_dead_letter_exits_1(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    await bury(farm, "job-1")

    assert await dlq("show", "nope") == 1

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"fast-app dlq: no dead letter of job nope in {dead(farm)}\n"
    await dead_letters_left(farm, 1)


# -- requeue --------------------------------------------------------------------------


async def test_a_requeued_job_keeps_its_id_starts_again_at_attempt_1_and_runs(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    # Fails on runs 1-3; one retry allowed. Dead after runs 1 and 2; requeued at attempt 1,
    # it fails (run 3), is retried (attempt 2) and succeeds. Had the attempt stayed at 2,
    # run 3 would have dead-lettered it again.
    await farm.start_worker()
    job = await queue(farm_jobs.flaky, str(farm.results), "phoenix", 3, __retries=1)
    await bury(farm, "bystander")
    await wait_for_depth(farm, dead(farm), 2)
    assert farm.tags("ran") == []

    assert await dlq("requeue", job.id) == 0

    assert capsys.readouterr().out == f"requeued {job.id}\n1 requeued, 0 skipped, 0 not found\n"
    await wait_until(lambda: farm.tags("ran") == ["phoenix"], message="the requeued job")
    assert len(farm.events("attempt")) == 4
    assert f"job {job.id}" in farm.workers[0].log()
    [left] = await take_all(farm, dead(farm))
    assert left.message_id == "bystander"


async def test_requeue_all_republishes_every_job_signed_and_due_now(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(driver="async_farm", rabbitmq_url=farm.url, name=farm.queue_name, signing_key=KEY)
    in_an_hour = time.time() + 3600
    await bury(farm, "job-a", args=["a"], not_before=in_an_hour, signed_with=KEY)
    await bury(farm, "job-b", args=["b"], failed_at=T0 + dt.timedelta(seconds=1), signed_with=KEY)

    report = await requeue_dead_letters(get_settings(), None)

    assert report.requeued == ("job-a", "job-b")
    assert report.complete
    jobs = await take_all(farm, farm.queue_name)
    assert [message.message_id for message in jobs] == ["job-a", "job-b"]
    for message, argument in zip(jobs, ["a", "b"], strict=True):
        body = json.loads(message.body)
        assert body["id"] == message.message_id
        assert body["args"] == [argument]
        assert body["attempt"] == 1
        assert body["not_before"] is None
        assert body["options"] == {"retries": 2}
        assert message.headers[h.SIGNATURE] == sign(message.body, KEY.encode())
        assert h.DEAD_REASON not in message.headers
    await dead_letters_left(farm, 0)
    assert capsys.readouterr().out == ""


async def test_requeue_all_leaves_garbage_and_forged_jobs_and_says_so(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    await bury(farm, "raw-1", body=b"\x00\xffnot json", reason="invalid")
    await bury(farm, "forged", reason="bad_signature", failed_at=T0 + dt.timedelta(seconds=1))
    await bury(farm, "job-a", failed_at=T0 + dt.timedelta(seconds=2))

    assert await dlq("requeue", "--all") == 1

    assert capsys.readouterr().out.splitlines() == [
        "requeued job-a",
        "skipped raw-1: not a valid job envelope; left in place",
        "skipped forged: its signature was wrong (requeuing would sign it); --force to "
        "requeue anyway; left in place",
        "1 requeued, 2 skipped, 0 not found",
    ]
    assert [m.message_id for m in await take_all(farm, farm.queue_name)] == ["job-a"]
    left = await take_all(farm, dead(farm))
    assert sorted(m.message_id or "" for m in left) == ["forged", "raw-1"]
    assert b"\x00\xffnot json" in [m.body for m in left]


async def test_requeue_reports_ids_it_cannot_find_or_requeue(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    await bury(farm, "raw-1", body=b"[1, 2]", reason="invalid")
    await bury(farm, "job-a")

    assert await dlq("requeue", "raw-1", "nope") == 1

    assert capsys.readouterr().out.splitlines() == [
        "skipped raw-1: not a valid job envelope; left in place",
        "not found nope",
        "0 requeued, 1 skipped, 1 not found",
    ]
    await dead_letters_left(farm, 2)
    assert await farm.queue_depth(farm.queue_name) == 0


async def test_a_job_dead_lettered_twice_is_requeued_once(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    await bury(farm, "job-a")
    await bury(farm, "job-a", failed_at=T0 + dt.timedelta(seconds=1))

    assert await dlq("requeue", "job-a") == 0

    assert "removed a duplicate dead letter of job-a" in capsys.readouterr().out
    assert await farm.queue_depth(farm.queue_name) == 1
    await dead_letters_left(farm, 0)


async def test_requeue_needs_job_ids_or_all_but_not_both(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    await bury(farm, "job-a")

    assert await dlq("requeue") == 2
    assert await dlq("requeue", "job-a", "--all") == 2

    assert "give JOB_ID... or --all" in capsys.readouterr().err
    await dead_letters_left(farm, 1)


# -- purge ----------------------------------------------------------------------------


async def test_purge_yes_deletes_every_dead_letter(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    for number in range(3):
        await bury(farm, f"job-{number}")

    assert await dlq("purge", "--yes") == 0

    assert capsys.readouterr().out == f"purged 3 dead letters from {dead(farm)}\n"
    await dead_letters_left(farm, 0)


@pytest.mark.parametrize(("answer", "code", "left"), [("n\n", 1, 2), ("", 1, 2), ("y\n", 0, 0)])
async def test_purge_asks_first(
    farm: Farm,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    code: int,
    left: int,
) -> None:
    await bury(farm, "job-1")
    await bury(farm, "job-2")
    monkeypatch.setattr("sys.stdin", _Terminal(answer))

    assert await dlq("purge") == code

    assert capsys.readouterr().out.startswith(f"Purge 2 dead letters from {dead(farm)}? [y/N] ")
    await dead_letters_left(farm, left)


async def test_purge_without_a_terminal_or_yes_refuses(
    farm: Farm, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await bury(farm, "job-1")
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))

    assert await dlq("purge") == 1

    captured = capsys.readouterr()
    assert captured.err == (
        f"fast-app dlq: not purging 1 dead letters from {dead(farm)}: confirm with --yes\n"
    )
    await dead_letters_left(farm, 1)


# -- settings and broker --------------------------------------------------------------


async def test_queue_option_overrides_queue_name(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    await bury(farm, "job-1")
    configure(driver="async_farm", rabbitmq_url=farm.url, name="some.other.queue")

    assert await dlq("list", "--queue", farm.queue_name) == 0
    assert capsys.readouterr().out.startswith("job-1  ")
    assert await dlq("list", "--queue", "not a name!") == 2
    assert "--queue 'not a name!'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv", [["list"], ["show", "job-1"], ["requeue", "--all"], ["purge", "--yes"]]
)
async def test_an_unreachable_broker_is_one_line_without_the_password(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    configure(rabbitmq_url=f"amqp://ops:pa55-w0rd@127.0.0.1:{port}/", connect_timeout_s=2)

    assert await dlq(*argv) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(
        f"fast-app dlq: cannot reach the broker at amqp://ops:***@127.0.0.1:{port}/"
    )
    assert captured.err.count("\n") == 1
    assert "pa55-w0rd" not in captured.err
