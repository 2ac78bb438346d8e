"""The async farm against raw aio-pika on the same private broker, in one run.

Run: ``uv run python benchmarks/farm_throughput.py [--jobs 20000] [--queue-type quorum]``
(``--queue-type both`` measures quorum and classic queues one after the other).

1. enqueue rate: one process, every ``queue()`` call concurrent (confirms on), against
   raw aio-pika publishing the same bytes with pipelined confirms;
2. drain rate: ``--jobs`` no-op ``async def`` jobs already queued, 2 worker processes,
   first to last job, against 2 raw aio-pika consumer processes (same prefetch, ack each);
3. enqueue-to-start latency p50 / p99 with an idle worker, jobs sent 2 ms apart;
4. worker CPU time per job, from the processes' own CPU accounting;
5. RSS of an idle worker.

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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import bench_jobs

from fast_app.core.queue import close as close_queue
from fast_app.core.queue import configure, queue
from fast_app.core.queue.amqp import Topology
from fast_app.core.queue.testing.rabbitmq import RabbitMQNode, rabbitmq_node
from fast_app.core.queue.worker_side import prepare

HERE = Path(__file__).parent
PREFETCH = 16
TICKS = os.sysconf("SC_CLK_TCK")


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


@dataclass
class Consumer:
    process: subprocess.Popen[bytes]
    log: Path

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


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
            command = [
                sys.executable,
                str(HERE / "raw_consumer.py"),
                url,
                queue_name,
                str(prefetch),
                str(figures),
            ]
            env = dict(os.environ)
        with open(log, "wb") as output:
            process = subprocess.Popen(
                command, env=env, stdout=output, stderr=subprocess.STDOUT, cwd=HERE
            )
        consumers.append(Consumer(process, log))
    await wait_ready(url, queue_name, count)
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
    """Stop the consumers; their figures merged (``lasts``: each one's last job)."""
    for consumer in consumers:
        consumer.process.terminate()
    for consumer in consumers:
        consumer.process.wait(60)
    merged: dict[str, Any] = {
        "count": 0,
        "first": None,
        "last": None,
        "latencies": [],
        "lasts": [],
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


async def declare(url: str, topology: Topology) -> None:
    connection = await aio_pika.connect(url)
    try:
        await topology.declare(await connection.channel())
    finally:
        await connection.close()


async def enqueue_ours(count: int, make_args: Any = None) -> float:
    started = time.perf_counter()
    await asyncio.gather(*(queue(bench_jobs.noop) for _ in range(count)))
    return count / (time.perf_counter() - started)


async def enqueue_raw(url: str, queue_name: str, count: int) -> float:
    submission = prepare(bench_jobs.noop, (), {}, max_payload_bytes=1 << 20, allow_unportable=False)
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        started = time.perf_counter()
        await asyncio.gather(
            *(
                channel.default_exchange.publish(
                    aio_pika.Message(
                        submission.body,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        message_id=uuid.uuid4().hex,
                    ),
                    routing_key=queue_name,
                )
                for _ in range(count)
            )
        )
        return count / (time.perf_counter() - started)
    finally:
        await connection.close()


def best(results: dict[str, float], key: str, value: float, pick: Any) -> None:
    results[key] = pick(results[key], value) if key in results else value


async def drain_round(
    url: str,
    queue_type: str,
    raw_queue: str,
    ours_queue: str,
    jobs: int,
    figures: Path,
    results: dict[str, float],
) -> None:
    """Drain the ``jobs`` already queued on each side with 2 consumer processes."""
    for kind, name in (("raw", raw_queue), ("farm", ours_queue)):
        directory = figures / f"{kind}-{queue_type}"
        directory.mkdir(parents=True)
        consumers = await start_consumers(kind, url, name, queue_type, 2, directory)
        cpu_before = sum(c.cpu_s() for c in consumers)
        await queue_empty(url, name, jobs, directory, kind)
        cpu_after = sum(c.cpu_s() for c in consumers)
        data = stop(consumers, directory)
        assert data["count"] == jobs, f"{kind}: {data['count']} of {jobs} jobs ran"
        best(results, f"drain_{kind}", (jobs - 1) / (data["last"] - data["first"]), max)
        best(results, f"cpu_us_{kind}", (cpu_after - cpu_before) / jobs * 1e6, min)


async def fresh_queues(url: str, queue_type: str) -> tuple[str, str]:
    """New queues of ``queue_type`` for one measurement: the farm's (configured for
    ``queue()``) and raw aio-pika's (declared); their names."""
    ours_queue = f"bench.farm.{queue_type}.{uuid.uuid4().hex[:6]}"
    raw_queue = f"bench.raw.{queue_type}.{uuid.uuid4().hex[:6]}"
    configure(
        driver="async_farm",
        rabbitmq_url=url,
        name=ours_queue,
        queue_type=queue_type,
        connect_timeout_s=60,
    )
    await declare(url, Topology(raw_queue, queue_type, 10))  # type: ignore[arg-type]
    return ours_queue, raw_queue


async def measure(
    url: str, queue_type: str, jobs: int, figures: Path, rounds: int
) -> dict[str, float]:
    ours_queue, raw_queue = await fresh_queues(url, queue_type)
    results: dict[str, float] = {}

    # 1, 2 and 4, in alternating rounds (2 shared cores make single runs noisy): the best
    # round of each side is reported.
    await enqueue_ours(200)  # connect and warm up
    await enqueue_raw(url, raw_queue, 200)
    await drain_round(url, queue_type, raw_queue, ours_queue, 200, figures / "warmup", results)
    results.clear()
    for round_number in range(rounds):
        best(results, "enqueue_raw", await enqueue_raw(url, raw_queue, jobs), max)
        best(results, "enqueue_ours", await enqueue_ours(jobs), max)
        await drain_round(
            url, queue_type, raw_queue, ours_queue, jobs, figures / f"round-{round_number}", results
        )

    # 3. latency with an idle consumer, jobs sent 2 ms apart
    samples = 500
    for kind, name in (("raw", raw_queue), ("farm", ours_queue)):
        directory = figures / f"latency-{kind}-{queue_type}"
        directory.mkdir()
        consumers = await start_consumers(kind, url, name, queue_type, 1, directory)
        if kind == "farm":
            await asyncio.sleep(1)  # idle
            results["idle_rss_mb"] = consumers[0].rss_mb()
        if kind == "raw":
            connection = await aio_pika.connect(url)
            channel = await connection.channel(publisher_confirms=True)
            for _ in range(samples):
                body = json.dumps({"sent_at": time.time()}).encode()
                await channel.default_exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=name,
                )
                await asyncio.sleep(0.002)
            await connection.close()
        else:
            for _ in range(samples):
                await queue(bench_jobs.timed, time.time())
                await asyncio.sleep(0.002)
        await queue_empty(url, name, samples, directory, kind)
        latencies = sorted(stop(consumers, directory)["latencies"])
        results[f"p50_ms_{kind}"] = statistics.median(latencies) * 1000
        results[f"p99_ms_{kind}"] = latencies[int(len(latencies) * 0.99) - 1] * 1000
    await close_queue()
    return results


def report(queue_type: str, jobs: int, rounds: int, r: dict[str, float]) -> None:
    print(
        f"\n{queue_type} queues, {jobs} jobs, 2 worker processes, prefetch {PREFETCH}, best of {rounds} rounds"
    )
    print(f"{'':38}{'fast-app':>12}{'raw aio-pika':>14}{'ratio':>8}")
    rows = [
        ("enqueue rate (jobs/s, confirms on)", "enqueue_ours", "enqueue_raw", "{:12.0f}"),
        ("drain rate (jobs/s)", "drain_farm", "drain_raw", "{:12.0f}"),
        ("worker CPU per job (µs)", "cpu_us_farm", "cpu_us_raw", "{:12.0f}"),
        ("latency p50 (ms)", "p50_ms_farm", "p50_ms_raw", "{:12.2f}"),
        ("latency p99 (ms)", "p99_ms_farm", "p99_ms_raw", "{:12.2f}"),
    ]
    for label, ours, raw, fmt in rows:
        print(f"{label:38}{fmt.format(r[ours])}{fmt.format(r[raw]):>14}{r[ours] / r[raw]:8.2f}")
    print(f"{'idle worker RSS (MB)':38}{r['idle_rss_mb']:12.1f}")
    print(
        "targets: enqueue >= 0.8x raw: {}, drain >= 0.7x raw: {}, p50 within 0.5 ms of raw: {}, "
        "idle RSS <= 60 MB: {}".format(
            "yes" if r["enqueue_ours"] >= 0.8 * r["enqueue_raw"] else "NO",
            "yes" if r["drain_farm"] >= 0.7 * r["drain_raw"] else "NO",
            "yes" if r["p50_ms_farm"] - r["p50_ms_raw"] <= 0.5 else "NO",
            "yes" if r["idle_rss_mb"] <= 60 else "NO",
        )
    )


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


async def measure_prefetch(
    url: str,
    queue_type: str,
    jobs: int,
    figures: Path,
    rounds: int,
    prefetches: list[int],
    mix: Mix,
) -> dict[str, float]:
    """Drain rates and mix drains at each prefetch, best of ``rounds`` alternating rounds."""
    ours_queue, raw_queue = await fresh_queues(url, queue_type)
    results: dict[str, float] = {}
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
            best(results, f"tail_{prefetch}", max(data["lasts"]) - min(data["lasts"]), min)
            if prefetch not in prefetches:
                continue
            await enqueue_raw(url, raw_queue, jobs)
            data = await drain_at("raw", url, raw_queue, queue_type, jobs, where / "raw", prefetch)
            best(results, f"raw_{prefetch}", (jobs - 1) / (data["last"] - data["first"]), max)
            await enqueue_ours(jobs)
            data = await drain_at(
                "farm", url, ours_queue, queue_type, jobs, where / "farm", prefetch
            )
            best(results, f"farm_{prefetch}", (jobs - 1) / (data["last"] - data["first"]), max)
    await close_queue()
    return results


def report_prefetch(
    queue_type: str, jobs: int, rounds: int, prefetches: list[int], mix: Mix, r: dict[str, float]
) -> None:
    print(
        f"\n{queue_type} queues, {jobs} no-op jobs, 2 worker processes at "
        f"FARM_CONCURRENCY={SWEEP_CONCURRENCY} (or the prefetch if lower), best of {rounds} rounds"
    )
    print(f"{'FARM_PREFETCH':>14}{'farm drain (jobs/s)':>21}{'raw drain (msg/s)':>19}{'ratio':>7}")
    for prefetch in prefetches:
        farm, raw = r[f"farm_{prefetch}"], r[f"raw_{prefetch}"]
        print(f"{prefetch:>14}{farm:21.0f}{raw:19.0f}{farm / raw:7.2f}")
    ideal = mix.long_jobs * mix.long_ms / 1000 / 2
    print(
        f"mix: {mix.jobs} jobs of which {mix.long_jobs} of {mix.long_ms:g} ms CPU work spread "
        f"evenly, 2 workers at FARM_CONCURRENCY={mix.concurrency} (the long jobs' work alone, "
        f"shared by 2 workers: {ideal:.1f} s)"
    )
    print(f"{'FARM_PREFETCH':>14}{'makespan (s)':>14}{'tail idle (s)':>15}")
    for prefetch in sorted({mix.concurrency, *prefetches}):
        print(f"{prefetch:>14}{r[f'mix_{prefetch}']:14.2f}{r[f'tail_{prefetch}']:15.2f}")


async def main(
    jobs: int,
    queue_types: list[str],
    rounds: int,
    prefetches: list[int] | None = None,
    mix: Mix | None = None,
) -> None:
    # The prefetch sweep reads unacknowledged counts: fresher statistics (every 0.5 s).
    with (
        broker(500 if prefetches else None) as url,
        tempfile.TemporaryDirectory() as directory,
    ):
        for queue_type in queue_types:
            if prefetches and mix is not None:
                results = await measure_prefetch(
                    url, queue_type, jobs, Path(directory), rounds, prefetches, mix
                )
                report_prefetch(queue_type, jobs, rounds, prefetches, mix, results)
                continue
            report(
                queue_type,
                jobs,
                rounds,
                await measure(url, queue_type, jobs, Path(directory), rounds),
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--queue-type", choices=["quorum", "classic", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=3)
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
    types = ["quorum", "classic"] if options.queue_type == "both" else [options.queue_type]
    prefetch_values = (
        [int(value) for value in options.prefetch.split(",")] if options.prefetch else None
    )
    asyncio.run(
        main(
            options.jobs,
            types,
            options.rounds,
            prefetch_values,
            Mix(
                options.mix_jobs or options.jobs,
                options.long_jobs,
                options.long_ms,
                options.mix_concurrency,
            ),
        )
    )
