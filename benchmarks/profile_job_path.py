"""Profile one farm worker's job path, and weigh its CPU per job against raw aio-pika's.

Run: ``uv run python benchmarks/profile_job_path.py [--jobs 20000] [--rounds 3]
[--queue-type quorum] [--baseline-src DIR,DIR] [--no-profile] [--top 25]``.

On one queue of ``--queue-type`` of a private broker (or ``RABBITMQ_URL``'s), filled with
``--jobs`` no-op ``async def`` jobs (``bench_jobs.noop``, enqueued with ``queue_many``)
before each drain, one consumer at a time (prefetch 16, ack each):

1. ``--rounds`` alternating rounds, unprofiled: a raw aio-pika consumer
   (``raw_consumer.py``) and a ``fast-app worker`` (``FARM_CONCURRENCY`` and
   ``FARM_PREFETCH`` 16) each drain the queue. Each one's CPU time per job excluding
   startup (``/proc/<pid>/stat`` read once it consumes and once the queue is empty) and
   its drain rate (first job to last); the best round of each, and their ratio. With
   ``--baseline-src``, a worker run from those source directories (put first on
   ``PYTHONPATH``: e.g. copies of ``packages/farm-supervisor/src`` and
   ``packages/queue-core/src`` taken before a change) drains too in each round, so a
   change and its baseline are measured side by side.
2. Then one worker drains the queue under cProfile, switched on once it consumes and off
   once the queue is empty (so startup and shutdown are left out). Printed: where its
   CPU went, in µs per job (tottime), split into our code (``fast_app``, with the C
   functions it calls directly), the job's own code and library code (aio-pika,
   aiormq, pamqp, asyncio...); our share of the profiled time; and the top functions of
   each by tottime and of ours by cumtime. Times are the thread's CPU time
   (``time.thread_time``), so waits for the broker are left out. cProfile's own overhead
   inflates every figure, calls most: read its figures for where the time goes, the
   unprofiled rows for how much.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
PREFETCH = 16
# cProfile's key of a function: (file, line, name); C functions have the file "~".
FunctionKey = tuple[str, int, str]


# -- the child: one worker under cProfile ------------------------------------------------


def profiled_worker(output: str) -> int:
    """Run ``fast-app worker`` in this process; SIGUSR1 starts profiling, SIGUSR2 stops it
    and writes the profile to ``output`` (SIGTERM then stops the worker as usual)."""
    from fast_app.farm.cli import main

    # CPU time, not wall time: waiting for the broker and spells without the core
    # (2 shared cores) are no cost of the code that happened to be running.
    profiler = cProfile.Profile(time.thread_time)

    def start(_signum: int, _frame: Any) -> None:
        profiler.enable()

    def stop(_signum: int, _frame: Any) -> None:
        profiler.disable()
        profiler.dump_stats(output)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    sys.argv = ["fast-app", "worker", "--log-level", "WARNING"]
    return main()


# -- the parent: broker, queue, consumers --------------------------------------------------


@contextlib.contextmanager
def broker() -> Iterator[str]:
    """The broker's URL: ``RABBITMQ_URL``'s, or a private node's."""
    if os.environ.get("RABBITMQ_URL"):
        yield os.environ["RABBITMQ_URL"]
        return
    from fast_app.core.queue.testing.rabbitmq import rabbitmq_node

    with rabbitmq_node() as node:
        yield node.url


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def queue_counts(url: str, queue_name: str) -> tuple[int, int]:
    """Messages ready and consumers of ``queue_name``."""
    import aio_pika

    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue_name, passive=True)
        result = declared.declaration_result
        return result.message_count or 0, result.consumer_count or 0
    finally:
        await connection.close()


async def wait_until(url: str, queue_name: str, *, consumers: int | None = None) -> None:
    """Wait for ``consumers`` consumers on the queue, or (``None``) for it to be empty."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        ready, consuming = await queue_counts(url, queue_name)
        if (consumers is not None and consuming >= consumers) or (consumers is None and ready == 0):
            return
        await asyncio.sleep(0.02)
    raise RuntimeError(f"{queue_name}: timed out")


async def fill(jobs: int) -> None:
    """Enqueue ``jobs`` no-op jobs on the configured queue."""
    import bench_jobs

    from fast_app.core.queue import job_call, queue_many

    result = await queue_many(job_call(bench_jobs.noop) for _ in range(jobs))
    result.raise_failures()


@dataclass(frozen=True)
class Drain:
    """One consumer's drain of the queue."""

    cpu_us_per_job: float
    jobs_per_s: float


def consumer_command(kind: str, url: str, queue_name: str, profile: Path | None) -> list[str]:
    if kind == "raw":
        return [sys.executable, str(HERE / "raw_consumer.py"), url, queue_name, str(PREFETCH)]
    if profile is not None:
        return [sys.executable, str(Path(__file__).resolve()), "--profiled-worker", str(profile)]
    return [sys.executable, "-m", "fast_app.farm", "worker", "--log-level", "WARNING"]


