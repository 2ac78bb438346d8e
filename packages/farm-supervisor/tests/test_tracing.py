"""OpenTelemetry across processes: one trace from a request in the test to the job's run on
a worker, and the farm's metrics.

The test process records its spans in memory (``use_providers``); workers and supervisors
write theirs to a JSON-lines file (``farm_spans``), configured either by a startup hook
or by ``FARM_OTEL_SDK=1`` and the standard ``OTEL_*`` variables.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import farm_jobs
import pytest
from farm_spans import read_lines
from farm_testkit import Farm, pid_alive, start_supervisor, wait_until
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span

from fast_app.core.queue import queue
from fast_app.core.queue.amqp import headers as h
from fast_app.core.queue.telemetry import use_providers
from fast_app.farm.telemetry import FarmGauges
from fast_app.farm.worker import EXIT_HARD_TIMEOUT


@dataclass
class Publisher:
    """The test process's own spans: the request and the ``publish`` spans."""

    provider: TracerProvider
    exporter: InMemorySpanExporter

    def request(self, name: str = "POST /orders") -> Any:
        return self.provider.get_tracer("app").start_as_current_span(name)

    def one(self, name: str) -> ReadableSpan:
        [span] = [s for s in self.exporter.get_finished_spans() if s.name == name]
        return span


@pytest.fixture
def publisher() -> Iterator[Publisher]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    use_providers(tracer_provider=provider)
    try:
        yield Publisher(provider, exporter)
    finally:
        use_providers()
        provider.shutdown()


@dataclass
class Exported:
    """What the farm's processes exported."""

    spans_file: Path
    metrics_file: Path

    @property
    def environment(self) -> dict[str, str]:
        return {
            "FARM_TEST_SPANS_FILE": str(self.spans_file),
            "FARM_TEST_METRICS_FILE": str(self.metrics_file),
        }

    def spans(self, name: str | None = None) -> list[dict[str, Any]]:
        return [s for s in read_lines(self.spans_file) if name is None or s["name"] == name]

    def one(self, name: str) -> dict[str, Any]:
        found = self.spans(name)
        assert len(found) == 1, f"{len(found)} spans named {name!r}: {self.spans()}"
        return found[0]

    def metric(self, name: str, **attributes: Any) -> Any:
        """The latest value of the data point of ``name`` with exactly ``attributes``."""
        values = [
            record.get("value", (record.get("count"), record.get("sum")))
            for record in read_lines(self.metrics_file)
            if record["name"] == name and record["attributes"] == attributes
        ]
        return values[-1] if values else None


@pytest.fixture
def exported(tmp_path: Path) -> Exported:
    return Exported(tmp_path / "spans.jsonl", tmp_path / "metrics.jsonl")


def hex_ids(span: Span | ReadableSpan) -> tuple[str, str]:
    """(trace id, span id) as the exported files spell them."""
    context = span.get_span_context()
    assert context is not None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


SDK_FROM_ENVIRONMENT = {
    "FARM_OTEL_SDK": "1",
    "OTEL_TRACES_EXPORTER": "jsonl",
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_SERVICE_NAME": "farm-test",
    "OTEL_BSP_SCHEDULE_DELAY": "50",
}


async def test_one_trace_runs_from_a_request_to_a_span_inside_the_job_on_a_worker(
    farm: Farm, publisher: Publisher, exported: Exported
) -> None:
    await farm.start_worker(FARM_STARTUP="farm_spans:configure", **exported.environment)
    queue_name = farm.queue_name

    with publisher.request() as request:
        job = await queue(farm_jobs.traced_record, str(farm.results), "one")

    await wait_until(lambda: exported.spans(f"process {queue_name}"), message="the process span")
    trace_id, request_id = hex_ids(request)
    publish = publisher.one(f"publish {queue_name}")
    process = exported.one(f"process {queue_name}")
    inside = exported.one("inside one")
    assert hex_ids(publish)[0] == process["trace_id"] == inside["trace_id"] == trace_id
    assert publish.parent is not None and f"{publish.parent.span_id:016x}" == request_id
    assert process["parent_id"] == hex_ids(publish)[1]
    assert inside["parent_id"] == process["span_id"]
    assert (publish.kind.name, process["kind"], inside["kind"]) == (
        "PRODUCER",
        "CONSUMER",
        "INTERNAL",
    )
    assert publish.attributes is not None
    assert dict(publish.attributes) == {
        "messaging.system": "rabbitmq",
        "messaging.destination.name": queue_name,
        "messaging.operation.name": "publish",
        "messaging.operation.type": "send",
        "messaging.message.id": job.id,
        "fast_app.job.function": "farm_jobs.traced_record",
    }
    attributes = process["attributes"]
    assert attributes.pop("fast_app.worker.id").endswith(str(farm.workers[0].pid))
    assert 0 <= attributes.pop("fast_app.job.queue_wait_s") < 10
    assert attributes == {
        "messaging.system": "rabbitmq",
        "messaging.destination.name": queue_name,
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "messaging.message.id": job.id,
        "fast_app.job.function": "farm_jobs.traced_record",
        "fast_app.job.attempt": 1,
    }
    assert process["status"] == "UNSET"
    assert process["pid"] == farm.workers[0].pid


