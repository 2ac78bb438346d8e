"""The async farm against raw aio-pika on the same private broker, in one run.

Run: ``uv run python benchmarks/farm_throughput.py [--jobs 20000] [--rounds 3]
[--queue-type both] [--bursts 8] [--lifecycle-only]``. A table per queue type (quorum,
classic, or both one after the other), the farm beside raw aio-pika doing the same work,
with their ratio and the targets met or not:

1. drain rate: ``--jobs`` no-op ``async def`` jobs already queued, 2 ``fast-app worker``
   processes started directly (no supervisor), first to last job, against 2 raw aio-pika
   consumer processes (same prefetch, ack each);
2. worker CPU time per job of that drain, from the processes' own CPU accounting
   (``/proc/<pid>/stat``): excluding startup (read when they consume and when the queue is
   empty), and including it (everything the process used, read at its exit);
3. start to consuming: from launching ``fast-app work`` holding 2 workers to the queue
   having 2 consumers, against launching 2 raw consumers (median of ``--rounds``);
4. memory once idle after that start: RSS and PSS summed over the supervisor and all its
   descendants, against the 2 raw consumers;
5. enqueue rate from one process with confirms on: every ``queue()`` call concurrent,
   against raw aio-pika publishing the same bytes with pipelined confirms; and one
   awaited ``queue()`` at a time, against one awaited raw publish at a time;
6. enqueue-to-start latency p50 / p99 with an idle worker, jobs sent 2 ms apart (500 a
   round, ``--rounds`` alternating rounds pooled);
7. spawn reaction: from the supervisor's scale-up decision to the new worker consuming,
   p95 over the scale-ups of the bursts of row 8 (see farm_lifecycle.py for how);
8. scale-up reaction: 2,000 jobs of 50 ms arriving at once at an idle ``fast-app work``
   of 1 to 4 workers (default scaling settings): time from the first job published to
   the 4th worker consuming, and to the backlog drained (median of ``--bursts``).

Rows 3, 4, 7 and 8 are printed for each worker start mode the installed farm has
(``FARM_WORKER_START``). ``--lifecycle-only`` measures those rows alone, quickly.
Rates and ratios that a run too small cannot measure are printed as "—".

``--prefetch 16,64,256`` measures instead how ``FARM_PREFETCH`` (at ``FARM_CONCURRENCY``
16) changes, for each value in alternating rounds:

- the drain rate of ``--jobs`` no-op jobs (2 workers), beside raw aio-pika at the same
  prefetch;
- the drain of a mix: ``--mix-jobs`` jobs of which ``--long-jobs`` do ``--long-ms`` of CPU
  work, spread evenly among no-op ones, 2 workers at ``--mix-concurrency``. A worker busy
  with a long job holds the deliveries it prefetched; the figures are the time from the
  first job to the last (the makespan) and how long the worker that finished first then
  sat idle while the other still had jobs (the tail).

Uses ``RABBITMQ_URL`` when set, else starts a private node from the installed server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import bench_jobs
from farm_lifecycle import Results, measure_lifecycle, raw_consumer_command, worker_start_modes
from farm_report import cell, ratio, report
from proc_figures import cpu_seconds, cpu_seconds_at_exit

from fast_app.core.queue import close as close_queue
from fast_app.core.queue import configure, queue
from fast_app.core.queue.amqp import Topology
from fast_app.core.queue.testing.rabbitmq import RabbitMQNode, rabbitmq_node
from fast_app.core.queue.worker_side import prepare

HERE = Path(__file__).parent
PREFETCH = 16
SEQUENTIAL_JOBS = 2000  # at most, for the one-at-a-time enqueue rates
LATENCY_SAMPLES = 500


_private_node: RabbitMQNode | None = None  # the node ``broker`` started, if it did


@contextlib.contextmanager
def broker(stats_interval_ms: int | None = None) -> Iterator[str]:
    """The broker's URL; a private node's statistics every ``stats_interval_ms`` if given."""
    global _private_node
    if os.environ.get("RABBITMQ_URL"):
        yield os.environ["RABBITMQ_URL"]
        return
    extra = (
        {} if stats_interval_ms is None else {"collect_statistics_interval": str(stats_interval_ms)}
    )
    with rabbitmq_node(extra_config=extra) as node:
        _private_node = node
        try:
            yield node.url
        finally:
            _private_node = None


def rate(count: int, seconds: float) -> float | None:
    """``count / seconds``, or ``None`` when the run was too short to measure one."""
    return count / seconds if count > 0 and seconds > 0 else None


@dataclass
class Consumer:
    process: subprocess.Popen[bytes]
    log: Path

    def cpu_s(self) -> float:
        """CPU time it used so far."""
        return cpu_seconds(self.process.pid)


async def start_consumers(
    kind: str,
    url: str,
    queue_name: str,
    queue_type: str,
    count: int,
    figures: Path,
    extra_env: dict[str, str] | None = None,
    *,
    prefetch: int = PREFETCH,
    concurrency: int | None = None,
) -> list[Consumer]:
    """Start ``count`` consumers: farm workers (``FARM_CONCURRENCY`` ``concurrency``, default
    the prefetch) or raw aio-pika ones, each with ``prefetch``."""
    consumers = []
    for index in range(count):
        log = figures / f"{kind}-{index}.log"
        if kind == "farm":
            command = [sys.executable, "-m", "fast_app.farm", "worker", "--log-level", "WARNING"]
            env = {
                **os.environ,
                "RABBITMQ_URL": url,
                "QUEUE_NAME": queue_name,
                "QUEUE_TYPE": queue_type,
                "FARM_CONCURRENCY": str(concurrency or prefetch),
                "FARM_PREFETCH": str(prefetch),
                "FARM_ALLOWED_MODULES": "bench_jobs",
                "FARM_SHUTDOWN": "bench_jobs:write_figures",
                "BENCH_FIGURES_DIR": str(figures),
                "PYTHONPATH": str(HERE),
                **(extra_env or {}),
            }
        else:
            command = raw_consumer_command(url, queue_name, prefetch, figures)
            env = dict(os.environ)
        with open(log, "wb") as output:
            process = subprocess.Popen(
                command, env=env, stdout=output, stderr=subprocess.STDOUT, cwd=HERE
            )
        consumers.append(Consumer(process, log))
    try:
        await wait_ready(url, queue_name, count)
    except RuntimeError:
        # None left behind consuming (or retrying) once the run is over.
        for consumer in consumers:
            consumer.process.kill()
            consumer.process.wait()
        tails = "\n".join(c.log.read_text()[-1000:] for c in consumers)
        raise RuntimeError(f"{count} {kind} consumers did not start:\n{tails}") from None
    return consumers


async def wait_ready(url: str, queue_name: str, consumers: int) -> None:
    deadline = time.monotonic() + 60
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        while time.monotonic() < deadline:
            declared = await channel.declare_queue(queue_name, passive=True)
            if (declared.declaration_result.consumer_count or 0) >= consumers:
                return
            await asyncio.sleep(0.05)
    finally:
        await connection.close()
    raise RuntimeError("consumers did not start")


async def queue_empty(url: str, queue_name: str, expected: int, figures: Path, kind: str) -> None:
    """Wait until every job ran: the consumers' counters are only written at exit, so poll depth."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            declared = await channel.declare_queue(queue_name, passive=True)
            if declared.declaration_result.message_count == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        await connection.close()
    await asyncio.sleep(0.5)  # the last prefetched deliveries finish


