"""What OpenTelemetry costs the farm: the same work with tracing off and on, in one run.

Run: ``uv run python benchmarks/tracing_overhead.py [--jobs 20000] [--work-ms 1] [--rounds 3]``

"On" means the SDK configured in the publisher (this process) and in the workers (their
startup hook), every trace sampled, spans through a batch processor and metrics through
a periodic reader, to exporters that drop them (``bench_jobs.tracing_providers``): the
cost of the instrumentation and the SDK, not of a collector. "Sampled" is the same with
1 trace in 10 sampled (``parentbased_traceidratio`` 0.1), as high-rate production setups
run; metrics stay exact. "Off" means no SDK, the default. The run also measures, in
this process, the queue's telemetry hooks alone (no broker, no job) and the SDK's own
costs: a bare span, a span with the publish attributes, ``traceparent`` into and out of
headers, a histogram record.

1. enqueue rate: every ``queue()`` call concurrent (confirms on), quorum queue;
   and the publisher's CPU time per job (all its threads: the SDK's too);
2. drain rate: ``--jobs`` no-op jobs already queued, 2 worker processes, first to last;
3. worker CPU time per job;
4. the same enqueue and drain rates where the work around each call is real: callers
   (64 at a time, like requests in a web app) that do ``--work-ms`` of CPU work before
   they call ``queue()``, and jobs that do as much (``--jobs`` / 4 of them);
5. ``queue()`` on the sync driver, per call (the job runs in-process).

No-op jobs show the instrumentation's whole cost per job, the largest share of the work
it can be; the rows with work show what it costs an application. Off and on alternate
in each round (2 shared cores make single runs noisy); the best round of each is
reported. Target: tracing costs at most 15% of enqueue and drain rates. The report ends
with the least any instrumentation doing what the queue must (a span with the messaging
attributes and the trace context per enqueue and per run; the enqueue latency, queue
wait and duration histograms) can cost here: those SDK calls against the rest of the
work of a no-op enqueue or job.
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
from fast_app.core.queue.envelope import FORMAT_VERSION, JobEnvelope, JobOptions, new_job_id
from fast_app.core.queue.handle import JobOutcome, JobStatus
from fast_app.core.queue.telemetry import (
    SYSTEM_RABBITMQ,
    observe_enqueue,
    observe_job,
    use_providers,
)

SAMPLED_RATIO = 0.1
CALLERS_AT_A_TIME = 64
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


def sdk_costs_us(providers: Providers, calls: int = 20_000) -> dict[str, float]:
    """What the SDK itself costs here, µs per call: a bare span started and ended; a span
    with a publish span's attributes; the trace context into and out of headers; a
    histogram record with the queue's two attributes."""
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind

    tracer_provider, meter_provider = providers["on"]
    switch("on", providers)
    tracer = tracer_provider.get_tracer("floor")
    histogram = meter_provider.get_meter("floor").create_histogram("floor")
    attributes = {"messaging.destination.name": "q", "fast_app.job.function": "f"}
    publish_attributes = {
        "messaging.system": "rabbitmq",
        "messaging.destination.name": "bench",
        "messaging.operation.name": "publish",
        "messaging.operation.type": "send",
        "messaging.message.id": new_job_id(),
        "fast_app.job.function": "bench_jobs:noop",
    }
    parent = trace.set_span_in_context(tracer.start_span("parent"))
    headers: dict[str, str] = {}
    propagate.inject(headers, context=parent)

    def timed(call: Any) -> float:
        started = time.perf_counter()
        for _ in range(calls):
            call()
        return (time.perf_counter() - started) / calls * 1e6

    costs = {
        "span": timed(lambda: tracer.start_span("floor").end()),
        "span_attributes": timed(
            lambda: tracer.start_span(
                "floor",
                kind=SpanKind.PRODUCER,
                attributes=publish_attributes,
                start_time=time.time_ns(),
            ).end()
        ),
        "inject": timed(lambda: propagate.inject({}, context=parent)),
        "extract": timed(lambda: propagate.extract(headers)),
        "histogram": timed(lambda: histogram.record(0.001, attributes)),
    }
    switch("off", providers)
    return costs


