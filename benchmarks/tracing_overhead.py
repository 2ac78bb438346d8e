"""What OpenTelemetry costs the farm: the same work with tracing off and on, in one run.

Run: ``uv run python benchmarks/tracing_overhead.py [--jobs 20000] [--rounds 3]``

"On" means the SDK configured in the publisher (this process) and in the workers (their
startup hook), spans through a batch processor and metrics through a periodic reader,
to exporters that drop them (``bench_jobs.tracing_providers``): the cost of the
instrumentation and the SDK, not of a collector. "Off" means no SDK, the default.

1. enqueue rate: every ``queue()`` call concurrent (confirms on), quorum queue;
2. drain rate: ``--jobs`` no-op jobs already queued, 2 worker processes, first to last;
3. worker CPU time per job;
4. ``queue()`` on the sync driver, per call (the job runs in-process).

Off and on alternate in each round (2 shared cores make single runs noisy); the best
round of each is reported. Target: tracing costs at most 15% of enqueue and drain rates.
Uses ``RABBITMQ_URL`` when set, else starts a private node from the installed server.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import bench_jobs
from farm_throughput import best, broker, declare, enqueue_ours, queue_empty, start_consumers, stop

from fast_app.core.queue import close as close_queue
from fast_app.core.queue import configure, get_settings, queue
from fast_app.core.queue.amqp import Topology
from fast_app.core.queue.drivers import SyncDriver, override_driver
from fast_app.core.queue.telemetry import use_providers

WORKER_TRACING = {"FARM_STARTUP": "bench_jobs:configure_tracing"}
MODES = ("off", "on")


def switch(mode: str, providers: tuple[object, object]) -> None:
    if mode == "on":
        tracer_provider, meter_provider = providers
        use_providers(tracer_provider=tracer_provider, meter_provider=meter_provider)  # type: ignore[arg-type]
    else:
        use_providers()


async def drain(url: str, name: str, mode: str, jobs: int, figures: Path) -> tuple[float, float]:
    """Drain rate (jobs/s) and worker CPU per job (µs) of ``jobs`` queued on ``name``."""
    directory = figures / f"drain-{mode}-{uuid.uuid4().hex[:6]}"
    directory.mkdir(parents=True)
    extra = WORKER_TRACING if mode == "on" else None
    consumers = await start_consumers("farm", url, name, "quorum", 2, directory, extra)
    cpu_before = sum(c.cpu_s() for c in consumers)
    await queue_empty(url, name, jobs, directory, "farm")
    cpu_after = sum(c.cpu_s() for c in consumers)
    data = stop(consumers, directory)
    assert data["count"] == jobs, f"{mode}: {data['count']} of {jobs} jobs ran"
    return (jobs - 1) / (data["last"] - data["first"]), (cpu_after - cpu_before) / jobs * 1e6


async def sync_us_per_call(calls: int) -> float:
    with override_driver(SyncDriver(get_settings())):
        started = time.perf_counter()
        for _ in range(calls):
            await queue(bench_jobs.three_args, "66f2d3a1", 3, 0.5)
        return (time.perf_counter() - started) / calls * 1e6


async def measure(url: str, jobs: int, rounds: int, figures: Path) -> dict[str, float]:
    providers = bench_jobs.tracing_providers()
    # One queue: each mode enqueues its jobs, then its workers drain them.
    name = f"bench.tracing.{uuid.uuid4().hex[:6]}"
    await declare(url, Topology(name, "quorum", 10))
    configure(driver="async_farm", rabbitmq_url=url, name=name, connect_timeout_s=60)
    results: dict[str, float] = {}

    for mode in MODES:  # connect and warm up
        switch(mode, providers)
        await enqueue_ours(200)
        await drain(url, name, mode, 200, figures / "warmup")
        await sync_us_per_call(2000)
    for _ in range(rounds):
        for mode in MODES:
            switch(mode, providers)
            best(results, f"sync_us_{mode}", await sync_us_per_call(20_000), min)
            best(results, f"enqueue_{mode}", await enqueue_ours(jobs), max)
            rate, cpu_us = await drain(url, name, mode, jobs, figures)
            best(results, f"drain_{mode}", rate, max)
            best(results, f"cpu_us_{mode}", cpu_us, min)
    await close_queue()
    switch("off", providers)
    for provider in providers:
        provider.shutdown()  # type: ignore[attr-defined]
    return results


def report(jobs: int, rounds: int, r: dict[str, float]) -> None:
    print(f"\nquorum queue, {jobs} jobs, 2 worker processes, best of {rounds} rounds")
    print(f"{'':40}{'tracing off':>13}{'tracing on':>13}{'cost':>9}")
    rows = [
        ("enqueue rate (jobs/s, confirms on)", "enqueue", "{:13.0f}", True),
        ("drain rate (jobs/s)", "drain", "{:13.0f}", True),
        ("worker CPU per job (µs)", "cpu_us", "{:13.0f}", False),
        ("queue(), sync driver (µs per call)", "sync_us", "{:13.1f}", False),
    ]
    for label, key, fmt, is_rate in rows:
        off, on = r[f"{key}_off"], r[f"{key}_on"]
        cost = (1 - on / off) if is_rate else (on / off - 1)
        print(f"{label:40}{fmt.format(off)}{fmt.format(on)}{cost:9.0%}")
    enqueue_cost = 1 - r["enqueue_on"] / r["enqueue_off"]
    drain_cost = 1 - r["drain_on"] / r["drain_off"]
    print(
        "target: tracing costs <= 15% of the enqueue rate: {}, of the drain rate: {}".format(
            "yes" if enqueue_cost <= 0.15 else "NO", "yes" if drain_cost <= 0.15 else "NO"
        )
    )


async def main(jobs: int, rounds: int) -> None:
    with broker() as url, tempfile.TemporaryDirectory() as directory:
        report(jobs, rounds, await measure(url, jobs, rounds, Path(directory)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    asyncio.run(main(options.jobs, options.rounds))