def stop(consumers: list[Consumer], figures: Path) -> dict[str, Any]:
    """Stop the consumers; their figures merged (``lasts``: each one's last job;
    ``cpu_at_exit_s``: the CPU time they used in all, start to exit)."""
    for consumer in consumers:
        consumer.process.terminate()
    merged: dict[str, Any] = {
        "count": 0,
        "first": None,
        "last": None,
        "latencies": [],
        "lasts": [],
        "cpu_at_exit_s": sum(cpu_seconds_at_exit(c.process) for c in consumers),
    }
    for consumer in consumers:
        path = figures / f"{consumer.process.pid}.json"
        if not path.exists():
            raise RuntimeError(
                f"no figures from {consumer.process.pid}: {consumer.log.read_text()[-2000:]}"
            )
        data = json.loads(path.read_text())
        merged["count"] += data["count"]
        merged["latencies"] += data["latencies"]
        merged["lasts"].append(data["last"])
        if data["first"] is not None:
            merged["first"] = min(filter(None, [merged["first"], data["first"]]))
            merged["last"] = max(filter(None, [merged["last"], data["last"]]))
    return merged


def drain_rate(data: dict[str, Any]) -> float | None:
    """Jobs per second from the first job to the last, of merged figures."""
    if data["first"] is None:
        return None
    return rate(data["count"] - 1, data["last"] - data["first"])