def hooks_us(mode: str, providers: Providers, calls: int = 20_000) -> tuple[float, float]:
    """The queue's telemetry hooks alone, in this process (no broker, no job): µs per
    enqueue (span, headers, histogram) and per job run (span from the headers, two
    histogram values, counters), as the publisher and the worker call them."""
    switch(mode, providers)
    envelope = JobEnvelope(
        format=FORMAT_VERSION,
        id=new_job_id(),
        function="bench_jobs:noop",
        args=[],
        kwargs={},
        context={},
        options=JobOptions(),
        enqueued_at=time.time(),
    )
    outcome = JobOutcome(JobStatus.SUCCEEDED, 0.0001)

    def enqueue() -> dict[str, str] | None:
        with observe_enqueue("bench", SYSTEM_RABBITMQ) as observation:
            return observation.published(envelope)

    def run(headers: dict[str, str] | None) -> None:
        observation = observe_job(
            queue="bench",
            system=SYSTEM_RABBITMQ,
            envelope=envelope,
            message_id=envelope.id,
            headers=headers,
            worker_id="bench-w1",
            due_at=envelope.enqueued_at,
        )
        observation.started()
        observation.finished(outcome)
        observation.end()

    started = time.perf_counter()
    headers = [enqueue() for _ in range(calls)]
    enqueue_us = (time.perf_counter() - started) / calls * 1e6
    started = time.perf_counter()
    for each in headers:
        run(each)
    run_us = (time.perf_counter() - started) / calls * 1e6
    switch("off", providers)
    return enqueue_us, run_us


async def drain(url: str, name: str, mode: str, jobs: int, figures: Path) -> tuple[float, float]:
    """Drain rate (jobs/s) and worker CPU per job (µs) of ``jobs`` queued on ``name``."""
    directory = figures / f"drain-{mode}-{uuid.uuid4().hex[:12]}"
    directory.mkdir(parents=True)
    extra = WORKER_TRACING.get(mode)
    consumers = await start_consumers("farm", url, name, "quorum", 2, directory, extra)
    cpu_before = sum(c.cpu_s() for c in consumers)
    await queue_empty(url, name, jobs, directory, "farm")
    cpu_after = sum(c.cpu_s() for c in consumers)
    data = stop(consumers, directory)
    assert data["count"] == jobs, f"{mode}: {data['count']} of {jobs} jobs ran"
    return (jobs - 1) / (data["last"] - data["first"]), (cpu_after - cpu_before) / jobs * 1e6


async def enqueue_with_work(count: int, work_ms: float) -> float:
    """Enqueue rate of callers doing ``work_ms`` of CPU work before each ``queue()`` call
    (``CALLERS_AT_A_TIME`` at once); each enqueues a job doing as much."""
    remaining = iter(range(count))

    async def caller() -> None:
        for _ in remaining:
            bench_jobs.busy_for(work_ms / 1000)
            await queue(bench_jobs.busy, work_ms)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(CALLERS_AT_A_TIME)))
    return count / (time.perf_counter() - started)


async def sync_us_per_call(calls: int) -> float:
    with override_driver(SyncDriver(get_settings())):
        started = time.perf_counter()
        for _ in range(calls):
            await queue(bench_jobs.three_args, "66f2d3a1", 3, 0.5)
        return (time.perf_counter() - started) / calls * 1e6


