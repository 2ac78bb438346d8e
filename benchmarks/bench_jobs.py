"""Job functions used by the benchmarks (a real module, so workers can import them)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any


async def three_args(user_id: str, count: int, ratio: float) -> None:
    """A no-op job with three simple arguments."""


def three_args_sync(user_id: str, count: int, ratio: float) -> None:
    """The same, as a plain function (runs in a thread)."""


# -- farm benchmark jobs: each worker keeps its own figures and writes them on shutdown --

_figures: dict[str, Any] = {"count": 0, "first": None, "last": None, "latencies": []}


async def noop() -> None:
    """A no-op job that notes when it ran (for the drain rate)."""
    now = time.time()
    if _figures["first"] is None:
        _figures["first"] = now
    _figures["last"] = now
    _figures["count"] += 1


def busy_for(seconds: float) -> None:
    """Keep the CPU busy for ``seconds``: the work a real job or request does (rendering,
    parsing, computing), without the noise of I/O."""
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


async def busy(work_ms: float) -> None:
    """A job doing ``work_ms`` milliseconds of CPU work, noted like ``noop``."""
    busy_for(work_ms / 1000)
    await noop()


async def sleepy(seconds: float) -> None:
    """A job that waits ``seconds`` without using the CPU (an I/O-bound job), noted like
    ``noop`` when it ends (for the scale-up burst: its last end is the backlog drained)."""
    await asyncio.sleep(seconds)
    await noop()


async def timed(sent_at: float) -> None:
    """Notes how long after ``sent_at`` it started (for the latency)."""
    _figures["latencies"].append(time.time() - sent_at)
    await noop()


def tracing_providers(sample_ratio: float = 1.0) -> tuple[Any, Any]:
    """SDK tracer and meter providers that do all their work but export nowhere.

    ``sample_ratio`` below 1 samples traces as production setups at high rates do
    (``parentbased_traceidratio``): unsampled spans are not recorded, metrics stay exact.

    Spans go through a batch processor and metrics through a periodic reader, as in
    production, to exporters that drop them: the cost measured is the instrumentation's
    and the SDK's, not a collector's. The span queue holds a whole burst of 20,000
    concurrent ``queue()`` calls, so that every span goes through the processor (the
    default of 2,048 would drop most of them, which costs less than handling them).
    """
    from collections.abc import Sequence

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        MetricExportResult,
        MetricsData,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class DroppingSpanExporter(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    class DroppingMetricExporter(MetricExporter):
        def export(
            self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
        ) -> MetricExportResult:
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            pass

    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    tracer_provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(sample_ratio)))
    tracer_provider.add_span_processor(
        BatchSpanProcessor(DroppingSpanExporter(), max_queue_size=1 << 16)
    )
    reader = PeriodicExportingMetricReader(DroppingMetricExporter(), export_interval_millis=5000)
    return tracer_provider, MeterProvider(metric_readers=[reader])


def configure_tracing() -> None:
    """Startup hook (FARM_STARTUP=bench_jobs:configure_tracing): the SDK on, in a worker.

    ``BENCH_SAMPLE_RATIO`` sets the trace sampling ratio (default 1: every trace).
    """
    from opentelemetry import metrics, trace

    tracer_provider, meter_provider = tracing_providers(
        float(os.environ.get("BENCH_SAMPLE_RATIO", "1"))
    )
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)


def write_figures() -> None:
    """Shutdown hook (FARM_SHUTDOWN=bench_jobs:write_figures): save this worker's figures."""
    directory = Path(os.environ["BENCH_FIGURES_DIR"])
    (directory / f"{os.getpid()}.json").write_text(json.dumps(_figures))
