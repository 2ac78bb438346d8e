"""The farm's lifecycle figures for benchmarks/farm_throughput.py (rows 3, 4, 7 and 8).

Each is measured with ``fast-app work`` (the supervisor) started as an operator would,
for each way it can start workers (``FARM_WORKER_START``, when the installed farm has it):

- start to consuming: from launching a supervisor holding 2 workers to the queue having
  2 consumers (passive declare every 10 ms), against launching 2 raw aio-pika consumers;
- memory, idle after that start: RSS and PSS of the supervisor and all its descendants
  (workers, a template process if any), against the 2 raw consumers;
- spawn reaction: from the supervisor's scale-up decision to each new worker consuming,
  p95 over the scale-ups of the bursts below. Decisions and "consuming" lines are taken
  from the farm's JSON logs, stamped when each line reaches this process (one clock for
  every process' lines); the same reaction seen as the queue's consumer count, polled every
  5 ms, is printed beside it as a cross-check;
- scale-up reaction: 2,000 jobs of 50 ms each published at once to an idle farm of 1 to 4
  workers (default scaling settings): time from the first job published to the 4th worker
  consuming, and to the last job's end.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import bench_jobs
from proc_figures import Memory, command_line, descendants, memory_of, parent_of

from fast_app.core.queue import queue
from fast_app.farm.settings import FarmSettings

HERE = Path(__file__).parent
PREFETCH = 16
IDLE_S = 2.0  # after the start, before memory is read or a burst arrives
BURST_JOBS = 2000
BURST_JOB_S = 0.05
BURST_MAX_WORKERS = 4

Results = dict[str, float | None]

_SCALE_UP = re.compile(r"^scaling: .*?scale up (\d+)→(\d+)")
_CONSUMING = re.compile(r"^worker (\S+) consuming ")


def raw_consumer_command(url: str, queue_name: str, prefetch: int, figures: Path) -> list[str]:
    """The command of one raw aio-pika consumer (benchmarks/raw_consumer.py)."""
    return [
        sys.executable,
        str(HERE / "raw_consumer.py"),
        url,
        queue_name,
        str(prefetch),
        str(figures),
    ]


def worker_start_modes() -> list[str | None]:
    """The values of ``FARM_WORKER_START`` the installed farm accepts (``[None]``: it has
    no such setting, workers start the one way it knows)."""
    help_text = subprocess.run(
        [sys.executable, "-m", "fast_app.farm", "work", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return ["fresh", "template"] if "--worker-start" in help_text else [None]


def mode_label(mode: str | None) -> str:
    """How a start mode is named in the table (the only one there is: ``fresh``)."""
    return mode or "fresh"


def p95(samples: Sequence[float]) -> float | None:
    """The 95th percentile (nearest rank), ``None`` without samples."""
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def median(samples: Sequence[float]) -> float | None:
    """The median, ``None`` without samples."""
    return statistics.median(samples) if samples else None


# -- the queue's consumers, as the broker counts them ------------------------------------


class QueueWatch:
    """Reads a queue's consumer and message counts by passive declare (one round trip)."""

    def __init__(self, channel: aio_pika.abc.AbstractChannel, queue_name: str) -> None:
        self._channel = channel
        self._queue_name = queue_name

    async def counts(self) -> tuple[int, int]:
        """``(consumers, messages ready)``."""
        declared = await self._channel.declare_queue(self._queue_name, passive=True)
        result = declared.declaration_result
        return result.consumer_count or 0, result.message_count or 0

    async def consumers_reached(
        self, at_least: int, every_s: float, timeout_s: float = 60
    ) -> float:
        """Wait until the queue has ``at_least`` consumers; when (``time.time()``) it did."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if (await self.counts())[0] >= at_least:
                return time.time()
            await asyncio.sleep(every_s)
        raise RuntimeError(f"{self._queue_name}: fewer than {at_least} consumers")

    async def levels(
        self, up_to: int, every_s: float, sent: asyncio.Task[None], timeout_s: float = 60
    ) -> dict[int, float]:
        """When the consumer count first reached each level, until it reaches ``up_to`` or
        the jobs ``sent`` are all delivered (no more workers will come)."""
        first_seen: dict[int, float] = {}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            consumers, ready = await self.counts()
            now = time.time()
            for level in range(1, consumers + 1):
                first_seen.setdefault(level, now)
            if consumers >= up_to or (sent.done() and ready == 0):
                break
            await asyncio.sleep(every_s)
        return first_seen

    async def emptied(self, timeout_s: float = 600) -> None:
        """Wait until the queue holds no ready message."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if (await self.counts())[1] == 0:
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{self._queue_name} still holds jobs")


