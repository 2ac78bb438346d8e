"""Messages from anyone with publish rights: nothing crashes, stalls or steers the farm.

Each test reproduces one way the farm broke before its messages were typed and signed
(issue 11), against real processes and a private broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aio_pika
import farm_jobs
import msgspec
import pytest
from farm_messages import heartbeat, snapshot, worker_entry
from farm_testkit import Farm, start_supervisor, wait_until

from fast_app.core.queue import configure, get_settings, queue
from fast_app.core.queue.amqp import headers as h
from fast_app.core.queue.amqp import sign
from fast_app.core.queue.envelope import JobEnvelope, JobOptions, encode_envelope, new_job_id
from fast_app.farm.listener import FarmListener
from fast_app.farm.messages import (
    WAITS_LISTED,
    Snapshot,
    command_from_dict,
    decode_heartbeat,
    decode_snapshot,
    encode_command,
    encode_snapshot,
    encode_tombstone,
    message_signature,
    new_tombstone,
)
from fast_app.farm.messages.snapshots import QueueEntry, QueueFigures

SIGNING_KEY = "the-farm-signing-key-of-32-bytes-or-more"


class NonUtf8(str):
    """A header value that pamqp sends as an AMQP long string of raw, non-UTF-8 bytes
    (as any client can); pamqp reads such a string back as ``bytes``."""

    raw: bytes

    def __new__(cls, raw: bytes) -> NonUtf8:
        value = super().__new__(cls, "?")
        value.raw = raw
        return value

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


async def publish(
    farm: Farm, exchange: str, routing_key: str, body: bytes, **properties: object
) -> None:
    connection = await aio_pika.connect(farm.url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        target = (
            channel.default_exchange
            if exchange == ""
            else await channel.get_exchange(exchange, ensure=False)
        )
        message = aio_pika.Message(body, **properties)  # type: ignore[arg-type]
        await target.publish(message, routing_key=routing_key)
    finally:
        await connection.close()


def envelope(farm: Farm, tag: str, job_id: str | None = None, **fields: object) -> JobEnvelope:
    values: dict[str, object] = {
        "format": 1,
        "id": job_id or new_job_id(),
        "function": "farm_jobs.record",
        "args": [str(farm.results), tag],
        "kwargs": {},
        "context": {},
        "options": JobOptions(),
        "enqueued_at": time.time(),
        **fields,
    }
    return JobEnvelope(**values)  # type: ignore[arg-type]


async def test_forged_tombstones_neither_kill_the_supervisor_nor_bury_a_fresh_job(
    farm: Farm,
) -> None:
    # Given a supervisor with one worker
    supervisor = await start_supervisor(
        farm, "--min-workers", "1", "--max-workers", "2", "--supervisor-id", "sup-t"
    )
    await wait_until(lambda: "consuming" in supervisor.log(), message="a consuming worker")
    pid = supervisor.pid

    # When tombstones with a NUL byte, a 200 KB id, and the id of a job about to be
    # published arrive, then the supervisor must spawn a worker
    victim = envelope(farm, "victim")
    exchange = f"{farm.queue_name}.tombstones"
    for body in (
        b'{"job_id": "a\\u0000b", "function": "x.y", "reason": "hard_timeout", "worker": "w"}',
        b'{"job_id": "' + b"a" * 200_000 + b'", "function": "x.y", "reason": "r", "worker": "w"}',
        encode_tombstone(new_tombstone(victim.id, "farm_jobs.record", "sup-t-w1")),
    ):
        await publish(farm, exchange, "", body)
    await wait_until(lambda: "ignored a tombstone message" in supervisor.log())
    await publish(farm, "", farm.queue_name, encode_envelope(victim), message_id=victim.id)
    configure(driver="async_farm", rabbitmq_url=farm.url, name=farm.queue_name)
    await wait_until(lambda: farm.tags("ran") == ["victim"], message="the fresh job to run")
    worker_pid = next(iter(supervisor.live_worker_pids().values()))
    os.kill(worker_pid, signal.SIGKILL)

    # Then the supervisor lives on and replaces the worker
    await wait_until(
        lambda: supervisor.replaced(worker_pid, 1),
        timeout=30,
        message="a replacement worker",
    )
    assert supervisor.process.poll() is None and supervisor.pid == pid
    assert "embedded null byte" not in supervisor.log()
    assert await farm.queue_depth(f"{farm.queue_name}.dead") == 0


async def test_a_job_with_a_huge_id_or_context_key_is_settled_and_the_worker_lives(
    farm: Farm,
) -> None:
    # Given a supervisor with one worker running a slow job
    supervisor = await start_supervisor(farm, "--min-workers", "1", "--max-workers", "1")
    await wait_until(lambda: "consuming" in supervisor.log(), message="a consuming worker")
    configure(driver="async_farm", rabbitmq_url=farm.url, name=farm.queue_name)
    await queue(farm_jobs.sleep_then_record, str(farm.results), "bystander", 3)
    await wait_until(lambda: "bystander" in farm.tags("started"), message="the bystander")
    worker_pids = supervisor.live_worker_pids()

    # When a job with a 70 KB id and one with a 70 KB context key (published by hand:
    # queue() refuses such a context) arrive, the latter slow
    long_id = envelope(farm, "long-id", job_id="a" * 70_000)
    long_key = envelope(
        farm,
        "long-key",
        function="farm_jobs.sleep_then_record",
        args=[str(farm.results), "long-key", 2],
        context={"k" * 70_000: "v"},
    )
    for job in (long_id, long_key):
        await publish(farm, "", farm.queue_name, encode_envelope(job), message_id="m")

    # Then the first is dead-lettered as invalid, the second runs, and the worker, its
    # heartbeats and the bystander are unharmed
    await wait_until(
        lambda: sorted(farm.tags("finished")) == ["bystander", "long-key"],
        timeout=30,
        message="both jobs to run",
    )
    [letter] = await farm.dead_letters(1)
    assert letter.headers[h.DEAD_REASON] == "invalid"
    assert farm.tags("started").count("bystander") == 1
    assert supervisor.live_worker_pids() == worker_pids
    assert "hung" not in supervisor.log()


async def test_poison_headers_are_dead_lettered_and_do_not_stall_the_worker(farm: Farm) -> None:
    # Given a worker with room for 4 deliveries at a time
    worker = await farm.start_worker(FARM_CONCURRENCY="4")

    # When 16 garbage messages carry a non-UTF-8 long string or a 100 KB header
    connection = await aio_pika.connect(farm.url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        underlay = await channel.get_underlay_channel()
        from pamqp.commands import Basic

        for number in range(16):
            headers = (
                {"x-bad": NonUtf8(b"\xff\xfe\xfd not utf-8"), "x-fast-app-traceback": "forged"}
                if number % 2
                else {"x-big": "h" * 100_000}
            )
            await underlay.basic_publish(
                b"\x00garbage",
                exchange="",
                routing_key=farm.queue_name,
                properties=Basic.Properties(headers=headers, message_id=f"poison-{number}"),
            )
    finally:
        await connection.close()
    configure(driver="async_farm", rabbitmq_url=farm.url, name=farm.queue_name)
    await queue(farm_jobs.record, str(farm.results), "after")

    # Then every one is dead-lettered, the valid job runs, and nothing stays unacked
    letters = await farm.dead_letters(16, timeout=30)
    assert {letter.headers[h.DEAD_REASON] for letter in letters} == {"invalid"}
    assert all("x-fast-app-traceback" not in letter.headers for letter in letters)
    assert all(h.DEAD_ORIGINAL_HEADERS in letter.headers for letter in letters)
    await wait_until(lambda: farm.tags("ran") == ["after"], message="the valid job")
    assert await farm.queue_depth() == 0
    assert worker.process.poll() is None


async def test_a_non_ascii_signature_header_is_a_bad_signature(farm: Farm) -> None:
    # Given a worker that requires signed jobs
    await farm.start_worker(ASYNC_FARM_SIGNING_KEY=SIGNING_KEY)
    body = encode_envelope(envelope(farm, "forged"))

    # When a job arrives whose signature header is not ASCII, or not text at all
    await publish(farm, "", farm.queue_name, body, headers={h.SIGNATURE: "é" * 64})
    await publish(farm, "", farm.queue_name, body, headers={h.SIGNATURE: NonUtf8(b"\xff" * 64)})

    # Then both are dead-lettered as bad_signature, and neither ran
    letters = await farm.dead_letters(2)
    assert [letter.headers[h.DEAD_REASON] for letter in letters] == ["bad_signature"] * 2
    assert farm.tags("ran") == []


async def test_with_a_signing_key_unsigned_commands_tombstones_and_replays_are_ignored(
    farm: Farm,
) -> None:
    # Given a signed farm of one supervisor and its worker
    key = SIGNING_KEY.encode()
    supervisor = await start_supervisor(
        farm,
        "--min-workers",
        "1",
        "--max-workers",
        "3",
        "--supervisor-id",
        "sup-s",
        ASYNC_FARM_SIGNING_KEY=SIGNING_KEY,
    )
    await wait_until(lambda: "consuming" in supervisor.log(), message="a consuming worker")
    pids = supervisor.live_worker_pids()
    control = f"{farm.queue_name}.control"

    # When well-formed but unsigned or badly signed commands arrive (shutdown, limits),
    # and an unsigned tombstone names a job that then arrives (signed)
    shutdown = encode_command(command_from_dict({"command": "shutdown"}))
    await publish(farm, control, "sup-s", shutdown)
    await publish(
        farm,
        control,
        "sup-s",
        shutdown,
        headers={h.SIGNATURE: message_signature("command", shutdown, b"x" * 32)},
    )
    job = envelope(farm, "tombstoned")
    await publish(
        farm,
        f"{farm.queue_name}.tombstones",
        "",
        encode_tombstone(new_tombstone(job.id, job.function, "sup-s-w1")),
    )
    body = encode_envelope(job)
    await publish(farm, "", farm.queue_name, body, headers={h.SIGNATURE: sign(body, key)})
    # ...and a signed command is sent twice (a copy replayed from the broker)
    limits = encode_command(command_from_dict({"command": "set_limits", "min_workers": 2}))
    signed = {h.SIGNATURE: message_signature("command", limits, key)}
    await publish(farm, control, "sup-s", limits, headers=signed)
    await wait_until(lambda: len(supervisor.live_worker_pids()) == 2, message="2 workers")
    await publish(
        farm,
        control,
        "sup-s",
        encode_command(
            command_from_dict({"command": "set_limits", "min_workers": 1, "max_workers": 1})
        ),
    )
    await publish(farm, control, "sup-s", limits, headers=signed)

    # Then the signed command was obeyed once, the others ignored and counted
    await wait_until(lambda: "replayed" in supervisor.log(), message="the replay refused")
    await wait_until(lambda: farm.tags("ran") == ["tombstoned"], message="the signed job")
    assert supervisor.process.poll() is None
    assert "ignored a command message (unsigned)" in supervisor.log()
    assert set(pids.values()) <= set(supervisor.live_worker_pids().values())
    assert len(supervisor.live_worker_pids()) == 2
    assert "received command shutdown" not in supervisor.log()


async def test_forged_snapshots_do_not_crash_status_nor_hide_a_signed_supervisor(
    farm: Farm,
) -> None:
    # Given a signed supervisor
    supervisor = await start_supervisor(
        farm, "--supervisor-id", "sup-v", ASYNC_FARM_SIGNING_KEY=SIGNING_KEY
    )
    await wait_until(lambda: "consuming" in supervisor.log(), message="a consuming worker")
    events = f"{farm.queue_name}.events"

    async def forge() -> None:
        # Malformed shapes, and a well-formed but unsigned "stopped" under its id
        while True:
            for body in (
                b'{"type": "snapshot"}',
                b'{"type": "snapshot", "supervisor_id": "x", "workers": "many"}',
                b'{"type": "snapshot", "supervisor_id": "x", "queue": [], "settings": 1}',
                b'{"type": "snapshot", "supervisor_id": "sup-v", "stopped": true}',
            ):
                await publish(farm, events, "", body)
            await asyncio.sleep(0.05)

    # When `fast-app status` runs while forged snapshots flood the events exchange
    forger = asyncio.create_task(forge())
    try:
        environment = {
            "RABBITMQ_URL": farm.url,
            "QUEUE_NAME": farm.queue_name,
            "ASYNC_FARM_SIGNING_KEY": SIGNING_KEY,
            "PATH": "/usr/bin:/bin",
        }
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "fast_app.farm", "status", "--wait", "2.5"],
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        forger.cancel()

    # Then it shows the real supervisor, without a traceback
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "supervisor sup-v" in result.stdout


async def test_a_header_table_nested_thousands_deep_is_dead_lettered_at_once(
    farm: Farm,
) -> None:
    # Given a worker on a classic queue (no delivery limit to end a redelivery loop)
    worker = await farm.start_worker(QUEUE_TYPE="classic")
    configure(
        driver="async_farm", rabbitmq_url=farm.url, name=farm.queue_name, queue_type="classic"
    )

    # When a message arrives whose header table nests 5,000 levels deep (it fits a frame)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(50_000)  # for pamqp to encode it here
    try:
        table: dict[str, object] = {}
        for _ in range(5_000):
            table = {"a": table}
        connection = await aio_pika.connect(farm.url)
        try:
            channel = await connection.channel(publisher_confirms=True)
            underlay = await channel.get_underlay_channel()
            from pamqp.commands import Basic

            await underlay.basic_publish(
                b"{}",
                exchange="",
                routing_key=farm.queue_name,
                properties=Basic.Properties(headers=table, message_id="deep"),
            )
        finally:
            await connection.close()
    finally:
        sys.setrecursionlimit(limit)
    await queue(farm_jobs.record, str(farm.results), "after")

    # Then it is read and dead-lettered like any garbage, without losing the connection
    await wait_until(lambda: farm.tags("ran") == ["after"], message="the next job")
    [letter] = await farm.dead_letters(1)
    assert letter.message_id == "deep"
    assert letter.headers[h.DEAD_REASON] == "invalid"
    assert "channel closed" not in worker.log()
    assert worker.process.poll() is None


async def test_properties_and_header_keys_that_are_not_utf8_are_dead_lettered_at_once(
    farm: Farm,
) -> None:
    # Given a worker on a classic queue (no delivery limit to end a redelivery loop)
    worker = await farm.start_worker(QUEUE_TYPE="classic")
    configure(
        driver="async_farm", rabbitmq_url=farm.url, name=farm.queue_name, queue_type="classic"
    )

    # When messages arrive whose message id, content type or a header key is not UTF-8
    # (RabbitMQ takes them from any publisher; pamqp could not read them back)
    connection = await aio_pika.connect(farm.url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        underlay = await channel.get_underlay_channel()
        from pamqp.commands import Basic

        for properties in (
            Basic.Properties(message_id=NonUtf8(b"id-\x94")),
            Basic.Properties(message_id="bad-type", content_type=NonUtf8(b"\xff/json")),
            Basic.Properties(message_id="bad-key", headers={NonUtf8(b"k\xffy"): "v"}),
        ):
            await underlay.basic_publish(
                b"{}", exchange="", routing_key=farm.queue_name, properties=properties
            )
    finally:
        await connection.close()
    await queue(farm_jobs.record, str(farm.results), "after")

    # Then each is read and dead-lettered, without the worker losing its connection
    await wait_until(lambda: farm.tags("ran") == ["after"], message="the next job")
    letters = await farm.dead_letters(3)
    assert {letter.headers[h.DEAD_REASON] for letter in letters} == {"invalid"}
    assert "channel closed" not in worker.log()
    assert worker.process.poll() is None


# -- the fields added lately: queues of a snapshot, a worker's queue, queue waits ----------

HUGE = 2**53  # the bound of every count in a farm message


@contextlib.asynccontextmanager
async def listening() -> AsyncIterator[dict[str, dict[str, Any]]]:
    """The latest snapshot of each supervisor heard, by id, decoded as status decodes them."""
    heard: dict[str, dict[str, Any]] = {}

    def keep(snapshot: dict[str, Any]) -> None:
        heard[snapshot["supervisor_id"]] = snapshot

    listener = FarmListener(get_settings(), keep, connection_name="test listener")
    await listener.start()
    try:
        yield heard
    finally:
        await listener.close()


@contextlib.asynccontextmanager
async def forging(farm: Farm, body: Callable[[], bytes]) -> AsyncIterator[None]:
    """Publish ``body()`` on the events exchange ten times a second meanwhile (unsigned)."""
    connection = await aio_pika.connect(farm.url)
    channel = await connection.channel()
    exchange = await channel.get_exchange(f"{farm.queue_name}.events", ensure=False)

    async def forge() -> None:
        while True:
            await exchange.publish(aio_pika.Message(body()), routing_key="")
            await asyncio.sleep(0.1)

    forger = asyncio.create_task(forge())
    try:
        yield
    finally:
        forger.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await forger
        await connection.close()


def run_status(farm: Farm) -> subprocess.CompletedProcess[str]:
    environment = {"RABBITMQ_URL": farm.url, "QUEUE_NAME": farm.queue_name, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "fast_app.farm", "status", "--wait", "1.5"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def queue_entry(name: str, **fields: Any) -> QueueEntry:
    values: dict[str, Any] = {
        "name": name,
        "min_workers": 0,
        "max_workers": 1024,
        "desired_workers": 1024,
        "workers": HUGE,
        "figures": QueueFigures(ready=HUGE, unacked=HUGE, consumers=HUGE, dead=HUGE, delayed=HUGE),
        "completion_rate": 1e9,
        "enqueue_rate": 1e9,
        **fields,
    }
    return QueueEntry(**values)


def absurd_peer(farm: Farm) -> Snapshot:
    """A snapshot at every bound that still decodes: 64 queues (the farm's own first)
    ending and receiving 1e9 jobs/s with times to clear of 0 and 1e9 s, waits of 1e9 s counted
    2**53 times, read far in the future; a worker holding 2**53 jobs of the farm's queue."""
    names = [farm.queue_name, *(f"{farm.queue_name}.forged-{n}" for n in range(63))]
    queues = [
        queue_entry(
            name,
            clear_s=0.0 if number % 2 else 1e9,  # a negative one does not decode
            wait_p50_s=1e9,
            wait_max_s=1e9,
            waits_counted=HUGE,
            read_at=8e9,
        )
        for number, name in enumerate(names)
    ]
    workers = [worker_entry("forger-w0", HUGE, queue=farm.queue_name)]
    return snapshot(
        "forger",
        concurrency=HUGE,
        workers=workers,
        queues=queues,
        completion_rate=1e9,
        enqueue_rate=1e9,
    )


async def test_a_peer_claiming_absurd_rates_on_64_queues_neither_overscales_nor_stops_status(
    farm: Farm,
) -> None:
    # Given a supervisor of at most 2 workers, none yet, hearing an unsigned "peer"
    # whose snapshot is absurd in every figure yet within every bound (so accepted)
    forged = absurd_peer(farm)
    assert len(decode_snapshot(encode_snapshot(forged)).queues) == 64
    supervisor = await start_supervisor(
        farm, "--min-workers", "0", "--max-workers", "2", "--supervisor-id", "sup-r"
    )

    def body() -> bytes:
        return encode_snapshot(msgspec.structs.replace(forged, at=time.time()))

    async with listening() as heard, forging(farm, body):
        await wait_until(lambda: {"sup-r", "forger"} <= heard.keys(), message="both heard")
        first_heard_at = heard["sup-r"]["at"]

        # When a backlog of 12 jobs arrives
        for number in range(12):
            await queue(farm_jobs.sleep_then_record, str(farm.results), f"job-{number}", 0.2)
        most_workers = most_desired = 0

        def worked_off() -> bool:
            nonlocal most_workers, most_desired
            most_workers = max(most_workers, len(supervisor.live_worker_pids()))
            most_desired = max(most_desired, heard["sup-r"]["desired_workers"])
            return len(farm.tags("finished")) == 12

        await wait_until(worked_off, timeout=60, message="the backlog worked off")
        # ...and an operator asks for the farm's status meanwhile
        status = await asyncio.to_thread(run_status, farm)

    # Then the supervisor scaled up for the backlog (the peer's claimed jobs in flight
    # count as busy slots) but never past its maximum; it lives on, its own snapshots
    # still readable. (The peer's pace feeds only the time to clear it shows, never a
    # decision: unsigned farms trust it, see docs/security.md.)
    assert 1 <= most_workers <= 2
    assert 1 <= most_desired <= 2
    assert supervisor.process.poll() is None
    assert "Traceback" not in supervisor.log()
    assert heard["sup-r"]["at"] > first_heard_at
    # And status prints every queue, the real supervisor and the forged one
    assert status.returncode == 0, status.stderr
    assert "Traceback" not in status.stderr
    assert "supervisor sup-r" in status.stdout
    assert "supervisor forger" in status.stdout
    assert f"{farm.queue_name}.forged-62" in status.stdout
    assert "≈" in status.stdout  # two supervisors' waits on the farm's queue, merged


def over_the_bounds(farm: Farm) -> list[bytes]:
    """Forged snapshots that each break one bound of a recent field: 65 queues, a worker
    whose queue is 201 characters long, one whose queue holds a NUL."""
    name = farm.queue_name
    return [
        encode_snapshot(
            snapshot("forger", queues=[queue_entry(f"{name}.q{n}") for n in range(65)])
        ),
        encode_snapshot(snapshot("forger", workers=[worker_entry("forger-w0", queue="q" * 201)])),
        encode_snapshot(
            snapshot("forger", workers=[worker_entry("forger-w0", queue=f"{name}\x00x")])
        ),
    ]


async def test_snapshots_over_the_bounds_of_queues_are_refused_and_counted(farm: Farm) -> None:
    # Given a supervisor, and snapshots forged with 65 queues, or a worker whose queue is
    # 201 characters long or holds a NUL (each refused by the decoder, for that field)
    forged = over_the_bounds(farm)
    for body in forged:
        with pytest.raises(msgspec.ValidationError, match=r"\$\.(queues|workers\[0\]\.queue)"):
            decode_snapshot(body)
    supervisor = await start_supervisor(
        farm, "--min-workers", "1", "--max-workers", "1", "--supervisor-id", "sup-x"
    )
    await wait_until(lambda: "consuming" in supervisor.log(), message="a consuming worker")

    async with listening() as heard:
        # When each is published once
        for body in forged:
            await publish(farm, f"{farm.queue_name}.events", "", body)

        # Then the supervisor refuses and counts all three, and goes on
        await wait_until(
            lambda: heard.get("sup-x", {}).get("refused", {}).get("snapshot_malformed") == 3,
            message="3 snapshots refused",
        )
    assert "ignored a snapshot message (malformed)" in supervisor.log()
    assert "forger" not in heard  # nor does a reader of snapshots (status, top) take them
    assert supervisor.process.poll() is None
    assert len(supervisor.live_worker_pids()) == 1


def heartbeat_line(waits: str) -> bytes:
    """A well-formed heartbeat line but for ``waits``, the raw JSON of its waits."""
    beat = msgspec.to_builtins(heartbeat(waits=[]))
    return json.dumps({**beat, "waits": "WAITS"}).replace('"WAITS"', waits).encode() + b"\n"


async def test_heartbeats_with_waits_out_of_bounds_are_refused_and_the_worker_lives(
    farm: Farm,
) -> None:
    # Given a supervisor's worker running a job that writes heartbeats on its own link:
    # one listing a wait more than WAITS_LISTED, one with NaN, one with 1e12 s; then a
    # well-formed one (taken: the lines differ in their waits only)
    supervisor = await start_supervisor(
        farm, "--min-workers", "1", "--max-workers", "1", "--supervisor-id", "sup-h"
    )
    await wait_until(lambda: "consuming" in supervisor.log(), message="a consuming worker")
    [worker_pid] = supervisor.live_worker_pids().values()
    waits = [json.dumps([0.5] * (WAITS_LISTED + 1)), "[0.5, NaN]", "[0.5, 1e12]", "[0.5]"]
    lines = [heartbeat_line(raw).decode() for raw in waits]

    async with listening() as heard:
        # When the job runs
        await queue(farm_jobs.write_on_link, str(farm.results), "forger", lines)
        await wait_until(lambda: farm.tags("ran") == ["forger"], message="the forging job")

        # Then the supervisor refuses and counts the three, and the worker counts as alive
        await wait_until(
            lambda: heard.get("sup-h", {}).get("refused", {}).get("heartbeat_malformed") == 3,
            message="3 heartbeats refused",
        )
        await queue(farm_jobs.record, str(farm.results), "after")
        await wait_until(lambda: farm.tags("ran") == ["forger", "after"], message="the next job")
        [listed] = heard["sup-h"]["workers"]
    assert listed["pid"] == worker_pid
    assert supervisor.live_worker_pids() == {listed["worker_id"]: worker_pid}
    assert "ignored a heartbeat message (malformed)" in supervisor.log()
    assert "hung" not in supervisor.log()


def test_a_heartbeat_with_a_negative_wait_is_refused() -> None:
    # Given a heartbeat whose waits hold a negative one (as only a forger writes them)
    line = heartbeat_line("[0.5, -1.0]")

    # When the supervisor decodes it, then it is refused as the other bounds are
    with pytest.raises(msgspec.ValidationError, match=r"\$\.waits\[1\]"):
        decode_heartbeat(line)
