"""fast-app dlq over named queues: every queue the farm knows by default, --queue to
choose, and a requeued job back in the queue it was dead-lettered from."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import time

import aio_pika
import pytest
from farm_testkit import Farm

from fast_app.core.queue import configure
from fast_app.core.queue.amqp import Topology
from fast_app.core.queue.amqp import headers as h
from fast_app.core.queue.settings import get_settings
from fast_app.core.queue.worker_side import JobEnvelope, JobOptions, encode_envelope
from fast_app.farm.cli.dlq import add_dlq_parser, run_dlq
from fast_app.farm.dead_letters import list_dead_letters

T0 = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


async def dlq(*argv: str) -> int:
    """Run ``fast-app dlq ARGV`` as the CLI would (in a thread: it runs its own loop)."""
    parser = argparse.ArgumentParser(prog="fast-app")
    add_dlq_parser(parser.add_subparsers(dest="command", required=True))
    options = parser.parse_args(["dlq", *argv])
    return await asyncio.to_thread(run_dlq, options)


async def bury(farm: Farm, jobs_queue: str, job_id: str, *, minutes: int = 0) -> None:
    """A worker's dead letter of job ``job_id`` in ``<jobs_queue>.dead``."""
    body = encode_envelope(
        JobEnvelope(
            format=1,
            id=job_id,
            function="farm_jobs.record_queue",
            args=["results", job_id],
            kwargs={},
            context={},
            options=JobOptions(retries=0),
            enqueued_at=time.time() - 60,
            attempt=1,
        )
    )
    headers: dict[str, aio_pika.abc.FieldValue] = {
        h.DEAD_REASON: "failed",
        h.DEAD_ATTEMPTS: 1,
        h.DEAD_FAILED_AT: (T0 + dt.timedelta(minutes=minutes)).isoformat(),
    }
    settings = get_settings()
    topology = Topology(jobs_queue, settings.queue_type, settings.delivery_limit)
    connection = await aio_pika.connect(farm.url)
    try:
        channel = await connection.channel()
        await topology.declare(channel)
        exchange = await channel.get_exchange(topology.dead_exchange)
        message = aio_pika.Message(body, headers=headers, message_id=job_id)
        await exchange.publish(message, routing_key=topology.jobs)
    finally:
        await connection.close()


async def job_ids_in(farm: Farm, name: str) -> list[str]:
    """Ids of the jobs in queue ``name`` (taken off it), ``[]`` when it does not exist."""
    connection = await aio_pika.connect(farm.url)
    try:
        channel = await connection.channel()
        try:
            source = await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return []
        ids = []
        while (message := await source.get(no_ack=True, fail=False)) is not None:
            ids.append(json.loads(message.body)["id"])
        return ids
    finally:
        await connection.close()