async def measure(
    url: str, jobs: int, work_ms: float, rounds: int, figures: Path
) -> dict[str, float]:
    providers = {
        "on": bench_jobs.tracing_providers(),
        "sampled": bench_jobs.tracing_providers(SAMPLED_RATIO),
    }
    # One queue: each mode enqueues its jobs, then its workers drain them.
    name = f"bench.tracing.{uuid.uuid4().hex[:6]}"
    await declare(url, Topology(name, "quorum", 10))
    configure(driver="async_farm", rabbitmq_url=url, name=name, connect_timeout_s=60)
    results: dict[str, float] = {}

    working_jobs = max(jobs // 4, 100)
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
            rate = await enqueue_with_work(working_jobs, work_ms)
            best(results, f"enqueue_work_{mode}", rate, max)
            rate, _ = await drain(url, name, mode, working_jobs, figures)
            best(results, f"drain_work_{mode}", rate, max)
    await close_queue()
    for _ in range(rounds):
        for mode in MODES:
            enqueue_us, run_us = hooks_us(mode, providers)
            best(results, f"hooks_enqueue_us_{mode}", enqueue_us, min)
            best(results, f"hooks_run_us_{mode}", run_us, min)
    for name, cost in sdk_costs_us(providers).items():
        results[f"sdk_{name}_us"] = cost
    for pair in providers.values():
        for provider in pair:
            provider.shutdown()
    return results


def report(jobs: int, work_ms: float, rounds: int, r: dict[str, float]) -> None:
    print(f"\nquorum queue, {jobs} jobs, 2 worker processes, best of {rounds} rounds")
    print(f"{'':46}{'off':>9}{'on':>9}{'cost':>7}{'sampled':>9}{'cost':>7}")
    print(f"{'(cost: the rate lost, or µs added)':46}")
    work = f"{work_ms:g} ms"
    rows = [
        ("enqueue rate, no-op (jobs/s, confirms on)", "enqueue", "{:9.0f}", True),
        ("publisher CPU per enqueue (µs)", "enqueue_cpu_us", "{:9.0f}", False),
        ("drain rate, no-op jobs (jobs/s)", "drain", "{:9.0f}", True),
        ("worker CPU per job (µs)", "cpu_us", "{:9.0f}", False),
        (f"enqueue rate, callers doing {work} (jobs/s)", "enqueue_work", "{:9.0f}", True),
        (f"drain rate, jobs doing {work} (jobs/s)", "drain_work", "{:9.0f}", True),
        ("queue(), sync driver (µs per call)", "sync_us", "{:9.1f}", False),
        ("hooks alone, in-process: enqueue (µs)", "hooks_enqueue_us", "{:9.1f}", False),
        ("hooks alone, in-process: job run (µs)", "hooks_run_us", "{:9.1f}", False),
    ]
    for label, key, fmt, is_rate in rows:
        off = r[f"{key}_off"]
        line = f"{label:46}{fmt.format(off)}"
        for mode in ("on", "sampled"):
            value = r[f"{key}_{mode}"]
            # Rates: the share lost; times: what tracing adds to each call.
            cost = f"{1 - value / off:7.0%}" if is_rate else f"{value - off:+7.0f}"
            line += f"{fmt.format(value)}{cost}"
        print(line)
    print(
        f"SDK costs here: a bare span {r['sdk_span_us']:.1f} µs, one with a publish span's "
        f"attributes {r['sdk_span_attributes_us']:.1f} µs, traceparent into headers "
        f"{r['sdk_inject_us']:.1f} µs and out {r['sdk_extract_us']:.1f} µs, "
        f"a histogram record {r['sdk_histogram_us']:.1f} µs"
    )
    for mode in ("on", "sampled"):
        for jobs_label, suffix in (("no-op", ""), (work, "_work")):
            enqueue_cost = 1 - r[f"enqueue{suffix}_{mode}"] / r[f"enqueue{suffix}_off"]
            drain_cost = 1 - r[f"drain{suffix}_{mode}"] / r[f"drain{suffix}_off"]
            print(
                f"target, {mode}, {jobs_label}: tracing costs <= 15% of the enqueue rate: "
                f"{'yes' if enqueue_cost <= 0.15 else 'NO'}, of the drain rate: "
                f"{'yes' if drain_cost <= 0.15 else 'NO'}"
            )
    # The least tracing can cost, on CPU: the SDK calls for what must be recorded (a span
    # with the messaging attributes, the trace context in or out, the histograms), against
    # the rest of a no-op enqueue's or job's work.
    span, record = r["sdk_span_attributes_us"], r["sdk_histogram_us"]
    for label, floor, rest in (
        (
            "an enqueue (span, traceparent in, 1 histogram record)",
            span + r["sdk_inject_us"] + record,
            r["enqueue_cpu_us_off"],
        ),
        (
            "a job run (span, traceparent out, 2 histogram records)",
            span + r["sdk_extract_us"] + 2 * record,
            r["cpu_us_off"],
        ),
    ):
        print(
            f"least cost of {label}: {floor:.0f} µs of SDK = "
            f"{floor / (rest + floor):.0%} of a no-op one with it"
        )


async def main(jobs: int, work_ms: float, rounds: int) -> None:
    with broker() as url, tempfile.TemporaryDirectory() as directory:
        results = await measure(url, jobs, work_ms, rounds, Path(directory))
        report(jobs, work_ms, rounds, results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--work-ms", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    asyncio.run(main(options.jobs, options.work_ms, options.rounds))
