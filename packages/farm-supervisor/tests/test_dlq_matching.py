"""fast-app dlq with a filter: list the matches, requeue or purge only those, on a real broker."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import signal
import time
from typing import Any

import aio_pika
import farm_jobs
import pytest
from farm_testkit import Farm

from fast_app.core.queue import queue
from fast_app.core.queue.amqp import Topology
from fast_app.core.queue.amqp import headers as h
from fast_app.core.queue.settings import get_settings
from fast_app.core.queue.worker_side import JobEnvelope, JobOptions, encode_envelope
from fast_app.farm.cli.dlq import add_dlq_parser, run_dlq
from fast_app.farm.dead_letters import list_dead_letters


async def dlq(*argv: str) -> int:
    """Run ``fast-app dlq ARGV`` as the CLI would (in a thread: it runs its own loop)."""
    parser = argparse.ArgumentParser(prog="fast-app")
    add_dlq_parser(parser.add_subparsers(dest="command", required=True))
    options = parser.parse_args(["dlq", *argv])
    return await asyncio.to_thread(run_dlq, options)


async def bury(
    farm: Farm,
    job_id: str,
    *,
    function: str,
    reason: str,
    error: str,
    failed_at: dt.datetime | None = None,
    args: list[Any] | None = None,
) -> None:
    """A worker's dead letter of job ``job_id`` in ``<queue>.dead``."""
    body = encode_envelope(
        JobEnvelope(
            format=1,
            id=job_id,
            function=function,
            args=args or [],
            kwargs={},
            context={},
            options=JobOptions(retries=0),
            enqueued_at=time.time() - 60,
            attempt=1,
            not_before=None,
        )
    )
    moment = failed_at or dt.datetime.now(dt.UTC)
    headers: dict[str, aio_pika.abc.FieldValue] = {
        h.DEAD_REASON: reason,
        h.DEAD_ERROR_TYPE: "builtins.RuntimeError",
        h.DEAD_ERROR: error,
        h.DEAD_TRACEBACK: f"Traceback (most recent call last):\nRuntimeError: {error}\n",
        h.DEAD_ATTEMPTS: 1,
        h.DEAD_WORKER: "host-1",
        h.DEAD_FAILED_AT: moment.isoformat(timespec="milliseconds"),
    }
    connection = await aio_pika.connect(farm.url)
    try:
        channel = await connection.channel()
        topology = Topology.from_settings(get_settings())
        await topology.declare(channel)
        exchange = await channel.get_exchange(topology.dead_exchange)
        message = aio_pika.Message(
            body, headers=headers, message_id=job_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        )
        await exchange.publish(message, routing_key=farm.queue_name)
    finally:
        await connection.close()


async def bury_mixed(farm: Farm) -> None:
    """Given two report jobs that failed on a timeout, one report job refused as invalid,
    and an email job that failed otherwise."""
    await bury(farm, "report-1", function="app.reports.build", reason="failed", error="DB Timeout")
    await bury(farm, "report-2", function="app.reports.mail", reason="failed", error="timeout")
    await bury(farm, "report-3", function="app.reports.build", reason="invalid", error="timeout")
    await bury(farm, "email-1", function="app.emails.send", reason="failed", error="refused")


async def dead_ids(farm: Farm) -> set[str | None]:
    return {letter.job_id for letter in await list_dead_letters(get_settings())}


async def test_list_shows_only_the_dead_letters_the_filter_matches(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    await bury_mixed(farm)

    code = await dlq("list", "--function", "app.reports", "--reason", "failed", "--grep", "TIMEOUT")

    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[0] for line in lines] == ["report-1", "report-2"]