async def declare(url: str, topology: Topology) -> None:
    connection = await aio_pika.connect(url)
    try:
        await topology.declare(await connection.channel())
    finally:
        await connection.close()


async def remove_queues(url: str, queue_type: str, names: tuple[str, ...]) -> None:
    """Delete what the run declared for ``names``: on a broker of one's own
    (``RABBITMQ_URL``) nothing of the benchmark's is left behind."""
    connection = await aio_pika.connect(url)
    try:
        for name in names:
            topology = Topology(name, queue_type, 10)  # type: ignore[arg-type]
            for queue_name in (topology.jobs, topology.dead):
                channel = await connection.channel()
                with contextlib.suppress(aio_pika.exceptions.AMQPError):
                    await channel.queue_delete(queue_name)
            for exchange in (
                topology.dead_exchange,
                topology.tombstones_exchange,
                topology.events_exchange,
                topology.control_exchange,
            ):
                channel = await connection.channel()
                with contextlib.suppress(aio_pika.exceptions.AMQPError):
                    await channel.exchange_delete(exchange)
    finally:
        await connection.close()


async def purge(url: str, queue_name: str) -> None:
    """Drop every message of ``queue_name``."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        await (await channel.get_queue(queue_name, ensure=False)).purge()
    finally:
        await connection.close()


async def enqueue_ours(count: int, make_args: Any = None) -> float | None:
    """Rate of ``count`` concurrent ``queue()`` calls."""
    started = time.perf_counter()
    await asyncio.gather(*(queue(bench_jobs.noop) for _ in range(count)))
    return rate(count, time.perf_counter() - started)


async def enqueue_ours_one_by_one(count: int) -> float | None:
    """Rate of ``count`` ``queue()`` calls, each awaited before the next."""
    started = time.perf_counter()
    for _ in range(count):
        await queue(bench_jobs.noop)
    return rate(count, time.perf_counter() - started)


async def enqueue_raw(
    url: str, queue_name: str, count: int, *, one_by_one: bool = False
) -> float | None:
    """Rate of ``count`` raw publishes of a no-op job's bytes (confirms on): concurrent
    (pipelined confirms), or each confirmed before the next."""
    submission = prepare(bench_jobs.noop, (), {}, max_payload_bytes=1 << 20, allow_unportable=False)
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)

        async def publish() -> None:
            message = aio_pika.Message(
                submission.body,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=uuid.uuid4().hex,
            )
            await channel.default_exchange.publish(message, routing_key=queue_name)

        started = time.perf_counter()
        if one_by_one:
            for _ in range(count):
                await publish()
        else:
            await asyncio.gather(*(publish() for _ in range(count)))
        return rate(count, time.perf_counter() - started)
    finally:
        await connection.close()


def best(
    results: Results, key: str, value: float | None, pick: Callable[[float, float], float]
) -> None:
    """Keep ``pick`` (``max`` or ``min``) of ``value`` and what ``results[key]`` holds; a
    value that could not be measured (``None``) changes nothing."""
    if value is None:
        results.setdefault(key, None)
        return
    kept = results.get(key)
    results[key] = value if kept is None else pick(kept, value)


async def drain_round(
    url: str,
    queue_type: str,
    raw_queue: str,
    ours_queue: str,
    jobs: int,
    figures: Path,
    results: Results,
) -> None:
    """Drain the ``jobs`` already queued on each side with 2 consumer processes: rate, and
    CPU per job without and with the processes' startup."""
    for kind, name in (("raw", raw_queue), ("farm", ours_queue)):
        directory = figures / f"{kind}-{queue_type}"
        directory.mkdir(parents=True)
        consumers = await start_consumers(kind, url, name, queue_type, 2, directory)
        cpu_before = sum(c.cpu_s() for c in consumers)
        await queue_empty(url, name, jobs, directory, kind)
        cpu_after = sum(c.cpu_s() for c in consumers)
        data = stop(consumers, directory)
        assert data["count"] == jobs, f"{kind}: {data['count']} of {jobs} jobs ran"
        best(results, f"drain_{kind}", drain_rate(data), max)
        best(results, f"cpu_us_{kind}", (cpu_after - cpu_before) / jobs * 1e6, min)
        best(results, f"cpu_total_us_{kind}", data["cpu_at_exit_s"] / jobs * 1e6, min)