async def drain(
    kind: str,
    url: str,
    queue_name: str,
    queue_type: str,
    jobs: int,
    figures: Path,
    *,
    source: str | None = None,
    profile: Path | None = None,
) -> Drain:
    """Fill the queue, drain it with one consumer (``raw`` or ``farm``, run from
    ``source`` directories when given); its CPU per job and drain rate."""
    await fill(jobs)
    os.makedirs(figures)
    command = consumer_command(kind, url, queue_name, profile)
    if kind == "raw":
        command.append(str(figures))
    python_path = [str(HERE)]
    if source:
        python_path = [*source.split(","), *python_path]
    env = {
        **os.environ,
        "RABBITMQ_URL": url,
        "QUEUE_NAME": queue_name,
        "QUEUE_TYPE": queue_type,
        "FARM_CONCURRENCY": str(PREFETCH),
        "FARM_PREFETCH": str(PREFETCH),
        "FARM_ALLOWED_MODULES": "bench_jobs",
        "FARM_SHUTDOWN": "bench_jobs:write_figures",
        "BENCH_FIGURES_DIR": str(figures),
        "PYTHONPATH": os.pathsep.join(python_path),
    }
    log = figures / "log"
    with open(log, "wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        await wait_until(url, queue_name, consumers=1)
        if profile is not None:
            process.send_signal(signal.SIGUSR1)
        cpu_before = cpu_seconds(process.pid)
        await wait_until(url, queue_name)
        await asyncio.sleep(0.3)  # the last prefetched deliveries end
        cpu_after = cpu_seconds(process.pid)
        if profile is not None:
            process.send_signal(signal.SIGUSR2)
            await asyncio.sleep(1)  # the profile is written
    finally:
        process.terminate()
        process.wait(60)
    return figures_of(kind, figures, jobs, cpu_after - cpu_before)


def figures_of(kind: str, figures: Path, jobs: int, cpu_s: float) -> Drain:
    """The drain the consumer's figures (written at its exit) and its CPU time show."""
    data_files = list(figures.glob("*.json"))
    if not data_files:
        raise RuntimeError(f"{kind}: no figures: {(figures / 'log').read_text()[-2000:]}")
    data = json.loads(data_files[0].read_text())
    if data["count"] != jobs:
        raise RuntimeError(f"{kind}: {data['count']} of {jobs} jobs ran")
    return Drain(cpu_s / jobs * 1e6, (data["count"] - 1) / (data["last"] - data["first"]))


# -- reading the profile -----------------------------------------------------------------


def kind_of(key: FunctionKey) -> str:
    """``ours``, ``job`` (the benchmark's job function), ``library`` or ``C``."""
    file = key[0]
    if file == "~":
        return "C"
    if "/fast_app/" in file:
        return "ours"
    if file.endswith("bench_jobs.py"):
        return "job"
    return "library"


def label(key: FunctionKey) -> str:
    file, line, name = key
    if file == "~":
        return name
    parts = Path(file).parts
    if "fast_app" in parts:
        parts = parts[parts.index("fast_app") + 1 :]
    elif "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1 :]
    else:
        parts = parts[-2:]
    return f"{'/'.join(parts)}:{line}({name})"


def report_profile(path: Path, jobs: int, top: int) -> None:
    stats: dict[FunctionKey, Any] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    # C functions are counted with whoever called them: a msgspec decode called by our
    # code is ours, a socket send called by aiormq is the library's.
    by_kind: dict[str, float] = {"ours": 0.0, "job": 0.0, "library": 0.0}
    ours_c: dict[FunctionKey, float] = {}
    for key, (_, _, tottime, _, callers) in stats.items():
        kind = kind_of(key)
        if kind != "C":
            by_kind[kind] += tottime
            continue
        for caller, (_, _, caller_tottime, _) in callers.items():
            caller_kind = kind_of(caller)
            by_kind["library" if caller_kind == "C" else caller_kind] += caller_tottime
            if caller_kind == "ours":
                ours_c[key] = ours_c.get(key, 0.0) + caller_tottime
    total = sum(by_kind.values())

    def us(seconds: float) -> str:
        return f"{seconds / jobs * 1e6:8.2f}"

    print(f"\nprofiled drain of {jobs} jobs: {us(total)} µs/job in all (under cProfile)")
    for kind, seconds in by_kind.items():
        print(f"  {kind:8}{us(seconds)} µs/job  {seconds / total:6.1%}")
    rows = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)
    ours = [(key, value) for key, value in rows if kind_of(key) == "ours"]
    print(f"\nour functions by tottime (µs/job, calls/job), top {top}:")
    for key, (_, calls, tottime, cumtime, _) in ours[:top]:
        print(f"  {us(tottime)} {us(cumtime)} {calls / jobs:6.2f}  {label(key)}")
    print(f"\nC functions called by our code, by the time of those calls (µs/job), top {top}:")
    for key, seconds in sorted(ours_c.items(), key=lambda item: item[1], reverse=True)[:top]:
        print(f"  {us(seconds)}  {label(key)}")
    print(f"\nour functions by cumtime (µs/job; tottime, cumtime), top {top}:")
    for key, (_, calls, tottime, cumtime, _) in sorted(
        ours, key=lambda item: item[1][3], reverse=True
    )[:top]:
        print(f"  {us(tottime)} {us(cumtime)} {calls / jobs:6.2f}  {label(key)}")
    print(f"\nlibrary and C functions by tottime (µs/job; tottime, cumtime), top {top}:")
    others = [(key, value) for key, value in rows if kind_of(key) in ("library", "C")]
    for key, (_, calls, tottime, cumtime, _) in others[:top]:
        print(f"  {us(tottime)} {us(cumtime)} {calls / jobs:6.2f}  {label(key)}")