async def test_list_since_leaves_out_older_dead_letters(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    await bury(farm, "old-1", function="app.x", reason="failed", error="e", failed_at=old)
    await bury(farm, "new-1", function="app.x", reason="failed", error="e")

    assert await dlq("list", "--since", "1h") == 0
    assert [line.split("  ")[0] for line in capsys.readouterr().out.splitlines()] == ["new-1"]

    assert await dlq("list", "--since", "soon") == 2
    assert "--since: 'soon' is neither a duration" in capsys.readouterr().err


async def test_list_with_no_match_says_what_it_looked_for(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    await bury_mixed(farm)

    assert await dlq("list", "--reason", "soft_timeout") == 0

    assert capsys.readouterr().out == (
        f"no dead letters matching reason=soft_timeout in {farm.queue_name}.dead\n"
    )


async def test_requeue_match_requeues_only_the_matches_and_counts_the_others(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    await bury_mixed(farm)

    code = await dlq("requeue", "--match", "--function", "app.reports", "--reason", "failed")

    assert code == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["requeued report-1", "requeued report-2"]
    assert out[-1] == "2 requeued, 0 skipped, 0 not found, 2 left alone (not matching)"
    assert await dead_ids(farm) == {"report-3", "email-1"}
    assert await farm.queue_depth(farm.queue_name) == 2


async def test_requeue_match_of_jobs_a_real_worker_dead_lettered(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given two functions that failed on a worker, each dead-lettered as "failed"
    worker = await farm.start_worker()
    await queue(farm_jobs.fail, str(farm.results), "one", __retries=0)
    traced = await queue(farm_jobs.traced_fail, str(farm.results), "two", __retries=0)
    deadline = time.monotonic() + 30
    while await farm.queue_depth(f"{farm.queue_name}.dead") < 2:
        assert time.monotonic() < deadline, "the jobs were not dead-lettered"
        await asyncio.sleep(0.05)
    worker.send(signal.SIGTERM)  # nothing may run the requeued job before it is counted
    await worker.wait_exit()

    # When only the traced one is requeued
    code = await dlq("requeue", "--match", "--function", "farm_jobs.traced_*")

    # Then it is back in the jobs queue and the other stays dead
    assert code == 0
    assert capsys.readouterr().out.splitlines()[0] == f"requeued {traced.id}"
    assert [letter.function for letter in await list_dead_letters(get_settings())] == [
        "farm_jobs.fail"
    ]
    assert await farm.queue_depth(farm.queue_name) == 1


async def test_purge_match_removes_only_the_matches(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    await bury_mixed(farm)

    assert await dlq("purge", "--match", "--grep", "timeout", "--yes") == 0

    assert capsys.readouterr().out == (
        f"purged 3 dead letters matching grep='timeout' from {farm.queue_name}.dead; "
        "1 left alone (not matching)\n"
    )
    assert await dead_ids(farm) == {"email-1"}


async def test_purge_match_asks_first_saying_how_many_match(
    farm: Farm, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await bury_mixed(farm)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    assert await dlq("purge", "--match", "--reason", "invalid") == 1
    assert capsys.readouterr().out == (
        f"Purge 1 dead letters matching reason=invalid from {farm.queue_name}.dead? [y/N] "
        "nothing purged\n"
    )
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert await dlq("purge", "--match", "--reason", "invalid") == 1
    assert "confirm with --yes" in capsys.readouterr().err
    assert len(await dead_ids(farm)) == 4


@pytest.mark.parametrize(
    "argv",
    [
        ["purge", "--reason", "failed", "--yes"],  # a forgotten --match purges nothing
        ["requeue", "--function", "app.reports"],
        ["purge", "--match", "--yes"],  # --match with no criterion
        ["requeue", "--match"],
        ["requeue", "--match", "--all", "--reason", "failed"],
    ],
)
async def test_bulk_commands_need_match_and_a_filter_together(
    farm: Farm, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    await bury_mixed(farm)

    assert await dlq(*argv) == 2

    assert capsys.readouterr().err.startswith(f"fast-app dlq: {argv[0]}: ")
    assert len(await dead_ids(farm)) == 4
