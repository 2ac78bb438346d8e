"""The farm against random and forged messages on every queue and exchange it reads.

The promise: whatever anyone with publish rights sends to the farm's queues and exchanges
is counted, logged, ignored or dead-lettered; nothing crashes, nothing hangs, nothing runs
that should not, and no delivery is left unacknowledged. Real processes (a supervisor and
its two workers) run canary jobs while ``farm_fuzz`` publishes the messages; every
finding is collected, and the test fails with all of them at once.

``FAST_APP_FUZZ_MESSAGES`` sets how many messages (default 2000; ``scripts/fuzz`` runs
100,000), ``FAST_APP_FUZZ_SEED`` replays a run (each run prints its seed), and
``FAST_APP_FUZZ_TARGETS``, ``FAST_APP_FUZZ_KINDS`` and ``FAST_APP_FUZZ_HEADERS``
(comma-separated names from ``farm_fuzz``) narrow it down, to find which messages cause a
failure. ``FAST_APP_FUZZ_BROKER_BUGS=1`` also sends what crashes RabbitMQ 3.10 itself
(see ``FuzzGenerator``).

Each run has a RabbitMQ node of its own: what the broker does with a forged message must
not reach other tests.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import random
import re
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import farm_jobs
import pytest
from farm_fuzz import Accounting, FarmUnderFuzz, FuzzGenerator, publish_fuzz
from farm_testkit import Farm, SupervisorProcess, start_supervisor, wait_until

from fast_app.core.queue import configure, queue
from fast_app.core.queue.amqp import Topology
from fast_app.core.queue.settings import get_settings
from fast_app.core.queue.testing.rabbitmq import RabbitMQNode, rabbitmq_node
from fast_app.farm.listener import collect_snapshots

MESSAGES = int(os.environ.get("FAST_APP_FUZZ_MESSAGES", "2000"))
SEED = os.environ.get("FAST_APP_FUZZ_SEED")
TARGETS = [t for t in os.environ.get("FAST_APP_FUZZ_TARGETS", "").split(",") if t] or None
KINDS = [k for k in os.environ.get("FAST_APP_FUZZ_KINDS", "").split(",") if k] or None
HEADERS = [h for h in os.environ.get("FAST_APP_FUZZ_HEADERS", "").split(",") if h] or None
BROKER_BUGS = os.environ.get("FAST_APP_FUZZ_BROKER_BUGS") == "1"
SIGNING_KEY = "fuzz-signing-key-0123456789abcdef-0123456789"  # >= 32 characters
# How long the farm gets to settle what it was sent, once the fuzzer stops.
SETTLE_S = 60 + MESSAGES // 200
# Publishing takes ~5 ms a message (each confirmed), then every check may wait its limit.
TIMEOUT_S = 420 + MESSAGES * 25 // 1000
_CANARY_EVERY_S = 0.05
_CANARIES_AT_LEAST = 20  # however short the run
_STATUS_BURST = 300

_RECORD = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) (\S+): (.*)$"
)
_TRACEBACK = "Traceback (most recent call last)"
_SETTLED = re.compile(r"\) dead-lettered after |; retry \d+ of \d+ in ")
_JOB_FAILURE = "(a job's own exception)"


@pytest.fixture
def fuzz_node() -> Iterator[RabbitMQNode | None]:
    """A private node for one fuzz run; ``None`` when ``RABBITMQ_URL`` names a broker."""
    if os.environ.get("RABBITMQ_URL"):
        yield None
        return
    with rabbitmq_node() as node:
        yield node


@pytest.fixture
def rabbitmq_url(fuzz_node: RabbitMQNode | None) -> str:
    """The broker of the ``farm`` fixture, here the run's own node."""
    return os.environ["RABBITMQ_URL"] if fuzz_node is None else fuzz_node.url


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT_S)
async def test_a_farm_without_a_signing_key_survives_malformed_messages(
    farm: Farm, fuzz_node: RabbitMQNode | None
) -> None:
    await _fuzz_the_farm(farm, fuzz_node, signed=False)


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT_S)
async def test_a_signed_farm_ignores_unsigned_jobs_commands_and_tombstones(
    farm: Farm, fuzz_node: RabbitMQNode | None
) -> None:
    await _fuzz_the_farm(farm, fuzz_node, signed=True)