async def enqueue_round(
    url: str, raw_queue: str, ours_queue: str, jobs: int, results: Results
) -> None:
    """Enqueue rates, raw then ours: up to ``SEQUENTIAL_JOBS`` one at a time (purged
    after), then ``jobs`` concurrent publishes (left queued for the drain)."""
    sequential = min(jobs, SEQUENTIAL_JOBS)
    raw_rate = await enqueue_raw(url, raw_queue, sequential, one_by_one=True)
    best(results, "enqueue_seq_raw", raw_rate, max)
    best(results, "enqueue_seq_ours", await enqueue_ours_one_by_one(sequential), max)
    for name in (raw_queue, ours_queue):
        await purge(url, name)
    best(results, "enqueue_raw", await enqueue_raw(url, raw_queue, jobs), max)
    best(results, "enqueue_ours", await enqueue_ours(jobs), max)


async def fresh_queues(url: str, queue_type: str) -> tuple[str, str]:
    """New queues of ``queue_type`` for one measurement, both declared: the farm's
    (configured for ``queue()``) and raw aio-pika's; their names."""
    ours_queue = f"bench.farm.{queue_type}.{uuid.uuid4().hex[:6]}"
    raw_queue = f"bench.raw.{queue_type}.{uuid.uuid4().hex[:6]}"
    configure(
        driver="async_farm",
        rabbitmq_url=url,
        name=ours_queue,
        queue_type=queue_type,
        connect_timeout_s=60,
    )
    for name in (ours_queue, raw_queue):
        await declare(url, Topology(name, queue_type, 10))  # type: ignore[arg-type]
    return ours_queue, raw_queue