async def test_a_failing_job_s_runs_are_error_spans_and_its_retry_continues_the_trace(
    farm: Farm, publisher: Publisher, exported: Exported
) -> None:
    await farm.start_worker(FARM_STARTUP="farm_spans:configure", **exported.environment)
    queue_name = farm.queue_name

    with publisher.request() as request:
        job = await queue(farm_jobs.traced_fail, str(farm.results), "bad", __retries=1)

    [letter] = await farm.dead_letters(1)
    assert letter.message_id == job.id
    await wait_until(
        lambda: len(exported.spans(f"process {queue_name}")) == 2, message="2 process spans"
    )
    trace_id, _ = hex_ids(request)
    publish = publisher.one(f"publish {queue_name}")
    first, second = sorted(
        exported.spans(f"process {queue_name}"),
        key=lambda s: s["attributes"]["fast_app.job.attempt"],
    )
    assert {first["trace_id"], second["trace_id"]} == {trace_id}
    assert first["parent_id"] == hex_ids(publish)[1]
    assert second["parent_id"] == first["span_id"], "the retry continues the failed run's trace"
    for run in (first, second):
        assert run["status"] == "ERROR"
        assert run["description"] == "builtins.ValueError: bad always fails"
        assert run["attributes"]["error.type"] == "builtins.ValueError"
        [exception] = [e for e in run["events"] if e["name"] == "exception"]
        assert exception["attributes"]["exception.type"] == "ValueError"
    assert [e["name"] for e in first["events"]][-1] == "fast_app.job.retry_scheduled"
    assert second["events"][-1] == {
        "name": "fast_app.job.dead_lettered",
        "attributes": {"fast_app.dead_letter.reason": "failed"},
    }
    insides = exported.spans("inside bad")
    assert sorted(s["parent_id"] for s in insides) == sorted([first["span_id"], second["span_id"]])

    # The worker's metrics, as its meter provider exported them.
    q = {"messaging.destination.name": queue_name}
    job_attributes = {**q, "fast_app.job.function": "farm_jobs.traced_fail"}
    dead = {**q, "fast_app.dead_letter.reason": "failed"}
    await wait_until(
        lambda: exported.metric("fast_app.jobs.dead_lettered", **dead) == 1,
        message="the dead-letter count",
    )
    failed = {**job_attributes, "error.type": "exception"}
    assert exported.metric("fast_app.jobs.failed", **failed) == 2
    assert exported.metric("fast_app.jobs.started", **job_attributes) == 2
    assert exported.metric("fast_app.jobs.retried", **job_attributes) == 1
    assert exported.metric("fast_app.jobs.succeeded", **job_attributes) is None
    count, _ = exported.metric("fast_app.job.queue_wait", **job_attributes)
    assert count == 2


async def test_a_worker_ending_itself_at_a_hard_timeout_exports_the_job_s_span_first(
    farm: Farm, publisher: Publisher, exported: Exported
) -> None:
    # Set up from OTEL_* variables, batching spans for a minute: only the flush before the
    # worker's os._exit can export them in time.
    environment = {**SDK_FROM_ENVIRONMENT, "OTEL_BSP_SCHEDULE_DELAY": "60000"}
    worker = await farm.start_worker(**environment, **exported.environment)
    queue_name = farm.queue_name

    with publisher.request() as request:
        job = await queue(
            farm_jobs.traced_sleep, str(farm.results), "sleeper", 30, __hard_timeout_s=1
        )

    assert await worker.wait_exit(20) == EXIT_HARD_TIMEOUT
    [letter] = await farm.dead_letters(1)
    assert letter.headers[h.DEAD_REASON] == "hard_timeout"
    process = exported.one(f"process {queue_name}")
    assert process["trace_id"] == hex_ids(request)[0]
    assert process["parent_id"] == hex_ids(publisher.one(f"publish {queue_name}"))[1]
    assert process["attributes"]["messaging.message.id"] == job.id
    assert process["status"] == "ERROR"
    assert process["attributes"]["error.type"] == "hard_timeout"
    assert [e["name"] for e in process["events"]] == [
        "fast_app.job.hard_timeout",
        "fast_app.job.dead_lettered",
    ]
    assert exported.one("inside sleeper")["parent_id"] == process["span_id"]


