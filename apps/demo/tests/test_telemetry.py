"""Which span exporters the demo picks, and its one-line console exporter.

``configure_telemetry`` itself sets the process's global tracer provider, so it is
exercised in subprocesses: by the tour test and the end-to-end test.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fast_app_demo._oneline import OneLineSpanExporter, format_span
from fast_app_demo.errors import DemoConfigurationError
from fast_app_demo.settings import DemoSettings
from fast_app_demo.telemetry import exporter_names, load_span_exporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

DATA = Path("/tmp/unused")


def test_without_settings_spans_print_one_line_each() -> None:
    assert exporter_names(DemoSettings(DATA)) == ("oneline",)


def test_an_otlp_endpoint_selects_otlp() -> None:
    assert exporter_names(DemoSettings(DATA, otlp_endpoint="http://c:4318")) == ("otlp",)


def test_named_exporters_win_and_none_means_none() -> None:
    named = DemoSettings(DATA, traces_exporters=("console", "jsonl"), otlp_endpoint="http://c")

    assert exporter_names(named) == ("console", "jsonl")
    assert exporter_names(DemoSettings(DATA, traces_exporters=("none",))) == ()


def test_a_caller_can_choose_another_default() -> None:
    assert exporter_names(DemoSettings(DATA), default=()) == ()


def test_exporters_are_found_by_their_entry_point_names() -> None:
    assert isinstance(load_span_exporter("console"), ConsoleSpanExporter)
    assert isinstance(load_span_exporter("oneline"), OneLineSpanExporter)
    otlp = load_span_exporter("otlp")
    assert type(otlp).__module__.startswith("opentelemetry.exporter.otlp.proto.http")
    otlp.shutdown()


def test_an_unknown_exporter_names_the_variable_and_the_choices() -> None:
    with pytest.raises(DemoConfigurationError, match=r"OTEL_TRACES_EXPORTER.*'zipkin'.*oneline"):
        load_span_exporter("zipkin")


def _spans(*names: str, error: str | None = None) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "demo-test"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    for name in names:
        with tracer.start_as_current_span(name) as span:
            if error:
                span.set_status(Status(StatusCode.ERROR, error))
    provider.shutdown()
    return list(memory.get_finished_spans())


def test_a_span_line_has_the_service_the_trace_id_the_name_and_the_error() -> None:
    [span] = _spans("POST /signup", error="boom")
    assert span.context is not None

    line = format_span(span)

    assert line.startswith(f"[otel demo-test] trace {span.context.trace_id:032x} POST /signup (")
    assert "internal, " in line
    assert line.endswith("ms) ERROR boom")


def test_past_its_budget_per_second_the_exporter_counts_instead_of_printing() -> None:
    now = [0.0]
    out = io.StringIO()
    exporter = OneLineSpanExporter(out, lines_per_second=2, clock=lambda: now[0])
    spans = _spans("a", "b", "c", "d", "e")

    exporter.export(spans[:3])
    exporter.export(spans[3:])
    now[0] = 1.5
    exporter.export(spans[:1])

    lines = out.getvalue().splitlines()
    assert [line.split()[4] for line in lines[:2]] == ["a", "b"]
    assert lines[2].startswith("[otel] ... 3 more spans not printed")
    assert lines[3].split()[4] == "a"
    assert len(lines) == 4


def test_spans_left_out_are_reported_when_the_exporter_shuts_down() -> None:
    out = io.StringIO()
    exporter = OneLineSpanExporter(out, lines_per_second=1, clock=lambda: 0.0)

    exporter.export(_spans("a", "b"))
    exporter.shutdown()

    assert out.getvalue().splitlines()[-1].startswith("[otel] ... 1 more spans not printed")
