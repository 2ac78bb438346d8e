"""What OpenTelemetry costs the farm: the same work with tracing off and on, in one run.

Run: ``uv run python benchmarks/tracing_overhead.py [--jobs 20000] [--rounds 3]``

"On" means the SDK configured in the publisher (this process) and in the workers (their
startup hook), every trace sampled, spans through a batch processor and metrics through
a periodic reader, to exporters that drop them (``bench_jobs.tracing_providers``): the
cost of the instrumentation and the SDK, not of a collector. "Sampled" is the same with
1 trace in 10 sampled (``parentbased_traceidratio`` 0.1), as high-rate production setups
run; metrics stay exact. "Off" means no SDK, the default. The run also measures the
SDK's own floor on this machine: a bare span started and ended, one histogram record.

1. enqueue rate: every ``queue()`` call concurrent (confirms on), quorum queue;
   and the publisher's CPU time per job (all its threads: the SDK's too);
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
from typing import Any

import bench_jobs
from farm_throughput import best, broker, declare, enqueue_ours, queue_empty, start_consumers, stop

from fast_app.core.queue import close as close_queue
from fast_app.core.queue import configure, get_settings, queue
from fast_app.core.queue.amqp import Topology
from fast_app.core.queue.drivers import SyncDriver, override_driver
from fast_app.core.queue.telemetry import use_providers

SAMPLED_RATIO = 0.1
WORKER_TRACING = {
    "on": {"FARM_STARTUP": "bench_jobs:configure_tracing", "BENCH_SAMPLE_RATIO": "1"},
    "sampled": {
        "FARM_STARTUP": "bench_jobs:configure_tracing",
        "BENCH_SAMPLE_RATIO": str(SAMPLED_RATIO),
    },
}
MODES = ("off", "on", "sampled")
Providers = dict[str, tuple[Any, Any]]


def switch(mode: str, providers: Providers) -> None:
    if mode in providers:
        tracer_provider, meter_provider = providers[mode]
        use_providers(tracer_provider=tracer_provider, meter_provider=meter_provider)
    else:
        use_providers()


def sdk_floor_us(providers: Providers, calls: int = 20_000) -> tuple[float, float]:
    """What the SDK itself costs here: a bare span started and ended, a histogram record."""
    tracer_provider, meter_provider = providers["on"]
    tracer = tracer_provider.get_tracer("floor")
    histogram = meter_provider.get_meter("floor").create_histogram("floor")
    attributes = {"messaging.destination.name": "q", "fast_app.job.function": "f"}
    started = time.perf_counter()
    for _ in range(calls):
        tracer.start_span("floor").end()
    span_us = (time.perf_counter() - started) / calls * 1e6
    started = time.perf_counter()
    for _ in range(calls):
        histogram.record(0.001, attributes)
    return span_us, (time.perf_counter() - started) / calls * 1e6


async def drain(url: str, name: str, mode: str, jobs: int, figures: Path) -> tuple[float, float]:
    """Drain rate (jobs/s) and worker CPU per job (µs) of ``jobs`` queued on ``name``."""
    directory = figures / f"drain-{mode}-{uuid.uuid4().hex[:6]}"
    directory.mkdir(parents=True)
    extra = WORKER_TRACING.get(mode)
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
    providers = {
        "on": bench_jobs.tracing_providers(),
        "sampled": bench_jobs.tracing_providers(SAMPLED_RATIO),
    }
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
            cpu_before = time.process_time()
            best(results, f"enqueue_{mode}", await enqueue_ours(jobs), max)
            cpu_per_job = (time.process_time() - cpu_before) / jobs * 1e6
            best(results, f"enqueue_cpu_us_{mode}", cpu_per_job, min)
            rate, cpu_us = await drain(url, name, mode, jobs, figures)
            best(results, f"drain_{mode}", rate, max)
            best(results, f"cpu_us_{mode}", cpu_us, min)
    await close_queue()
    switch("off", providers)
    results["floor_span_us"], results["floor_histogram_us"] = sdk_floor_us(providers)
    for pair in providers.values():
        for provider in pair:
            provider.shutdown()
    return results


def report(jobs: int, rounds: int, r: dict[str, float]) -> None:
    print(f"\nquorum queue, {jobs} jobs, 2 worker processes, best of {rounds} rounds")
    print(f"{'':40}{'off':>9}{'on':>9}{'cost':>7}{'sampled':>9}{'cost':>7}")
    rows = [
        ("enqueue rate (jobs/s, confirms on)", "enqueue", "{:9.0f}", True),
        ("publisher CPU per enqueue (µs)", "enqueue_cpu_us", "{:9.0f}", False),
        ("drain rate (jobs/s)", "drain", "{:9.0f}", True),
        ("worker CPU per job (µs)", "cpu_us", "{:9.0f}", False),
        ("queue(), sync driver (µs per call)", "sync_us", "{:9.1f}", False),
    ]
    for label, key, fmt, is_rate in rows:
        off = r[f"{key}_off"]
        line = f"{label:40}{fmt.format(off)}"
        for mode in ("on", "sampled"):
            value = r[f"{key}_{mode}"]
            cost = (1 - value / off) if is_rate else (value / off - 1)
            line += f"{fmt.format(value)}{cost:7.0%}"
        print(line)
    print(
        f"SDK floor here: a bare span {r['floor_span_us']:.1f} µs, "
        f"a histogram record {r['floor_histogram_us']:.1f} µs"
    )
    for mode in ("on", "sampled"):
        enqueue_cost = 1 - r[f"enqueue_{mode}"] / r["enqueue_off"]
        drain_cost = 1 - r[f"drain_{mode}"] / r["drain_off"]
        print(
            f"target, {mode}: tracing costs <= 15% of the enqueue rate: "
            f"{'yes' if enqueue_cost <= 0.15 else 'NO'}, of the drain rate: "
            f"{'yes' if drain_cost <= 0.15 else 'NO'}"
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