async def _fuzz_the_farm(farm: Farm, node: RabbitMQNode | None, *, signed: bool) -> None:
    seed = int(SEED) if SEED else random.randrange(2**32)
    print(
        f"\nfuzz: seed {seed}, {MESSAGES} messages, farm {'with' if signed else 'without'} "
        f"a signing key (replay: FAST_APP_FUZZ_SEED={seed})"
    )
    # Given a supervisor with two workers, that runs a job.
    environment = {"ASYNC_FARM_SIGNING_KEY": SIGNING_KEY} if signed else {}
    if signed:
        configure(
            driver="async_farm",
            rabbitmq_url=farm.url,
            name=farm.queue_name,
            connect_timeout_s=10,
            signing_key=SIGNING_KEY,
        )
    supervisor_id = f"fuzz-{uuid.uuid4().hex[:8]}"
    supervisor = await start_supervisor(
        farm,
        "--min-workers",
        "2",
        "--max-workers",
        "2",
        "--supervisor-id",
        supervisor_id,
        # Two shared cores run the broker, the fuzzer and the farm: a busy worker may
        # miss a few heartbeats without being hung.
        "--heartbeat-tolerance",
        "25",
        **environment,
    )
    await wait_until(
        lambda: supervisor.log().count(" consuming ") >= 2 or supervisor.process.poll() is not None,
        timeout=60,
        message="2 consumers",
    )
    workers = supervisor.live_worker_pids()
    assert len(workers) == 2, f"the farm did not start:\n{supervisor.log()[-3000:]}"
    await queue(farm_jobs.record, str(farm.results), "warm-up")
    await wait_until(lambda: "warm-up" in farm.tags("ran"), timeout=30, message="a first job")
    snapshots = await collect_snapshots(get_settings(), wait_s=1.0)
    template = next((s for s in snapshots if s.get("supervisor_id") == supervisor_id), None)

    # When the fuzzer publishes while canary jobs flow.
    canaries = _Canaries(str(farm.results))
    attacked = FarmUnderFuzz(
        queue_name=farm.queue_name,
        supervisor_id=supervisor_id,
        worker_ids=tuple(workers),
        forged_results=str(farm.tmp_path / "forged-results.jsonl"),
        marker=str(farm.tmp_path / "PWNED"),
        signing_key=SIGNING_KEY.encode() if signed else None,
        real_job_ids=canaries.ids,
        snapshot_template=template,
    )
    generator = FuzzGenerator(
        seed,
        attacked,
        targets=TARGETS,
        kinds=KINDS,
        header_kinds=HEADERS,
        broker_bugs=BROKER_BUGS,
        huge_budget_bytes=min(256, 16 + MESSAGES // 200) * 1024 * 1024,
    )
    topology = Topology.from_settings(get_settings())
    journal_path = farm.tmp_path / "fuzz-journal.jsonl"
    started = time.monotonic()
    with open(journal_path, "w", encoding="utf-8") as journal:
        async with canaries.flowing():
            accounting = await publish_fuzz(
                farm.url,
                topology,
                generator.messages(MESSAGES),
                connection_name=f"fuzz {supervisor_id}",
                journal=journal,
            )
    print(f"fuzz: published in {time.monotonic() - started:.1f}s (journal: {journal_path})")
    print(accounting.render())

    # Then the farm ran every canary once, settled every delivery, and lost no process.
    problems = _Findings()
    await _check_canaries(farm, canaries, problems)
    await _check_drained(farm, node, problems)
    live, ever = _check_processes(supervisor, workers, set(workers), problems, "after the fuzz")
    _check_nothing_forbidden_ran(attacked, problems)
    # ... its tools read what it was sent, and the farm still replaces and stops workers.
    await _check_status_under_fire(farm, generator, topology, accounting, environment, problems)
    await _check_dead_letter_listing(farm, environment, problems)
    _check_processes(supervisor, live, ever, problems, "during `status` and `dlq list`")
    _check_logs(supervisor, problems)
    await _check_a_dead_worker_is_replaced(supervisor, problems)
    await _check_graceful_stop(supervisor, problems)

    print(problems.render(accounting))
    assert not problems.found, problems.render(accounting)


# -- canaries -----------------------------------------------------------------------------


@dataclass
class _Canaries:
    """Real jobs queued while the fuzz runs; each must run exactly once.

    One in four is delayed (it waits in a delay queue while tombstones may name it), one
    in four runs in a thread.
    """

    results: str
    tags: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @contextlib.asynccontextmanager
    async def flowing(self) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(self._queue_until(stop))
        try:
            yield
        finally:
            stop.set()
            await task

    async def _queue_until(self, stop: asyncio.Event) -> None:
        number = 0
        while not stop.is_set() or number < _CANARIES_AT_LEAST:
            number += 1
            tag = f"canary-{number}"
            try:
                if number % 4 == 1:
                    job = await queue(farm_jobs.record, self.results, tag, __delay_s=1.5)
                elif number % 4 == 2:
                    job = await queue(farm_jobs.record_in_thread, self.results, tag)
                else:
                    job = await queue(farm_jobs.record, self.results, tag)
            except Exception as error:
                self.failures.append(f"{tag}: {type(error).__name__}: {error}")
                continue
            self.tags.append(tag)
            self.ids.append(job.id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _CANARY_EVERY_S)


async def _check_canaries(farm: Farm, canaries: _Canaries, problems: _Findings) -> None:
    if canaries.failures:
        problems.add(f"queue() failed for canaries: {canaries.failures[:5]}")
    expected = set(canaries.tags)
    with contextlib.suppress(AssertionError):
        await wait_until(
            lambda: expected <= set(farm.tags("ran")), timeout=SETTLE_S, message="the canaries"
        )
    runs = collections.Counter(farm.tags("ran"))
    missing = sorted(expected - set(runs), key=lambda tag: int(tag.split("-")[1]))
    twice = {tag: count for tag, count in runs.items() if count > 1}
    if missing:
        problems.add(
            f"{len(missing)} of {len(expected)} canary jobs never ran: {missing[:20]}"
            + _dead_letter_lines(farm, [canaries.ids[canaries.tags.index(t)] for t in missing])
        )
    if twice:
        problems.add(f"canary jobs ran more than once: {dict(list(twice.items())[:20])}")
    print(f"fuzz: {len(expected)} canaries, {len(missing)} missing, {len(twice)} ran twice")


def _dead_letter_lines(farm: Farm, job_ids: list[str]) -> str:
    """The supervisor's log lines that name the first of ``job_ids`` (why it never ran)."""
    log = "\n".join(s.log() for s in farm.supervisors)
    lines = [line[:400] for line in log.splitlines() if job_ids and job_ids[0] in line]
    return "\n  log of the first: " + "\n  ".join(lines[:6]) if lines else ""


# -- the queue, the processes, the logs --------------------------------------------------


def _check_nothing_forbidden_ran(attacked: FarmUnderFuzz, problems: _Findings) -> None:
    """No forbidden function ran; on a signed farm, no forged job at all."""
    forged = Path(attacked.forged_results)
    if attacked.signed and forged.exists():
        ran = forged.read_text(errors="replace").splitlines()
        problems.add(f"{len(ran)} unsigned forged jobs ran on a signed farm, e.g. {ran[:3]}")
    if Path(attacked.marker).exists():
        problems.add("a forbidden function ran: the marker file exists")


async def _check_drained(farm: Farm, node: RabbitMQNode | None, problems: _Findings) -> None:
    """The jobs queue ends with nothing ready and nothing unacknowledged."""
    last = "never read"
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        if node is None:  # an external broker: only the ready count can be read
            ready, unacked = await farm.queue_depth(), 0
        else:
            listed = await asyncio.to_thread(
                node.rabbitmqctl, "list_queues", "name", "messages_ready", "messages_unacknowledged"
            )
            rows = [line.split("\t") for line in listed.stdout.splitlines()]
            row = next((r for r in rows if r[0] == farm.queue_name), None)
            if row is None or len(row) < 3:
                last = f"not listed: {listed.stdout[-300:]} {listed.stderr[-300:]}"
                continue
            ready, unacked = int(row[1]), int(row[2])
        last = f"{ready} ready, {unacked} unacknowledged"
        if ready == 0 and unacked == 0:
            return
        await asyncio.sleep(1)
    problems.add(f"the jobs queue did not drain within {SETTLE_S}s: {last}")


def _check_processes(
    supervisor: SupervisorProcess,
    workers: dict[str, int],
    started_before: set[str],
    problems: _Findings,
    when: str,
) -> tuple[dict[str, int], set[str]]:
    """The supervisor runs, with ``workers`` and none started since ``started_before``.

    Returns:
        The workers alive now, and every worker started so far (by id).
    """
    code = supervisor.process.poll()
    if code is not None:
        problems.add(f"{when}: the supervisor exited with code {code}:\n{supervisor.log()[-3000:]}")
        return {}, set(supervisor.worker_pids())
    live = supervisor.live_worker_pids()
    started = supervisor.worker_pids()
    if live != workers or started.keys() != started_before:
        ends = [
            line[:400]
            for line in supervisor.log().splitlines()
            if re.search(r"died|hung|killing|exit code|started \(pid|drain|its hard timeout", line)
        ]
        problems.add(
            f"{when}: workers changed: {workers} before, {live} alive now, {started} started "
            "in all:\n  " + "\n  ".join(ends[-15:])
        )
    return live, set(started)


def _check_logs(supervisor: SupervisorProcess, problems: _Findings) -> None:
    """Tracebacks of exceptions that escaped the farm's own handling."""
    for (logger, headline, exception), (count, excerpt) in _tracebacks(supervisor.log()).items():
        if logger == _JOB_FAILURE:
            continue  # a forged job's own exception, reported as it failed
        where = f"{count} x [{logger}] {headline} -> {exception[:200]}"
        if logger.startswith("fast_app"):
            problems.note(f"caught by the farm's catch-all: {where}")
        else:
            problems.add(f"an exception escaped the farm's handling: {where}\n{excerpt}")


def _tracebacks(log: str) -> dict[tuple[str, str, str], tuple[int, str]]:
    """Each distinct traceback in ``log``: (logger, headline, exception) -> (count, excerpt).

    A traceback belongs to the warning or error it follows (``logger.exception``), or whose
    message holds it (a job's error), or to the traceback it is chained to; any other was
    printed by the interpreter itself (an uncaught exception, in a thread or at exit).
    """
    found: dict[tuple[str, str, str], tuple[int, str]] = {}
    record: list[str] = []
    logger, headline = "(printed)", ""

    def close() -> None:
        if not any(line.startswith(_TRACEBACK) or _TRACEBACK in line for line in record):
            return
        lines = [line for line in record if line.strip()]
        exception = next(
            (
                line
                for line in reversed(lines)
                if re.match(r"^[\w.]+(Error|Exception|Exit)\b", line)
            ),
            lines[-1],
        )
        # A job's own failure, in the line that reports its retry or dead letter.
        failed_job = logger.startswith("fast_app") and _SETTLED.search(headline)
        key = (
            _JOB_FAILURE if failed_job else logger,
            re.sub(r"[0-9a-f]{8,}|\d+", "N", headline)[:160],
            exception[:200],
        )
        count, excerpt = found.get(key, (0, ""))
        found[key] = (count + 1, excerpt or "\n".join(line[:300] for line in record[:40]))

    level = ""
    for line in log.splitlines():
        match = _RECORD.match(line)
        if match:
            close()
            record, (level, logger, headline) = [line], match.groups()
            continue
        if line.startswith(_TRACEBACK):
            previous = next((text for text in reversed(record) if text.strip()), "")
            chained = previous.startswith(("During handling", "The above exception"))
            logged = level in ("WARNING", "ERROR", "CRITICAL") and not any(
                _TRACEBACK in text for text in record
            )
            if not (chained or logged) or previous.startswith("Exception "):
                close()
                record, level, logger, headline = [], "", "(printed)", previous
        record.append(line)
    close()
    return found


# -- tools and lifecycle -------------------------------------------------------------------


def _tool_environment(farm: Farm, environment: dict[str, str]) -> dict[str, str]:
    return {**os.environ, "RABBITMQ_URL": farm.url, "QUEUE_NAME": farm.queue_name, **environment}


async def _run_tool(
    farm: Farm, environment: dict[str, str], *arguments: str, timeout: float
) -> tuple[int | None, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fast_app.farm",
        *arguments,
        env=_tool_environment(farm, environment),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=farm.tmp_path,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        output, _ = await process.communicate()
        return None, output.decode(errors="replace")
    return process.returncode, output.decode(errors="replace")


async def _check_status_under_fire(
    farm: Farm,
    generator: FuzzGenerator,
    topology: Topology,
    accounting: Accounting,
    environment: dict[str, str],
    problems: _Findings,
) -> None:
    """``fast-app status`` while forged snapshots and junk arrive on the events exchange."""
    status = asyncio.create_task(_run_tool(farm, environment, "status", "--wait", "4", timeout=60))
    await asyncio.sleep(1.5)  # the tool starts and binds its listening queue
    await publish_fuzz(
        farm.url,
        topology,
        generator.messages(min(_STATUS_BURST, MESSAGES), targets=("events",)),
        connection_name="fuzz status burst",
        accounting=accounting,
    )
    code, output = await status
    print(f"fuzz: `fast-app status` exited {code}:\n{output[-1500:]}")
    if code != 0 or _TRACEBACK in output:
        problems.add(f"`fast-app status` exited {code} under forged snapshots:\n{output[-3000:]}")


async def _check_dead_letter_listing(
    farm: Farm, environment: dict[str, str], problems: _Findings
) -> None:
    code, output = await _run_tool(farm, environment, "dlq", "list", timeout=120 + MESSAGES // 100)
    lines = output.splitlines()
    print(f"fuzz: `fast-app dlq list` exited {code}, {len(lines)} lines")
    if code != 0 or _TRACEBACK in output:
        problems.add(f"`fast-app dlq list` exited {code}:\n{output[-3000:]}")


async def _check_a_dead_worker_is_replaced(
    supervisor: SupervisorProcess, problems: _Findings
) -> None:
    """The supervisor can still start a worker (its state survived what it was sent)."""
    live = supervisor.live_worker_pids()
    if supervisor.process.poll() is not None or not live:
        return
    victim_id, victim = sorted(live.items())[0]
    consuming = supervisor.log().count(" consuming ")
    os.kill(victim, signal.SIGKILL)
    try:
        await wait_until(
            lambda: (
                victim_id not in supervisor.live_worker_pids()
                and len(supervisor.live_worker_pids()) == 2
                and supervisor.log().count(" consuming ") > consuming
            ),
            timeout=30,
            message="a replacement worker",
        )
    except AssertionError:
        tail = supervisor.log()[-3000:]
        problems.add(f"a killed worker was not replaced by a consuming one in 30s:\n{tail}")


async def _check_graceful_stop(supervisor: SupervisorProcess, problems: _Findings) -> None:
    """SIGTERM drains and stops the farm in time, with exit code 0."""
    if supervisor.process.poll() is not None:
        return
    supervisor.send(signal.SIGTERM)
    try:
        code = await supervisor.wait_exit(timeout=40)
    except AssertionError:
        problems.add(
            f"the supervisor did not stop within 40s of SIGTERM:\n{supervisor.log()[-3000:]}"
        )
        return
    if code != 0:
        problems.add(f"the supervisor stopped with exit code {code}:\n{supervisor.log()[-3000:]}")


@dataclass
class _Findings:
    """What the fuzz run found: failures, and notes that are not failures."""

    found: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, problem: str) -> None:
        self.found.append(problem)

    def note(self, note: str) -> None:
        self.notes.append(note)

    def render(self, accounting: Accounting) -> str:
        parts = [f"fuzz: {len(self.found)} failures ({accounting.total_sent} messages sent)"]
        parts += [f"FAILURE {n}: {problem}" for n, problem in enumerate(self.found, 1)]
        parts += [f"note: {note}" for note in self.notes]
        return "\n\n".join(parts)