@asynccontextmanager
async def watching(url: str, queue_name: str) -> AsyncIterator[QueueWatch]:
    """A `QueueWatch` on its own connection (not a consumer itself)."""
    connection = await aio_pika.connect(url)
    try:
        yield QueueWatch(await connection.channel(), queue_name)
    finally:
        await connection.close()


# -- a supervisor and its log -------------------------------------------------------------


@dataclass(frozen=True)
class LogLine:
    """One line of the farm's output, stamped when it arrived (``time.time()``)."""

    at: float
    message: str


@dataclass
class Farm:
    """A ``fast-app work`` process (JSON logs), its output read line by line as it comes."""

    process: subprocess.Popen[bytes]
    lines: list[LogLine] = field(default_factory=list)
    _reader: threading.Thread | None = None

    @classmethod
    def start(
        cls,
        url: str,
        queue_type: str,
        queue_name: str,
        figures: Path,
        workers: tuple[int, int],
        mode: str | None,
    ) -> Farm:
        """Launch a supervisor of ``workers`` (min, max) on ``queue_name``; its workers
        write their figures to ``figures`` when they stop."""
        environment = {
            **os.environ,
            "RABBITMQ_URL": url,
            "QUEUE_NAME": queue_name,
            "QUEUE_TYPE": queue_type,
            "FARM_CONCURRENCY": str(PREFETCH),
            "FARM_PREFETCH": str(PREFETCH),
            "FARM_ALLOWED_MODULES": "bench_jobs",
            "FARM_SHUTDOWN": "bench_jobs:write_figures",
            "FARM_JSON_LOGS": "true",
            "BENCH_FIGURES_DIR": str(figures),
            "PYTHONPATH": str(HERE),
        }
        if mode is not None:
            environment["FARM_WORKER_START"] = mode
        command = [sys.executable, "-m", "fast_app.farm", "work"]
        command += ["--min-workers", str(workers[0]), "--max-workers", str(workers[1])]
        process = subprocess.Popen(
            command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=HERE
        )
        farm = cls(process)
        # A thread of its own: the event loop may be busy publishing when a line comes.
        farm._reader = threading.Thread(target=farm._read, daemon=True)
        farm._reader.start()
        return farm

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            at = time.time()
            text = raw.decode(errors="replace").rstrip("\n")
            try:
                entry: Any = json.loads(text)
                message = str(entry["message"])
            except (ValueError, KeyError, TypeError):
                message = text  # not a log line: a traceback, a print
            self.lines.append(LogLine(at, message))

    def roles(self) -> dict[int, str]:
        """The supervisor and every process below it, by pid, named by role: the worker
        template is the supervisor's child running ``fast_app.farm.template`` (restarted)
        or the supervisor's own command line (forked from it); the workers, the rest
        (forked ones keep the template's command line)."""
        supervisor = self.process.pid
        roles = {supervisor: "supervisor"}
        for pid in descendants(supervisor):
            line = command_line(pid)
            is_template = "fast_app.farm.template" in line or line == command_line(supervisor)
            roles[pid] = "template" if is_template and parent_of(pid) == supervisor else "worker"
        return roles

    async def stop(self) -> None:
        """Drain and stop it (SIGTERM); raise with its output if it failed."""
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(self.process.wait, 120)
        if self._reader is not None:
            await asyncio.to_thread(self._reader.join, 10)
        if code != 0:
            tail = "\n".join(line.message for line in self.lines[-30:])
            raise RuntimeError(f"fast-app work exited with {code}:\n{tail}")


# -- rows 3 and 4: start to consuming, idle memory ----------------------------------------


@dataclass(frozen=True)
class Start:
    """How long a group of processes took to consume, and its memory once idle."""

    seconds: float
    memory: Memory