async def test_a_supervisor_killing_a_worker_at_a_hard_timeout_records_it_on_the_job_s_trace(
    farm: Farm, publisher: Publisher, exported: Exported
) -> None:
    # Hung-worker detection (silence for 25 x 0.2 s) must not get there first.
    supervisor = await start_supervisor(
        farm,
        "--min-workers",
        "1",
        "--max-workers",
        "1",
        "--heartbeat-tolerance",
        "25",
        **{
            **SDK_FROM_ENVIRONMENT,
            "OTEL_METRICS_EXPORTER": "jsonl",
            "OTEL_METRIC_EXPORT_INTERVAL": "200",
        },
        **exported.environment,
    )
    await wait_until(lambda: "consuming" in supervisor.log(), message="a consuming worker")
    [first] = supervisor.live_worker_pids().values()
    queue_name = farm.queue_name

    with publisher.request() as request:
        job = await queue(
            farm_jobs.traced_block_loop, str(farm.results), "blocker", 30, __hard_timeout_s=1
        )

    await wait_until(lambda: not pid_alive(first), timeout=15, message="the kill")
    [letter] = await farm.dead_letters(1, timeout=20)
    assert letter.headers[h.DEAD_REASON] == "hard_timeout"
    await wait_until(
        lambda: (
            exported.spans(f"hard_timeout {queue_name}") and exported.spans(f"process {queue_name}")
        ),
        timeout=10,
        message="the kill's span and the settling run's span",
    )
    trace_id, _ = hex_ids(request)
    _, publish_id = hex_ids(publisher.one(f"publish {queue_name}"))
    inside = exported.one("inside blocker")  # exported by the killed worker before it hung
    killed_run = inside["parent_id"]  # its process span, lost with the worker
    kill = exported.one(f"hard_timeout {queue_name}")
    assert kill["trace_id"] == inside["trace_id"] == trace_id
    # The killed run's span died with its worker: the kill hangs off the publish span,
    # linked to that run, so the trace has no missing parent.
    assert kill["parent_id"] == publish_id
    assert kill["links"] == [killed_run]
    assert kill["pid"] == supervisor.pid
    assert kill["scope"] == "fast_app.farm"
    assert kill["status"] == "ERROR"
    assert kill["attributes"]["messaging.message.id"] == job.id
    assert kill["attributes"]["error.type"] == "hard_timeout"
    assert "killed by supervisor" in kill["attributes"]["fast_app.kill.reason"]
    assert [e["name"] for e in kill["events"]] == ["fast_app.job.hard_timeout"]
    # The replacement worker got the redelivery and settled it without running it.
    [settled] = exported.spans(f"process {queue_name}")
    assert settled["span_id"] != killed_run
    assert settled["pid"] != first
    assert settled["parent_id"] == publish_id
    assert settled["attributes"]["fast_app.job.delivery_count"] >= 1
    assert settled["attributes"]["error.type"] == "hard_timeout"
    assert [e["name"] for e in settled["events"]] == [
        "fast_app.job.hard_timeout",
        "fast_app.job.dead_lettered",
    ]
    assert farm.tags("started").count("blocker") == 1
    # The supervisor's gauges, exported through the same OTEL_* configuration.
    await wait_until(
        lambda: (
            {"fast_app.farm.workers", "fast_app.queue.depth", "fast_app.farm.jobs_in_flight"}
            <= {r["name"] for r in read_lines(exported.metrics_file) if r["pid"] == supervisor.pid}
        ),
        message="the supervisor's gauges",
    )
    states = {
        r["attributes"]["fast_app.worker.state"]
        for r in read_lines(exported.metrics_file)
        if r["name"] == "fast_app.farm.workers"
    }
    assert states == {"starting", "idle", "busy", "paused", "draining"}


