"""Spans and metrics of the farm's processes, written to JSON-lines files for the tests.

Two ways in, the two ways an application configures the SDK in workers:

- ``FARM_STARTUP=farm_spans:configure``: a startup hook installs SDK providers that
  export to ``FARM_TEST_SPANS_FILE`` (and ``FARM_TEST_METRICS_FILE`` when set);
- ``FARM_OTEL_SDK=1 OTEL_TRACES_EXPORTER=jsonl``: the SDK's configuration from ``OTEL_*``
  variables finds these exporters by name through the entry points declared in
  ``farm_test_exporters-0.dist-info`` beside this file (this directory is on the
  PYTHONPATH of the processes the test kit starts).

Each process appends whole lines with one ``write`` (``O_APPEND``), so several can share
a file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult


def _append(path: str, records: list[dict[str, Any]]) -> None:
    if records:
        with open(path, "a", encoding="utf-8") as file:
            file.write("".join(json.dumps(record, default=str) + "\n" for record in records))


def _hex(value: int, digits: int) -> str:
    return f"{value:0{digits}x}"


class JsonLinesSpanExporter(SpanExporter):
    """Appends each finished span to ``FARM_TEST_SPANS_FILE`` as one JSON line."""

    def __init__(self, path: str | None = None) -> None:
        self._path = path or os.environ["FARM_TEST_SPANS_FILE"]

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        records = []
        for span in spans:
            context = span.context
            assert context is not None
            records.append(
                {
                    "name": span.name,
                    "kind": span.kind.name,
                    "trace_id": _hex(context.trace_id, 32),
                    "span_id": _hex(context.span_id, 16),
                    "parent_id": None if span.parent is None else _hex(span.parent.span_id, 16),
                    "attributes": dict(span.attributes or {}),
                    "status": span.status.status_code.name,
                    "description": span.status.description,
                    "events": [
                        {"name": event.name, "attributes": dict(event.attributes or {})}
                        for event in span.events
                    ],
                    "links": [_hex(link.context.span_id, 16) for link in span.links],
                    "scope": None
                    if span.instrumentation_scope is None
                    else span.instrumentation_scope.name,
                    "pid": os.getpid(),
                }
            )
        _append(self._path, records)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


class JsonLinesMetricExporter(MetricExporter):
    """Appends each data point of each collection to ``FARM_TEST_METRICS_FILE``."""

    def __init__(self, path: str | None = None) -> None:
        super().__init__()
        self._path = path or os.environ["FARM_TEST_METRICS_FILE"]

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        records = []
        for resource in metrics_data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        record: dict[str, Any] = {
                            "name": metric.name,
                            "attributes": dict(point.attributes or {}),
                            "pid": os.getpid(),
                            "time": point.time_unix_nano,
                        }
                        if hasattr(point, "value"):
                            record["value"] = point.value
                        else:
                            record["count"] = point.count
                            record["sum"] = point.sum
                        records.append(record)
        _append(self._path, records)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


def configure() -> None:
    """FARM_STARTUP hook: SDK providers that export to the files the environment names."""
    resource = Resource.create({"service.name": "farm-test-worker"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter()))
    trace.set_tracer_provider(provider)
    if os.environ.get("FARM_TEST_METRICS_FILE"):
        reader = PeriodicExportingMetricReader(
            JsonLinesMetricExporter(), export_interval_millis=200
        )
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))


def read_lines(path: str | Path) -> list[dict[str, Any]]:
    """The records written so far (a line being written is left out)."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]