async def start_farm(
    url: str, queue_type: str, queue_name: str, figures: Path, mode: str | None
) -> Start:
    """Launch a supervisor holding 2 workers; time to 2 consumers, memory when idle."""
    async with watching(url, queue_name) as watch:
        launched = time.time()
        farm = Farm.start(url, queue_type, queue_name, figures, (2, 2), mode)
        try:
            consuming = await watch.consumers_reached(2, every_s=0.01)
            await asyncio.sleep(IDLE_S)
            memory = memory_of(farm.roles())
        finally:
            await farm.stop()
    return Start(consuming - launched, memory)


async def start_raw(url: str, queue_name: str, figures: Path) -> Start:
    """Launch 2 raw aio-pika consumers; time to 2 consumers, memory when idle."""
    async with watching(url, queue_name) as watch:
        launched = time.time()
        processes = [
            subprocess.Popen(
                raw_consumer_command(url, queue_name, PREFETCH, figures),
                stdout=subprocess.DEVNULL,
                cwd=HERE,
            )
            for _ in range(2)
        ]
        try:
            consuming = await watch.consumers_reached(2, every_s=0.01)
            await asyncio.sleep(IDLE_S)
            memory = memory_of({p.pid: "consumer" for p in processes})
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                await asyncio.to_thread(process.wait, 60)
    return Start(consuming - launched, memory)


# -- rows 7 and 8: a burst arriving at an idle farm ---------------------------------------


@dataclass(frozen=True)
class Burst:
    """What one burst showed: seconds from its first job to the ``BURST_MAX_WORKERS``th
    worker consuming (``None``: never) and to its last job's end; each new worker's
    reaction to the decision that spawned it, from the log and from the consumer count."""

    to_all_workers_s: float | None
    drained_s: float
    reactions_logged: list[float]
    reactions_counted: list[float]


def scale_up_slots(lines: Sequence[LogLine]) -> list[float]:
    """For each worker a scale-up decision added, the time of that decision (a decision
    from 1 to 3 workers gives two), in order."""
    slots: list[float] = []
    for line in lines:
        if match := _SCALE_UP.match(line.message):
            slots += [line.at] * (int(match[2]) - int(match[1]))
    return slots


def consuming_times(lines: Sequence[LogLine]) -> list[float]:
    """When each worker first logged that it consumes, in order."""
    seen: dict[str, float] = {}
    for line in lines:
        if (match := _CONSUMING.match(line.message)) and match[1] not in seen:
            seen[match[1]] = line.at
    return sorted(seen.values())


def reactions(slots: Sequence[float], arrivals: Sequence[float]) -> list[float]:
    """Each new worker's arrival less the decision that added it (the n-th new worker is
    the n-th decided: workers start in the order they were spawned, give or take ties)."""
    return [arrival - slot for slot, arrival in zip(slots, arrivals, strict=False)]


async def publish_burst() -> None:
    """``BURST_JOBS`` jobs of ``BURST_JOB_S`` each, all at once (concurrent ``queue()``)."""
    await asyncio.gather(*(queue(bench_jobs.sleepy, BURST_JOB_S) for _ in range(BURST_JOBS)))


def jobs_ended(figures: Path) -> tuple[int, float | None]:
    """How many jobs the farm's workers ran, and when the last one ended."""
    count, last = 0, None
    for path in figures.glob("*.json"):
        data = json.loads(path.read_text())
        count += data["count"]
        if data["last"] is not None:
            last = max(last or 0.0, data["last"])
    return count, last


async def burst(
    url: str, queue_type: str, queue_name: str, figures: Path, mode: str | None
) -> Burst:
    """Send a burst to an idle farm of 1 to ``BURST_MAX_WORKERS`` workers, and watch it."""
    os.makedirs(figures)
    farm = Farm.start(url, queue_type, queue_name, figures, (1, BURST_MAX_WORKERS), mode)
    try:
        async with watching(url, queue_name) as watch:
            await watch.consumers_reached(1, every_s=0.01)
            await asyncio.sleep(IDLE_S)  # idle: its scaling checks hold at the minimum
            published = time.time()
            publishing = asyncio.create_task(publish_burst())
            levels = await watch.levels(BURST_MAX_WORKERS, every_s=0.005, sent=publishing)
            await publishing
            await watch.emptied()
    finally:
        await farm.stop()  # it drains: the jobs still running end
    count, last = jobs_ended(figures)
    if count != BURST_JOBS or last is None:
        raise RuntimeError(f"the burst: {count} of {BURST_JOBS} jobs ran")
    after_burst = [line for line in farm.lines if line.at >= published]
    slots = scale_up_slots(after_burst)
    counted = [at for level, at in sorted(levels.items()) if level > 1]
    return Burst(
        to_all_workers_s=(
            levels[BURST_MAX_WORKERS] - published if BURST_MAX_WORKERS in levels else None
        ),
        drained_s=last - published,
        reactions_logged=reactions(slots, consuming_times(after_burst)),
        reactions_counted=reactions(slots, counted),
    )