async def send_timed_raw(url: str, queue_name: str, samples: int) -> None:
    """``samples`` raw messages carrying their send time, 2 ms apart."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        for _ in range(samples):
            body = json.dumps({"sent_at": time.time()}).encode()
            await channel.default_exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=queue_name,
            )
            await asyncio.sleep(0.002)
    finally:
        await connection.close()


async def send_timed_ours(samples: int) -> None:
    """``samples`` jobs carrying their send time, 2 ms apart."""
    for _ in range(samples):
        await queue(bench_jobs.timed, time.time())
        await asyncio.sleep(0.002)


async def measure_latency(
    url: str,
    queue_type: str,
    raw_queue: str,
    ours_queue: str,
    figures: Path,
    results: Results,
    rounds: int,
) -> None:
    """Enqueue-to-start latency p50 / p99 with one idle consumer, jobs sent 2 ms apart:
    ``rounds`` alternating rounds of ``LATENCY_SAMPLES`` each, pooled (the p99 of one
    round of 500 is its 5th-longest wait: one scheduling hiccup moves it by 0.5 ms)."""
    pooled: dict[str, list[float]] = {"raw": [], "farm": []}
    for round_number in range(rounds):
        for kind, name in (("raw", raw_queue), ("farm", ours_queue)):
            directory = figures / f"latency-{kind}-{queue_type}-{round_number}"
            directory.mkdir()
            consumers = await start_consumers(kind, url, name, queue_type, 1, directory)
            if kind == "raw":
                await send_timed_raw(url, name, LATENCY_SAMPLES)
            else:
                await send_timed_ours(LATENCY_SAMPLES)
            await queue_empty(url, name, LATENCY_SAMPLES, directory, kind)
            pooled[kind] += stop(consumers, directory)["latencies"]
    for kind, latencies in pooled.items():
        latencies.sort()
        results[f"p50_ms_{kind}"] = statistics.median(latencies) * 1000
        results[f"p99_ms_{kind}"] = latencies[int(len(latencies) * 0.99) - 1] * 1000


async def measure(
    url: str, queue_type: str, queues: tuple[str, str], jobs: int, figures: Path, rounds: int
) -> Results:
    """Rows 1, 2, 5 and 6 for ``queue_type`` on ``queues`` (the farm's, raw's)."""
    ours_queue, raw_queue = queues
    results: Results = {}

    # Enqueue and drain in alternating rounds (2 shared cores make single runs noisy):
    # the best round of each side is reported.
    await enqueue_ours(200)  # connect and warm up
    await enqueue_raw(url, raw_queue, 200)
    await drain_round(url, queue_type, raw_queue, ours_queue, 200, figures / "warmup", results)
    results.clear()
    for round_number in range(rounds):
        await enqueue_round(url, raw_queue, ours_queue, jobs, results)
        await drain_round(
            url, queue_type, raw_queue, ours_queue, jobs, figures / f"round-{round_number}", results
        )
    await measure_latency(url, queue_type, raw_queue, ours_queue, figures, results, rounds)
    return results


# -- FARM_PREFETCH apart from FARM_CONCURRENCY -----------------------------------------

SWEEP_CONCURRENCY = 16


@dataclass(frozen=True)
class Mix:
    """No-op jobs with a few long (CPU-bound) ones spread evenly among them."""

    jobs: int
    long_jobs: int
    long_ms: float
    concurrency: int


async def enqueue_mix(mix: Mix) -> None:
    """Enqueue the mix in its order (batches of concurrent calls, one after the other)."""
    every = max(1, mix.jobs // (mix.long_jobs + 1))
    calls: list[Any] = []
    placed = 0
    for index in range(mix.jobs):
        if placed < mix.long_jobs and index % every == every - 1:
            calls.append((bench_jobs.busy, mix.long_ms))
            placed += 1
        else:
            calls.append((bench_jobs.noop,))
    for start in range(0, len(calls), 200):
        await asyncio.gather(*(queue(*call) for call in calls[start : start + 200]))


async def drain_at(
    kind: str,
    url: str,
    queue_name: str,
    queue_type: str,
    jobs: int,
    directory: Path,
    prefetch: int,
    concurrency: int = SWEEP_CONCURRENCY,
) -> dict[str, Any]:
    """Drain the ``jobs`` queued on ``queue_name`` with 2 consumers at ``prefetch`` (farm
    workers at ``concurrency``, or the prefetch if lower)."""
    os.makedirs(directory)
    consumers = await start_consumers(
        kind,
        url,
        queue_name,
        queue_type,
        2,
        directory,
        prefetch=prefetch,
        concurrency=min(concurrency, prefetch),
    )
    await queue_empty(url, queue_name, jobs, directory, kind)
    if kind == "farm":
        # Nothing is ready once every job is delivered, but the long ones may still run
        # with deliveries waiting behind them: stopping now would hand those back.
        await wait_all_acked(queue_name, fallback_s=30)
    data = stop(consumers, directory)
    assert data["count"] == jobs, f"{kind}: {data['count']} of {jobs} jobs ran"
    return data


async def wait_all_acked(queue_name: str, fallback_s: float) -> None:
    """Wait until ``queue_name`` has nothing ready or unacknowledged (every job ended).

    AMQP reads only the ready count: the unacknowledged one comes from ``rabbitmqctl`` of
    the private node (its statistics lag by their interval: two readings a second apart
    must agree); against ``RABBITMQ_URL``, wait ``fallback_s`` instead.
    """
    node = _private_node
    if node is None:
        await asyncio.sleep(fallback_s)
        return
    deadline = time.monotonic() + 600
    empty_since: float | None = None
    while time.monotonic() < deadline:
        listed = await asyncio.to_thread(
            node.rabbitmqctl, "list_queues", "name", "messages_ready", "messages_unacknowledged"
        )
        rows = [line.split("\t") for line in listed.stdout.splitlines()]
        if not any(row[0] == queue_name and row[1:3] == ["0", "0"] for row in rows):
            empty_since = None
        elif empty_since is None:
            empty_since = time.monotonic()
        elif time.monotonic() - empty_since >= 1:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{queue_name} still has unacknowledged jobs")


def tail_idle(lasts: list[float | None]) -> float | None:
    """How long the consumer that finished first sat idle before the last one finished;
    ``None`` when one of them ran no job at all (a mix too small to share)."""
    if None in lasts:
        return None
    ends = [end for end in lasts if end is not None]
    return max(ends) - min(ends)


async def measure_prefetch(
    url: str,
    queue_type: str,
    jobs: int,
    figures: Path,
    rounds: int,
    prefetches: list[int],
    mix: Mix,
) -> Results:
    """Drain rates and mix drains at each prefetch, best of ``rounds`` alternating rounds."""
    ours_queue, raw_queue = await fresh_queues(url, queue_type)
    results: Results = {}
    await enqueue_ours(200)  # connect and warm up
    warmup = figures / f"warmup-{queue_type}"
    await drain_at("farm", url, ours_queue, queue_type, 200, warmup, prefetches[0])
    for round_number in range(rounds):
        for prefetch in sorted({mix.concurrency, *prefetches}):
            where = figures / f"{queue_type}-{round_number}-{prefetch}"
            await enqueue_mix(mix)
            data = await drain_at(
                "farm",
                url,
                ours_queue,
                queue_type,
                mix.jobs,
                where / "mix",
                prefetch,
                mix.concurrency,
            )
            best(results, f"mix_{prefetch}", data["last"] - data["first"], min)
            best(results, f"tail_{prefetch}", tail_idle(data["lasts"]), min)
            if prefetch not in prefetches:
                continue
            await enqueue_raw(url, raw_queue, jobs)
            data = await drain_at("raw", url, raw_queue, queue_type, jobs, where / "raw", prefetch)
            best(results, f"raw_{prefetch}", drain_rate(data), max)
            await enqueue_ours(jobs)
            data = await drain_at(
                "farm", url, ours_queue, queue_type, jobs, where / "farm", prefetch
            )
            best(results, f"farm_{prefetch}", drain_rate(data), max)
    await close_queue()
    await remove_queues(url, queue_type, (ours_queue, raw_queue))
    return results


def report_prefetch(
    queue_type: str, jobs: int, rounds: int, prefetches: list[int], mix: Mix, r: Results
) -> None:
    print(
        f"\n{queue_type} queues, {jobs} no-op jobs, 2 worker processes at "
        f"FARM_CONCURRENCY={SWEEP_CONCURRENCY} (or the prefetch if lower), best of {rounds} rounds"
    )
    print(f"{'FARM_PREFETCH':>14}{'farm drain (jobs/s)':>21}{'raw drain (msg/s)':>19}{'ratio':>7}")
    for prefetch in prefetches:
        farm, raw = r[f"farm_{prefetch}"], r[f"raw_{prefetch}"]
        print(
            f"{prefetch:>14}{cell(farm, '{:21.0f}')}{cell(raw, '{:19.0f}')}{cell(ratio(farm, raw), '{:7.2f}')}"
        )
    ideal = mix.long_jobs * mix.long_ms / 1000 / 2
    print(
        f"mix: {mix.jobs} jobs of which {mix.long_jobs} of {mix.long_ms:g} ms CPU work spread "
        f"evenly, 2 workers at FARM_CONCURRENCY={mix.concurrency} (the long jobs' work alone, "
        f"shared by 2 workers: {ideal:.1f} s)"
    )
    print(f"{'FARM_PREFETCH':>14}{'makespan (s)':>14}{'tail idle (s)':>15}")
    for prefetch in sorted({mix.concurrency, *prefetches}):
        makespan, tail = r[f"mix_{prefetch}"], r[f"tail_{prefetch}"]
        print(f"{prefetch:>14}{cell(makespan, '{:14.2f}')}{cell(tail, '{:15.2f}')}")


# -- the run -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What one run measures."""

    jobs: int
    queue_types: list[str]
    rounds: int
    bursts: int
    lifecycle_only: bool = False
    prefetches: list[int] | None = None
    mix: Mix | None = None