@pytest.fixture
def queues(farm: Farm, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """Two named queues the farm knows: one served (FARM_QUEUES), one routed to."""
    emails, reports = f"{farm.queue_name}.emails", f"{farm.queue_name}.reports"
    monkeypatch.setenv("FARM_QUEUES", f"{emails}=1..2")
    configure(
        driver="async_farm",
        rabbitmq_url=farm.url,
        name=farm.queue_name,
        routes=f"farm_jobs.reports={reports}",
    )
    return emails, reports


async def test_list_reads_every_queue_the_farm_knows_and_names_each_letter_s_queue(
    farm: Farm, queues: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    emails, reports = queues
    await bury(farm, reports, "report-0001", minutes=2)
    await bury(farm, emails, "email-0001", minutes=1)
    await bury(farm, farm.queue_name, "default-0001", minutes=3)

    assert await dlq("list") == 0

    lines = capsys.readouterr().out.splitlines()
    assert [(line.split("  ")[0], line.split("  ")[-1]) for line in lines] == [
        ("email-0001", f"queue={emails}"),
        ("report-0001", f"queue={reports}"),
        ("default-0001", f"queue={farm.queue_name}"),
    ]
    assert await dlq("list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(entry["job_id"], entry["queue"]) for entry in listed] == [
        ("email-0001", emails),
        ("report-0001", reports),
        ("default-0001", farm.queue_name),
    ]
    assert await dlq("show", "report-0001") == 0
    assert f"Queue:      {reports} (read from {reports}.dead;" in capsys.readouterr().out


async def test_queue_limits_the_reading_to_the_queues_given(
    farm: Farm, queues: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    emails, reports = queues
    await bury(farm, reports, "report-0001")
    await bury(farm, emails, "email-0001")
    await bury(farm, farm.queue_name, "default-0001")

    assert await dlq("list", "--queue", reports) == 0
    assert [line.split("  ")[0] for line in capsys.readouterr().out.splitlines()] == ["report-0001"]
    assert await dlq("list", "--queue", f"{reports},{emails}", "--json") == 0
    listed = {entry["job_id"] for entry in json.loads(capsys.readouterr().out)}
    assert listed == {"report-0001", "email-0001"}
    assert await dlq("list", "--queue", reports, "--queue", farm.queue_name, "--json") == 0
    listed = {entry["job_id"] for entry in json.loads(capsys.readouterr().out)}
    assert listed == {"report-0001", "default-0001"}
    assert await dlq("show", "email-0001", "--queue", reports) == 1
    assert f"no dead letter of job email-0001 in {reports}.dead" in capsys.readouterr().err


async def test_requeue_sends_a_job_back_to_its_own_queue_never_the_default(
    farm: Farm, queues: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    emails, reports = queues
    await bury(farm, reports, "a1b2c3d4-report")
    await bury(farm, emails, "e5f6a7b8-email")

    # A unique prefix, whatever queue its dead letter is in.
    assert await dlq("requeue", "a1b2c3") == 0

    assert capsys.readouterr().out.splitlines() == [
        f"requeued a1b2c3d4-report into {reports}",
        "1 requeued, 0 skipped, 0 not found",
    ]
    assert await job_ids_in(farm, reports) == ["a1b2c3d4-report"]
    assert await job_ids_in(farm, farm.queue_name) == []
    assert await job_ids_in(farm, emails) == []
    assert await farm.queue_depth(f"{reports}.dead") == 0
    assert await farm.queue_depth(f"{emails}.dead") == 1

    # --all: each job to its own queue.
    await bury(farm, farm.queue_name, "default-0001")
    assert await dlq("requeue", "--all") == 0
    assert sorted(capsys.readouterr().out.splitlines()[:2]) == [
        f"requeued default-0001 into {farm.queue_name}",
        f"requeued e5f6a7b8-email into {emails}",
    ]
    assert await job_ids_in(farm, emails) == ["e5f6a7b8-email"]
    assert await job_ids_in(farm, farm.queue_name) == ["default-0001"]
    assert await job_ids_in(farm, reports) == []


async def test_a_prefix_matching_jobs_in_two_queues_is_ambiguous_and_names_both(
    farm: Farm, queues: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    emails, reports = queues
    await bury(farm, reports, "0f3a9c11-report")
    await bury(farm, emails, "0f3a9c22-email")
    ambiguity = (
        "fast-app dlq: job id prefix 0f3a9c is ambiguous: it matches "
        f"0f3a9c11-report (in {reports}), 0f3a9c22-email (in {emails})\n"
    )

    assert await dlq("show", "0f3a9c") == 1
    assert capsys.readouterr().err == ambiguity
    assert await dlq("requeue", "0f3a9c") == 1
    assert capsys.readouterr().err == ambiguity

    # Nothing moved; in one queue, the prefix is unique again.
    assert await farm.queue_depth(f"{reports}.dead") == 1
    assert await farm.queue_depth(f"{emails}.dead") == 1
    assert await dlq("show", "0f3a9c", "--queue", emails) == 0
    assert "Job ID:     0f3a9c22-email" in capsys.readouterr().out


async def test_purge_of_one_queue_leaves_the_others(
    farm: Farm, queues: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    emails, reports = queues
    await bury(farm, reports, "report-0001")
    await bury(farm, emails, "email-0001")

    assert await dlq("purge", "--yes", "--queue", reports) == 0

    assert capsys.readouterr().out == f"purged 1 dead letters from {reports}.dead\n"
    letters = await list_dead_letters(get_settings(), queues=[emails, reports])
    assert [(letter.job_id, letter.queue) for letter in letters] == [("email-0001", emails)]


async def test_a_bad_farm_setting_stops_dlq_unless_queues_are_given(
    farm: Farm, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FARM_QUEUES", "emails=5..1")

    assert await dlq("list") == 2
    assert "FARM_QUEUES" in capsys.readouterr().err
    assert await dlq("list", "--queue", farm.queue_name) == 0