def test_farm_gauges_report_workers_by_state_queue_depths_and_jobs_in_flight() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    snapshot: dict[str, Any] = {
        "workers": [
            {"state": "busy", "in_flight": [{"id": "a"}, {"id": "b"}]},
            {"state": "busy", "in_flight": [{"id": "c"}]},
            {"state": "idle", "in_flight": []},
            {"state": "not-a-state", "in_flight": []},
        ],
        "queue": {"ready": 120, "delayed": 7, "dead": 3, "consumers": 3},
    }
    latest: list[dict[str, Any] | None] = [None]
    FarmGauges("jobs.q", lambda: latest[0], meter=provider.get_meter("test"))

    assert reader.get_metrics_data() is None or not _points(reader)
    latest[0] = snapshot
    points = _points(reader)

    q = {"messaging.destination.name": "jobs.q"}
    assert points["fast_app.farm.workers"] == {
        frozenset({**q, "fast_app.worker.state": state}.items()): count
        for state, count in {
            "starting": 0,
            "idle": 1,
            "busy": 2,
            "paused": 0,
            "draining": 0,
        }.items()
    }
    assert points["fast_app.queue.depth"] == {
        frozenset({**q, "fast_app.queue.kind": "jobs"}.items()): 120,
        frozenset({**q, "fast_app.queue.kind": "delayed"}.items()): 7,
        frozenset({**q, "fast_app.queue.kind": "dead"}.items()): 3,
    }
    assert points["fast_app.farm.jobs_in_flight"] == {frozenset(q.items()): 3}
    provider.shutdown()


def _points(reader: InMemoryMetricReader) -> dict[str, dict[frozenset[Any], Any]]:
    data = reader.get_metrics_data()
    found: dict[str, dict[frozenset[Any], Any]] = {}
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    found.setdefault(metric.name, {})[
                        frozenset((point.attributes or {}).items())
                    ] = point.value  # type: ignore[union-attr]
    return found


def test_farm_otel_sdk_without_the_exporter_it_names_exits_2_saying_what_to_install(
    tmp_path: Path,
) -> None:
    environment = {
        "PATH": "/usr/bin:/bin",
        "FARM_OTEL_SDK": "1",
        "OTEL_TRACES_EXPORTER": "no_such_exporter",
        "OTEL_METRICS_EXPORTER": "none",
    }

    done = subprocess.run(
        [sys.executable, "-m", "fast_app.farm", "worker"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )

    assert done.returncode == 2
    assert "FARM_OTEL_SDK=1" in done.stderr
    assert "no_such_exporter" in done.stderr
    assert "Traceback" not in done.stderr


def test_farm_gauges_report_each_queue_s_depth_wait_and_time_to_clear() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    figures = {"ready": 5, "unacked": 1, "consumers": 1, "dead": 0, "delayed": 2}
    snapshot: dict[str, Any] = {
        "workers": [
            {"state": "busy", "in_flight_count": 4, "queue": "reports"},
            {"state": "idle", "in_flight_count": 0, "queue": "emails"},
        ],
        "queue": {"ready": 5, "delayed": 2, "dead": 0},
        "queues": [
            {
                "name": "emails",
                "figures": {**figures, "ready": 0, "delayed": 0},
                "wait_p50_s": 0.01,
                "wait_max_s": 0.2,
                "clear_s": 0.0,
            },
            {
                "name": "reports",
                "figures": figures,
                "wait_p50_s": 3.0,
                "wait_max_s": 9.5,
                "clear_s": None,
            },
        ],
    }
    FarmGauges("farm.jobs", lambda: snapshot, meter=provider.get_meter("test"))

    points = _points(reader)

    def at(queue: str, **more: str) -> frozenset[tuple[str, str]]:
        return frozenset({"messaging.destination.name": queue, **more}.items())

    assert points["fast_app.queue.wait"] == {
        at("emails", **{"fast_app.wait.statistic": "p50"}): 0.01,
        at("emails", **{"fast_app.wait.statistic": "max"}): 0.2,
        at("reports", **{"fast_app.wait.statistic": "p50"}): 3.0,
        at("reports", **{"fast_app.wait.statistic": "max"}): 9.5,
    }
    # an unknown time to clear is not reported as a number
    assert points["fast_app.queue.time_to_clear"] == {at("emails"): 0.0}
    assert points["fast_app.queue.depth"][at("reports", **{"fast_app.queue.kind": "jobs"})] == 5
    assert points["fast_app.farm.jobs_in_flight"] == {at("emails"): 0, at("reports"): 4}
    assert points["fast_app.farm.workers"][at("reports", **{"fast_app.worker.state": "busy"})] == 1
    provider.shutdown()