# -- the run -----------------------------------------------------------------------------


async def main(options: argparse.Namespace) -> None:
    sys.path.insert(0, str(HERE))
    import aio_pika

    from fast_app.core.queue import close as close_queue
    from fast_app.core.queue import configure
    from fast_app.core.queue.amqp import Topology

    kinds = ["raw", "farm"] + (["baseline"] if options.baseline_src else [])
    with broker() as url, tempfile.TemporaryDirectory() as directory:
        queue_name = f"bench.profile.{options.queue_type}.{uuid.uuid4().hex[:6]}"
        configure(
            driver="async_farm",
            rabbitmq_url=url,
            name=queue_name,
            queue_type=options.queue_type,
            connect_timeout_s=60,
        )
        connection = await aio_pika.connect(url)
        await Topology(queue_name, options.queue_type, 10).declare(await connection.channel())
        await connection.close()
        figures = Path(directory)
        await drain("farm", url, queue_name, options.queue_type, 200, figures / "warmup")
        results: dict[str, list[Drain]] = {kind: [] for kind in kinds}
        for round_number in range(options.rounds):
            # Alternating order: a slow spell of the shared cores hits each in turn.
            order = kinds if round_number % 2 == 0 else kinds[::-1]
            for kind in order:
                result = await drain(
                    "raw" if kind == "raw" else "farm",
                    url,
                    queue_name,
                    options.queue_type,
                    options.jobs,
                    figures / f"{kind}-{round_number}",
                    source=options.baseline_src if kind == "baseline" else None,
                )
                results[kind].append(result)
                print(
                    f"round {round_number} {kind:9}{result.cpu_us_per_job:8.1f} µs/job"
                    f"{result.jobs_per_s:9.0f} jobs/s",
                    flush=True,
                )
        if options.rounds:
            raw = results["raw"]
            best_raw_cpu = min(r.cpu_us_per_job for r in raw)
            best_raw_rate = max(r.jobs_per_s for r in raw)
            print(
                f"\n{options.queue_type}, {options.jobs} no-op jobs, 1 consumer at prefetch "
                f"{PREFETCH}, best of {options.rounds} (median in brackets)"
            )
            print(f"{'':10}{'CPU µs/job':>18}{'x raw':>7}{'drain jobs/s':>20}{'x raw':>7}")
            for kind in kinds:
                cpus = sorted(r.cpu_us_per_job for r in results[kind])
                rates = sorted(r.jobs_per_s for r in results[kind])
                cpu_median, rate_median = cpus[len(cpus) // 2], rates[len(rates) // 2]
                print(
                    f"{kind:10}{cpus[0]:8.1f} ({cpu_median:6.1f}){cpus[0] / best_raw_cpu:7.2f}"
                    f"{rates[-1]:10.0f} ({rate_median:6.0f}){rates[-1] / best_raw_rate:7.2f}"
                )
        if options.profile:
            output = Path(options.profile_out or figures / "worker.prof")
            await drain(
                "farm",
                url,
                queue_name,
                options.queue_type,
                options.jobs,
                figures / "profiled",
                profile=output,
            )
            report_profile(output, options.jobs, options.top)
            if options.profile_out:
                print(f"\nprofile written to {output}")
        await close_queue()


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queue-type", choices=["quorum", "classic"], default="quorum")
    parser.add_argument(
        "--baseline-src",
        help="comma-separated source directories to run a baseline worker from",
    )
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--profile-out", help="keep the profile in this file")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--profiled-worker", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    parsed = parse_options()
    if parsed.profiled_worker:
        sys.exit(profiled_worker(parsed.profiled_worker))
    asyncio.run(main(parsed))
