"""fast-app status, queue by queue: from the supervisors' snapshots, and from the broker
itself when no supervisor serves a queue the farm knows."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aio_pika
import farm_jobs
import pytest
from farm_cli import run_status, status_json_until
from farm_messages import snapshot, worker_entry
from farm_testkit import Farm, start_supervisor, wait_until

from fast_app.core.queue import queue
from fast_app.core.queue.amqp import Topology
from fast_app.core.queue.settings import get_settings
from fast_app.farm.broker_queues import QueueReading
from fast_app.farm.cli._farm_status import farm_status
from fast_app.farm.cli.status import render_status, status_json
from fast_app.farm.messages.snapshots import (
    QueueEntry,
    QueueFigures,
    WaitingJobOf,
    decode_snapshot,
    encode_snapshot,
)
from fast_app.farm.supervisor._broker import SupervisorBroker

# -- helpers ------------------------------------------------------------------------


async def bury(farm: Farm, jobs_queue: str, job_id: str) -> None:
    """A dead letter of ``job_id`` in ``<jobs_queue>.dead``, the queues declared."""
    connection = await aio_pika.connect(farm.url)
    try:
        channel = await connection.channel()
        settings = get_settings()
        topology = Topology(jobs_queue, settings.queue_type, settings.delivery_limit)
        await topology.declare(channel)
        exchange = await channel.get_exchange(topology.dead_exchange)
        await exchange.publish(
            aio_pika.Message(b"{}", message_id=job_id), routing_key=topology.jobs
        )
    finally:
        await connection.close()


async def queue_exists(farm: Farm, name: str) -> bool:
    connection = await aio_pika.connect(farm.url)
    try:
        channel = await connection.channel()
        try:
            await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return False
        return True
    finally:
        await connection.close()


def rows_by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in report["queues"]}


# -- with supervisors ---------------------------------------------------------------


async def test_status_of_a_two_queue_farm_has_one_row_per_queue(farm: Farm) -> None:
    # Given a supervisor serving two queues, a delayed email and a dead report.
    emails, reports = f"{farm.queue_name}.emails", f"{farm.queue_name}.reports"
    supervisor = await start_supervisor(
        farm, "--queues", f"{emails}=1..2,{reports}=0..3", "--supervisor-id", "sup-q"
    )
    await wait_until(lambda: len(supervisor.live_worker_pids()) == 1, message="the emails worker")
    await bury(farm, reports, "dead-report")
    await queue(farm_jobs.record_queue, str(farm.results), "later", __queue=emails, __delay_s=600)
    await queue(farm_jobs.record_queue, str(farm.results), "now", __queue=emails)
    await wait_until(lambda: farm.tags("ran") == ["now"], message="the email that is due")

    # When status is asked, once the supervisor has counted them.
    def counted(report: dict[str, Any]) -> bool:
        rows = rows_by_name(report)
        return (
            rows.get(emails, {}).get("delayed") == 1
            and rows.get(reports, {}).get("dead") == 1
            and rows[emails]["waits_counted"] >= 1
        )

    report = await status_json_until(farm, counted)

    # Then each queue it serves has its row, from its snapshot.
    assert report["healthy"] is True
    assert report["problems"] == []
    rows = rows_by_name(report)
    email_row, report_row = rows[emails], rows[reports]
    assert email_row["supervisors"] == report_row["supervisors"] == ["sup-q"]
    assert email_row["source"] == "supervisors"
    assert (email_row["ready"], email_row["delayed"], email_row["dead"]) == (0, 1, 0)
    # Its delayed email (600 s) waits in the 409.6 s level: due within twice that.
    assert email_row["next_due_within_s"] == pytest.approx(819.2)
    assert report_row["next_due_within_s"] is None
    assert (email_row["workers"], email_row["min_workers"], email_row["max_workers"]) == (1, 1, 2)
    assert email_row["consumers"] == 1
    assert email_row["wait_p50_s"] is not None and email_row["wait_max_s"] is not None
    assert email_row["clear_s"] == 0
    assert (report_row["ready"], report_row["dead"], report_row["delayed"]) == (0, 1, 0)
    assert (report_row["workers"], report_row["min_workers"], report_row["max_workers"]) == (
        0,
        0,
        3,
    )
    for row in (email_row, report_row):
        assert row["read_age_s"] is not None and row["read_age_s"] < 5
        assert row["stale"] is False
    # QUEUE_NAME is known but served by no supervisor here: read from the broker.
    default_row = rows[farm.queue_name]
    assert default_row["source"] == "broker"
    assert (default_row["ready"], default_row["consumers"], default_row["exists"]) == (0, 0, True)
    assert default_row["unacked"] is None and default_row["workers"] is None
    [heard] = report["supervisors"]
    assert heard["supervisor_id"] == "sup-q"
    assert {worker["queue"] for worker in heard["workers"]} == {emails}

    # And the text has a header, the three rows, then the supervisor with its workers.
    finished = await asyncio.to_thread(run_status, farm, "--wait", "1")
    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.splitlines()
    assert lines[0].split()[:6] == ["QUEUE", "READY", "UNACKED", "DELAYED", "DEAD", "CONSUMERS"]
    table = {line.split()[0]: line.split() for line in lines[1:4]}
    assert table[emails][1:6] == ["0", "0", "1", "0", "1"]
    assert table[emails][6:8] == ["1/1", "(1..2)"]
    assert "next delayed due within 14m" in lines[1] + lines[2] + lines[3]
    assert table[reports][1:8] == ["0", "0", "0", "1", "0", "0/0", "(0..3)"]
    assert table[farm.queue_name][1:7] == ["0", "?", "0", "0", "0", "?"]
    assert "no supervisor serves it" in " ".join(table[farm.queue_name])
    # then the functions that ran (the due email) and the last hour, then the supervisor
    assert lines[4].split()[:2] == ["FUNCTION", "QUEUE"]
    assert lines[5].split()[:2] == ["farm_jobs.record_queue", emails]
    supervisor_line = next(n for n, line in enumerate(lines) if line.startswith("supervisor "))
    assert lines[supervisor_line - 1].startswith("last hour: 1 succeeded")
    assert lines[supervisor_line].startswith("supervisor sup-q on ")
    assert f"serving {emails}, {reports};" in lines[supervisor_line]
    assert lines[supervisor_line + 1].rstrip().endswith(f"on {emails}")


async def test_a_paused_farm_with_a_backlog_says_how_long_its_oldest_job_waited_at_least(
    farm: Farm,
) -> None:
    # Given a paused supervisor (its worker cancels its consumer), then jobs arriving.
    supervisor = await start_supervisor(
        farm, "--min-workers", "1", "--max-workers", "1", "--supervisor-id", "sup-p"
    )
    await wait_until(lambda: "consuming" in supervisor.log(), message="a consuming worker")
    sender = SupervisorBroker(get_settings(), "test-sender", lambda _command: None)
    try:
        await sender.send_command("sup-p", {"command": "pause"})
    finally:
        await sender.close()
    await wait_until(lambda: "pauses consumption" in supervisor.log(), message="the pause")
    queued_at = time.time()
    for number in range(3):
        await queue(farm_jobs.record, str(farm.results), f"held-{number}")

    # When status is asked once the supervisor has watched it for a few seconds.
    def watched(report: dict[str, Any]) -> bool:
        row = rows_by_name(report).get(farm.queue_name, {})
        return (row.get("oldest_wait_at_least_s") or 0) >= 3

    report = await status_json_until(farm, watched)

    # Then the oldest job has waited at least as long as it has seen no consumer — a
    # lower bound, never more than the jobs have really waited.
    row = rows_by_name(report)[farm.queue_name]
    assert (row["ready"], row["consumers"]) == (3, 0)
    assert row["wait_p50_s"] is None  # no job started: no measured wait
    assert 3 <= row["oldest_wait_at_least_s"] <= time.time() - queued_at
    finished = await asyncio.to_thread(run_status, farm, "--wait", "1")
    [line] = [line for line in finished.stdout.splitlines() if line.startswith(farm.queue_name)]
    assert "oldest ≥" in line and "NO CONSUMER for ≥" in line
    assert farm.tags("ran") == []


# -- without a supervisor -----------------------------------------------------------


async def test_without_a_supervisor_status_shows_the_backlog_from_the_broker_and_exits_1(
    farm: Farm,
) -> None:
    # Given jobs waiting in QUEUE_NAME and a routed queue, a dead letter, and no farm.
    emails, reports = f"{farm.queue_name}.emails", f"{farm.queue_name}.reports"
    for tag in ("a", "b", "c"):
        await queue(farm_jobs.record, str(farm.results), tag)
    await queue(farm_jobs.record_queue, str(farm.results), "soon", __queue=reports, __delay_s=600)
    await bury(farm, reports, "dead-report")
    settings = {
        "FARM_QUEUES": f"{emails}=0..2",  # never declared: absent
        "QUEUE_ROUTES": f"farm_jobs.record_queue={reports}",
    }

    # When status is run.
    finished = await asyncio.to_thread(run_status, farm, "--wait", "0.5", **settings)

    # Then the backlog without consumer comes first, the queues are read from the broker,
    # and the exit code says the farm needs attention.
    assert finished.returncode == 1, finished.stderr
    lines = finished.stdout.splitlines()
    assert lines[0] == (
        f"BACKLOG WITHOUT CONSUMER: {farm.queue_name} holds 3 ready jobs and nothing consumes it"
    )
    assert lines[1].startswith(f"NO SUPERVISOR HEARD on {farm.queue_name}.events within 0.5s")
    table = {line.split()[0]: line for line in lines[3:]}
    assert table[farm.queue_name].split()[1:7] == ["3", "?", "0", "0", "0", "?"]
    assert "NO CONSUMER" in table[farm.queue_name]
    assert table[reports].split()[1:6] == ["0", "?", "1", "1", "0"]
    assert "absent" in table[emails]
    assert table[reports].endswith("no supervisor heard: read from the broker")
    assert not [line for line in lines if line.startswith("supervisor ")]

    # And --json says the same, for a monitoring probe.
    finished = await asyncio.to_thread(run_status, farm, "--json", "--wait", "0.5", **settings)
    assert finished.returncode == 1, finished.stderr
    report = json.loads(finished.stdout)
    assert report["healthy"] is False
    assert report["supervisors"] == []
    rows = rows_by_name(report)
    assert list(rows) == [farm.queue_name, emails, reports]
    assert rows[farm.queue_name]["unconsumed_backlog"] is True
    assert (rows[reports]["ready"], rows[reports]["delayed"], rows[reports]["dead"]) == (0, 1, 1)
    assert rows[emails]["exists"] is False and rows[emails]["ready"] is None
    # Reading declared nothing.
    assert not await queue_exists(farm, emails)


async def test_without_a_supervisor_or_a_backlog_status_still_exits_1(farm: Farm) -> None:
    finished = await asyncio.to_thread(run_status, farm, "--wait", "0.3")

    assert finished.returncode == 1, finished.stderr
    first, header, row = finished.stdout.splitlines()
    assert first.startswith("NO SUPERVISOR HEARD")
    assert header.startswith("QUEUE")
    assert row.split()[0] == farm.queue_name
    assert "absent" in row  # nothing was ever published: no queue yet


# -- what the rows say, without a broker ---------------------------------------------


def entry(name: str, **fields: Any) -> QueueEntry:
    values: dict[str, Any] = {
        "name": name,
        "min_workers": 1,
        "max_workers": 4,
        "desired_workers": 2,
        "workers": 2,
        "figures": QueueFigures(ready=10, unacked=3, consumers=4, dead=0, delayed=0),
        "completion_rate": 5.0,
        "enqueue_rate": 5.0,
        "read_at": time.time(),
        **fields,
    }
    return QueueEntry(**values)


def test_two_supervisors_of_one_queue_add_up_and_the_freshest_broker_read_wins() -> None:
    now = time.time()
    older = entry(
        "emails",
        figures=QueueFigures(ready=50, unacked=3, consumers=3, dead=None, delayed=1),
        read_at=now - 2,
        wait_p50_s=0.2,
        wait_max_s=0.9,
        waits_counted=10,
        clear_s=30.0,
    )
    newer = entry(
        "emails",
        figures=QueueFigures(ready=40, unacked=2, consumers=4, dead=None, delayed=None),
        read_at=now - 1,
        wait_p50_s=0.4,
        wait_max_s=0.5,
        waits_counted=5,
        clear_s=20.0,
    )
    snapshots = [snapshot("a", queues=[older], at=now - 1), snapshot("b", queues=[newer], at=now)]

    [row] = farm_status("q", 1.0, snapshots, [], now).queues

    assert (row.ready, row.consumers, row.clear_s) == (40, 4, 20.0)  # the newer read
    assert row.delayed == 1  # the newer read did not know it: the older did
    assert row.dead is None  # neither knew it: unknown, not 0
    assert (row.unacked, row.workers, row.min_workers, row.max_workers) == (5, 4, 2, 8)
    # Medians do not merge: the weighted mean of theirs, marked as an estimate
    assert row.wait_p50_s == pytest.approx((0.2 * 10 + 0.4 * 5) / 15)
    assert (row.wait_max_s, row.waits_counted, row.wait_p50_approximate) == (0.9, 15, True)
    assert row.supervisors == ("a", "b")
    assert row.read_age_s == pytest.approx(1.0)
    assert row.heard_age_s == pytest.approx(1.0)
    assert not row.stale


def test_a_median_wait_estimated_from_several_supervisors_reads_approximate() -> None:
    # Given one queue whose two supervisors counted starts, and one with a single one
    now = time.time()
    snapshots = [
        snapshot(
            "a",
            queues=[
                entry("emails", wait_p50_s=1.0, wait_max_s=3.0, waits_counted=30),
                entry("reports", wait_p50_s=2.0, wait_max_s=5.0, waits_counted=4),
            ],
            at=now,
        ),
        snapshot("b", queues=[entry("emails", wait_p50_s=3.0, wait_max_s=8.0, waits_counted=10)]),
    ]
    status = farm_status("q", 1.0, snapshots, [], now)

    # When it is printed, as text and as JSON
    text = render_status(status)
    data = status_json(status)

    # Then the estimated median reads ≈ and says why; the exact one does not
    lines = {line.split()[0]: line for line in text.splitlines()}
    assert "≈1.5s/8.0s (40)" in lines["emails"]
    assert " 2.0s/5.0s (4)" in lines["reports"]
    assert lines["≈"].startswith("≈ median wait estimated")
    emails, reports = data["queues"]
    assert (emails["wait_p50_s"], emails["wait_p50_approximate"]) == (1.5, True)
    assert (reports["wait_p50_s"], reports["wait_p50_approximate"]) == (2.0, False)


def test_unknown_figures_print_as_unknown_and_old_ones_as_stale() -> None:
    now = time.time()
    unknown = entry(
        "reports",
        figures=QueueFigures(ready=None, unacked=0, consumers=None, dead=None, delayed=None),
        read_at=None,
        clear_s=None,
    )
    old = entry("emails", read_at=now - 60)
    status = farm_status("q", 1.0, [snapshot("a", queues=[unknown, old], at=now)], [], now)

    text = render_status(status)

    rows = {line.split()[0]: line.split() for line in text.splitlines()[1:3]}
    assert rows["reports"][1:6] == ["?", "0", "?", "?", "?"]
    assert rows["reports"][-1] != "STALE"
    assert "STALE" in rows["emails"]
    assert rows["emails"][rows["emails"].index("STALE") - 1] == "60s"
    data = status_json(status)
    assert [row["stale"] for row in data["queues"]] == [False, True]
    assert data["queues"][0]["ready"] is None


def test_a_supervisor_from_before_named_queues_serves_its_queue_name() -> None:
    now = time.time()
    old_style = snapshot("old", 2)

    [row] = farm_status("q", 1.0, [old_style], [], now).queues

    assert (row.name, row.supervisors, row.workers, row.unacked) == ("q", ("old",), 1, 2)
    assert row.read_age_s is None  # it never said when it read the broker


def test_a_queue_nobody_serves_with_a_backlog_is_the_first_thing_said() -> None:
    now = time.time()
    served = snapshot("a", queues=[entry("emails")], at=now)
    readings = [
        QueueReading("reports", True, 7, 0, 0, 0, now),
        QueueReading("bulk", False, None, None, None, None, now),
    ]

    status = farm_status("q", 1.0, [served], readings, now)

    assert status.problems == (
        "BACKLOG WITHOUT CONSUMER: reports holds 7 ready jobs and nothing consumes it",
    )
    assert not status.healthy
    assert render_status(status).splitlines()[0] == status.problems[0]
    assert [row.name for row in status.queues] == ["emails", "reports", "bulk"]


# -- deliveries waiting inside workers for a slot (FARM_PREFETCH above FARM_CONCURRENCY) --


def test_deliveries_waiting_in_workers_show_by_queue_by_worker_and_in_json() -> None:
    # Given a supervisor of two queues whose reports worker, its 16 slots busy, holds 184
    # deliveries waiting for a slot (the broker counts none of them ready), and a queue
    # no supervisor serves
    now = time.time()
    workers = [worker_entry("a-w1", 16, queue="emails"), worker_entry("a-w2", 16, queue="reports")]
    first_waiting = WaitingJobOf(id="job-184", function="app.reports.build", worker_id="a-w2")
    heard = snapshot(
        "a",
        queues=[entry("emails"), entry("reports")],
        workers=workers,
        at=now,
        waiting={"a-w2": 184},
        waiting_jobs=[first_waiting],
    )
    readings = [QueueReading("bulk", True, 0, 0, 0, 0, now)]
    status = farm_status("q", 1.0, [heard], readings, now)

    # When status prints it, as text and as JSON
    lines = render_status(status).splitlines()
    data = status_json(status)

    # Then a WAITING column follows UNACKED: 184 on reports, 0 on emails, unknown on
    # the queue read from the broker (lone workers hold deliveries nobody reports)
    assert lines[0].split()[:4] == ["QUEUE", "READY", "UNACKED", "WAITING"]
    rows = {line.split()[0]: line.split() for line in lines[1:4]}
    assert rows["reports"][1:4] == ["10", "3", "184"]
    assert rows["emails"][3] == "0"
    assert rows["bulk"][3] == "?"
    assert lines[4].startswith("WAITING: held in workers for a free slot")
    # ... the supervisor and the worker holding them say so; the other worker does not
    [supervisor] = [line for line in lines if line.startswith("supervisor a ")]
    assert "184 deliveries waiting in them for a slot" in supervisor
    [holder] = [line for line in lines if line.startswith("  a-w2 ")]
    assert "16 in flight, 184 waiting  0 ok" in holder
    [other] = [line for line in lines if line.startswith("  a-w1 ")]
    assert "waiting" not in other
    # ... and the JSON carries them: per queue, and the snapshot's counts and list
    assert [row["waiting"] for row in data["queues"]] == [0, 184, None]
    [supervisor_data] = data["supervisors"]
    assert supervisor_data["waiting"] == {"a-w2": 184}
    assert supervisor_data["waiting_jobs"] == [
        {"id": "job-184", "function": "app.reports.build", "worker_id": "a-w2"}
    ]


def test_without_deliveries_waiting_status_prints_no_waiting_figure() -> None:
    # Given a supervisor where none wait
    now = time.time()
    none_waiting = snapshot("a", queues=[entry("emails")], at=now)
    status = farm_status("q", 1.0, [none_waiting], [], now)

    # When status prints it
    text = render_status(status)
    data = status_json(status)

    # Then no WAITING column, footnote or count appears; the JSON says 0
    assert "WAITING" not in text
    assert " waiting" not in text
    assert [row["waiting"] for row in data["queues"]] == [0]


def test_a_supervisor_too_old_to_count_waiting_deliveries_shows_them_as_unknown() -> None:
    # Given a supervisor where none wait, and one from before snapshots counted them (no
    # ``waiting`` field at all), serving another queue
    now = time.time()
    none_waiting = snapshot("a", queues=[entry("emails")], at=now)
    body = json.loads(encode_snapshot(snapshot("old", 2, at=now, waiting={"old-w0": 1})))
    del body["waiting"], body["waiting_jobs"]
    older = decode_snapshot(json.dumps(body).encode())
    assert older.waiting is None
    status = farm_status("q", 1.0, [none_waiting, older], [], now)

    # When status prints it
    lines = render_status(status).splitlines()
    data = status_json(status)

    # Then its queue's WAITING is unknown, not 0, and says why; the other's is 0
    assert lines[0].split()[:4] == ["QUEUE", "READY", "UNACKED", "WAITING"]
    rows = {line.split()[0]: line.split() for line in lines[1:3]}
    assert rows["q"][3] == "?"
    assert rows["emails"][3] == "0"
    assert "WAITING ?: a supervisor serving the queue is too old to report them" in lines
    [supervisor] = [line for line in lines if line.startswith("supervisor old ")]
    assert "waiting in them for a slot: not reported" in supervisor
    # ... and the JSON says null for it
    assert {row["name"]: row["waiting"] for row in data["queues"]} == {"emails": 0, "q": None}


def test_a_worker_naming_no_queue_holds_its_waiting_deliveries_in_its_supervisors_queue() -> None:
    now = time.time()
    old_style = snapshot("old", 16, at=now, waiting={"old-w0": 5})

    [row] = farm_status("q", 1.0, [old_style], [], now).queues

    assert (row.name, row.unacked, row.waiting) == ("q", 16, 5)