async def compare(url: str, queue_type: str, plan: Plan, figures: Path) -> None:
    """Every row for ``queue_type`` (or rows 3, 4, 7 and 8 alone), then its table."""
    modes = worker_start_modes()
    queues = await fresh_queues(url, queue_type)
    try:
        results: Results = {}
        if not plan.lifecycle_only:
            results = await measure(url, queue_type, queues, plan.jobs, figures, plan.rounds)
        lifecycle = await measure_lifecycle(
            url, queue_type, *queues, figures, plan.rounds, plan.bursts, modes
        )
    finally:
        await close_queue()
        await remove_queues(url, queue_type, queues)
    report(
        queue_type,
        plan.jobs,
        plan.rounds,
        plan.bursts,
        {**results, **lifecycle.results},
        lifecycle.notes,
        modes,
    )


async def main(plan: Plan) -> None:
    # The prefetch sweep reads unacknowledged counts: fresher statistics (every 0.5 s).
    with (
        broker(500 if plan.prefetches else None) as url,
        tempfile.TemporaryDirectory() as directory,
    ):
        for queue_type in plan.queue_types:
            figures = Path(directory) / queue_type
            figures.mkdir()
            if plan.prefetches and plan.mix is not None:
                results = await measure_prefetch(
                    url, queue_type, plan.jobs, figures, plan.rounds, plan.prefetches, plan.mix
                )
                report_prefetch(
                    queue_type, plan.jobs, plan.rounds, plan.prefetches, plan.mix, results
                )
            else:
                await compare(url, queue_type, plan, figures)