# -- all four rows ------------------------------------------------------------------------


def scaling_defaults() -> str:
    """The scaling settings in force (the defaults), as the table's note prints them."""
    fields = FarmSettings.model_fields
    return (
        f"FARM_SCALE_UP_STEP={fields['scale_up_step'].default}, "
        f"FARM_SCALE_CHECK_INTERVAL_S={fields['scale_check_interval_s'].default:g}, "
        f"FARM_TARGET_DRAIN_S={fields['target_drain_s'].default:g}, "
        f"FARM_SCALE_COOLDOWN_S={fields['scale_cooldown_s'].default:g}, "
        f"FARM_CONCURRENCY={PREFETCH}"
    )


@dataclass
class Lifecycle:
    """Rows 3, 4, 7 and 8 for one queue type: figures by key, notes to print under them."""

    results: Results = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


async def measure_lifecycle(
    url: str,
    queue_type: str,
    ours_queue: str,
    raw_queue: str,
    figures: Path,
    rounds: int,
    bursts: int,
    modes: Sequence[str | None],
) -> Lifecycle:
    """Starts (median of ``rounds``, alternating raw and each mode) and ``bursts`` bursts
    per mode (alternating modes). Keys: ``start_s_raw``, ``start_s_<mode>``, ``rss_mb_*``, ``pss_mb_*``,
    ``spawn_s_<mode>``, ``spawn_counted_s_<mode>``, ``all_workers_s_<mode>``,
    ``drained_s_<mode>``."""
    lifecycle = Lifecycle()
    starts: dict[str, list[Start]] = {}
    for round_number in range(rounds):
        where = figures / f"starts-{queue_type}-{round_number}"
        where.mkdir(parents=True)
        starts.setdefault("raw", []).append(await start_raw(url, raw_queue, where))
        for mode in modes:
            started = await start_farm(url, queue_type, ours_queue, where, mode)
            starts.setdefault(mode_label(mode), []).append(started)
    for kind, measured in starts.items():
        lifecycle.results[f"start_s_{kind}"] = median([s.seconds for s in measured])
        lifecycle.results[f"rss_mb_{kind}"] = median([s.memory.rss_mb for s in measured])
        lifecycle.results[f"pss_mb_{kind}"] = median([s.memory.pss_mb for s in measured])
        lifecycle.notes.append(
            f"memory, {kind} (RSS/PSS/private MB): {measured[-1].memory.describe()}"
        )
    seen_by_mode: dict[str | None, list[Burst]] = {mode: [] for mode in modes}
    for number in range(bursts):  # the modes in turn: the machine's mood weighs on both
        for mode in modes:
            where = figures / f"burst-{queue_type}-{mode_label(mode)}-{number}"
            seen_by_mode[mode].append(await burst(url, queue_type, ours_queue, where, mode))
    for mode, seen in seen_by_mode.items():
        label = mode_label(mode)
        logged = [s for b in seen for s in b.reactions_logged]
        counted = [s for b in seen for s in b.reactions_counted]
        reached = [b.to_all_workers_s for b in seen if b.to_all_workers_s is not None]
        lifecycle.results[f"spawn_s_{label}"] = p95(logged)
        lifecycle.results[f"spawn_counted_s_{label}"] = p95(counted)
        lifecycle.results[f"all_workers_s_{label}"] = median(reached)
        lifecycle.results[f"drained_s_{label}"] = median([b.drained_s for b in seen])
        lifecycle.notes.append(
            f"spawn reactions, {label} ({len(logged)} from {bursts} bursts, ms): "
            + ", ".join(f"{s * 1000:.0f}" for s in sorted(logged))
        )
        if len(reached) < bursts:
            lifecycle.notes.append(
                f"{label}: {bursts - len(reached)} of {bursts} bursts never had "
                f"{BURST_MAX_WORKERS} workers consuming"
            )
    return lifecycle