def parse_plan() -> Plan:
    """The plan the command line asks for."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--queue-type", choices=["quorum", "classic", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--bursts",
        type=int,
        default=8,
        help="bursts per worker start mode (rows 7 and 8; 8 give some 20 scale-ups)",
    )
    parser.add_argument(
        "--lifecycle-only",
        action="store_true",
        help="measure rows 3, 4, 7 and 8 only (start, memory, spawn and scale-up reactions)",
    )
    parser.add_argument(
        "--prefetch",
        help="comma-separated FARM_PREFETCH values to compare (e.g. 16,64,256) instead of "
        "the comparison with raw aio-pika",
    )
    parser.add_argument("--mix-jobs", type=int, help="jobs in the mix (default: --jobs)")
    parser.add_argument("--long-jobs", type=int, default=8, help="long jobs in the mix")
    parser.add_argument("--long-ms", type=float, default=1000, help="CPU work of a long job")
    parser.add_argument(
        "--mix-concurrency", type=int, default=4, help="FARM_CONCURRENCY of the mix's workers"
    )
    options = parser.parse_args()
    return Plan(
        jobs=options.jobs,
        queue_types=(
            ["quorum", "classic"] if options.queue_type == "both" else [options.queue_type]
        ),
        rounds=options.rounds,
        bursts=options.bursts,
        lifecycle_only=options.lifecycle_only,
        prefetches=(
            [int(value) for value in options.prefetch.split(",")] if options.prefetch else None
        ),
        mix=Mix(
            options.mix_jobs or options.jobs,
            options.long_jobs,
            options.long_ms,
            options.mix_concurrency,
        ),
    )


if __name__ == "__main__":
    asyncio.run(main(parse_plan()))
