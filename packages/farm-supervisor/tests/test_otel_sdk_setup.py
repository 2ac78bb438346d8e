"""``FARM_OTEL_SDK=1``: the OpenTelemetry SDK set up from ``OTEL_*`` variables, in process.

``configure_sdk_from_environment`` sets the API's global providers, which a process may
set once. The ``sdk`` fixture gives each test fresh globals and puts the previous ones
back afterwards. It does so through the API's private module globals, the way
OpenTelemetry's own test utilities reset them (``opentelemetry-test-utils``, not a
dependency here): that private use stays in this file. The exporters named in the tests
are real entry points: the SDK's ``console``, the test kit's ``jsonl``
(``support/farm_test_exporters-0.dist-info``), and those a test installs in ``tmp_path``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import opentelemetry.metrics._internal as metrics_globals
import pytest
from farm_spans import read_lines
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    InMemoryMetricReader,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, DEFAULT_ON
from opentelemetry.util._once import Once

from fast_app.core.queue.telemetry import use_providers
from fast_app.farm.errors import FarmConfigurationError
from fast_app.farm.telemetry import configure_sdk_from_environment


@dataclass
class Installed:
    """What the set-up gave the SDK providers it built."""

    processors: list[SpanProcessor] = field(default_factory=list)
    readers: list[MetricReader] = field(default_factory=list)

    @staticmethod
    def tracer_provider() -> TracerProvider:
        provider = trace.get_tracer_provider()
        assert isinstance(provider, TracerProvider), provider
        return provider

    @staticmethod
    def meter_provider() -> MeterProvider:
        provider = metrics.get_meter_provider()
        assert isinstance(provider, MeterProvider), provider
        return provider


@pytest.fixture
def sdk(monkeypatch: pytest.MonkeyPatch) -> Iterator[Installed]:
    """No ``OTEL_*`` variable set, unset global providers, and a record of what is built."""
    for name in [name for name in os.environ if name.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER"):
        # Recorded as unset, so that the defaults the set-up writes are removed afterwards.
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    monkeypatch.setattr(trace, "_PROXY_TRACER_PROVIDER", trace.ProxyTracerProvider())
    monkeypatch.setattr(metrics_globals, "_METER_PROVIDER_SET_ONCE", Once())
    monkeypatch.setattr(metrics_globals, "_METER_PROVIDER", None)
    # Meters handed out before the test stay with the process's own proxy provider.
    monkeypatch.setattr(
        metrics_globals, "_PROXY_METER_PROVIDER", metrics_globals._ProxyMeterProvider()
    )

    installed = Installed()
    add_span_processor = TracerProvider.add_span_processor
    meter_provider_init = MeterProvider.__init__

    def recording_add(provider: TracerProvider, processor: SpanProcessor) -> None:
        installed.processors.append(processor)
        add_span_processor(provider, processor)

    def recording_init(provider: MeterProvider, *args: Any, **kwargs: Any) -> None:
        installed.readers.extend(kwargs.get("metric_readers", ()))
        meter_provider_init(provider, *args, **kwargs)

    monkeypatch.setattr(TracerProvider, "add_span_processor", recording_add)
    monkeypatch.setattr(MeterProvider, "__init__", recording_init)
    try:
        yield installed
    finally:
        for provider in (trace.get_tracer_provider(), metrics.get_meter_provider()):
            if isinstance(provider, TracerProvider | MeterProvider):
                provider.shutdown()
        use_providers()  # queue-core forgets tracers and meters of the providers just shut


def install_entry_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    """Make the entry points in ``text`` (``entry_points.txt`` syntax) visible."""
    info = tmp_path / "farm_sdk_test_entry_points-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: farm-sdk-test-entry-points\nVersion: 0\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(text, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))


def test_console_exporters_give_sdk_providers_batching_spans_with_the_service_name(
    sdk: Installed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "farm-sdk-test")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test")

    configure_sdk_from_environment()

    tracer_provider = sdk.tracer_provider()
    sdk.meter_provider()
    attributes = tracer_provider.resource.attributes
    assert attributes["service.name"] == "farm-sdk-test"
    assert attributes["deployment.environment.name"] == "test"
    [processor] = sdk.processors
    assert isinstance(processor, BatchSpanProcessor)
    assert isinstance(processor.span_exporter, ConsoleSpanExporter)
    [reader] = sdk.readers
    assert isinstance(reader, PeriodicExportingMetricReader)
    assert isinstance(tracer_provider.id_generator, RandomIdGenerator)
    assert tracer_provider.sampler is DEFAULT_ON


def test_spans_and_metrics_reach_the_exporters_the_variables_name(
    sdk: Installed, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spans_file, metrics_file = tmp_path / "spans.jsonl", tmp_path / "metrics.jsonl"
    monkeypatch.setenv("FARM_TEST_SPANS_FILE", str(spans_file))
    monkeypatch.setenv("FARM_TEST_METRICS_FILE", str(metrics_file))
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", " jsonl , none")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "jsonl")
    # Nothing is exported on a schedule during the test: only the flushes below export.
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "600000")

    configure_sdk_from_environment()
    with trace.get_tracer("farm-sdk-test").start_as_current_span("a job"):
        metrics.get_meter("farm-sdk-test").create_counter("farm.sdk.test.runs").add(1)
    assert sdk.tracer_provider().force_flush()
    assert sdk.meter_provider().force_flush()

    assert [span["name"] for span in read_lines(spans_file)] == ["a job"]
    assert [(m["name"], m["value"]) for m in read_lines(metrics_file)] == [
        ("farm.sdk.test.runs", 1)
    ]


def test_none_gives_sdk_providers_without_processors_or_readers(
    sdk: Installed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "NONE")

    configure_sdk_from_environment()

    sdk.tracer_provider()
    sdk.meter_provider()
    assert sdk.processors == []
    assert sdk.readers == []


@pytest.mark.parametrize("variable", ["OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER"])
def test_an_unknown_exporter_is_refused_naming_it_and_what_is_installed(
    sdk: Installed, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "console")
    monkeypatch.setenv(variable, "console,no_such_exporter")

    with pytest.raises(FarmConfigurationError) as raised:
        configure_sdk_from_environment()

    message = str(raised.value)
    assert f"{variable}='console,no_such_exporter'" in message
    assert "'no_such_exporter'" in message
    assert "console" in message.split("installed")[1], "names what is installed"
    assert not isinstance(trace.get_tracer_provider(), TracerProvider), "nothing installed"
    assert not isinstance(metrics.get_meter_provider(), MeterProvider)


def test_otlp_is_the_default_set_for_the_workers_over_the_protocol_configured(
    sdk: Installed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")

    with pytest.raises(FarmConfigurationError, match=r"OTEL_EXPORTER_OTLP_PROTOCOL='http/json'"):
        configure_sdk_from_environment()

    assert os.environ["OTEL_TRACES_EXPORTER"] == "otlp"
    assert os.environ["OTEL_METRICS_EXPORTER"] == "otlp"


def test_otlp_without_its_exporter_package_says_what_to_install(
    sdk: Installed, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = {e.name for e in entry_points(group="opentelemetry_metrics_exporter")}
    if "otlp_proto_grpc" in installed:
        pytest.skip("opentelemetry-exporter-otlp-proto-grpc is installed")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")

    with pytest.raises(FarmConfigurationError) as raised:
        configure_sdk_from_environment()

    message = str(raised.value)
    assert "OTEL_METRICS_EXPORTER='otlp'" in message
    assert "pip install opentelemetry-exporter-otlp-proto-grpc" in message


def test_otlp_over_http_when_the_protocol_says_so(
    sdk: Installed, monkeypatch: pytest.MonkeyPatch
) -> None:
    http = pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")  # the signal's own one wins
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")

    configure_sdk_from_environment()

    [processor] = sdk.processors
    assert isinstance(processor, BatchSpanProcessor)
    assert isinstance(processor.span_exporter, http.OTLPSpanExporter)


def test_a_metric_exporter_that_is_a_reader_is_the_reader_itself(
    sdk: Installed, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    install_entry_points(
        tmp_path,
        monkeypatch,
        "[opentelemetry_metrics_exporter]\n"
        "memory = opentelemetry.sdk.metrics.export:InMemoryMetricReader\n",
    )
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "console,memory")

    configure_sdk_from_environment()

    periodic, memory = sdk.readers
    assert isinstance(periodic, PeriodicExportingMetricReader)
    assert isinstance(memory, InMemoryMetricReader)


def test_an_entry_point_of_the_wrong_kind_is_refused(
    sdk: Installed, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    install_entry_points(
        tmp_path,
        monkeypatch,
        "[opentelemetry_traces_exporter]\n"
        "metric = opentelemetry.sdk.metrics.export:ConsoleMetricExporter\n",
    )
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "metric")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")

    with pytest.raises(FarmConfigurationError) as raised:
        configure_sdk_from_environment()

    message = str(raised.value)
    assert "OTEL_TRACES_EXPORTER: 'metric' is" in message
    assert ConsoleMetricExporter.__name__ in message
    assert message.endswith("not a SpanExporter")


def test_the_sampler_and_id_generator_come_from_their_variables(
    sdk: Installed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    monkeypatch.setenv("OTEL_PYTHON_ID_GENERATOR", "random")

    configure_sdk_from_environment()

    provider = sdk.tracer_provider()
    assert provider.sampler is ALWAYS_OFF
    assert isinstance(provider.id_generator, RandomIdGenerator)


def test_a_custom_sampler_that_cannot_be_built_leaves_the_default_with_a_warning(
    sdk: Installed,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    install_entry_points(
        tmp_path,
        monkeypatch,
        "[opentelemetry_traces_sampler]\n"
        "farm_ratio = opentelemetry.sdk.trace.sampling:TraceIdRatioBased\n",
    )
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "farm_ratio")
    # A custom sampler's factory gets the argument as written: a string, refused here.
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.5")

    with caplog.at_level(logging.WARNING, logger="fast_app.farm.telemetry.sdk"):
        configure_sdk_from_environment()

    assert sdk.tracer_provider().sampler is DEFAULT_ON
    assert "OTEL_TRACES_SAMPLER='farm_ratio'" in caplog.text


def test_an_unknown_id_generator_is_refused(
    sdk: Installed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    monkeypatch.setenv("OTEL_PYTHON_ID_GENERATOR", "no_such_generator")

    with pytest.raises(
        FarmConfigurationError, match=r"OTEL_PYTHON_ID_GENERATOR='no_such_generator'.*random"
    ):
        configure_sdk_from_environment()


def test_log_exporters_are_ignored_with_a_warning(
    sdk: Installed, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "console")
    monkeypatch.setenv("OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED", "true")

    with caplog.at_level(logging.WARNING, logger="fast_app.farm.telemetry.sdk"):
        configure_sdk_from_environment()

    assert "OTEL_LOGS_EXPORTER='console' is ignored" in caplog.text
    assert "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true is ignored" in caplog.text
    sdk.tracer_provider()


def test_a_declarative_configuration_file_is_refused(
    sdk: Installed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_CONFIG_FILE", "otel.yaml")

    with pytest.raises(FarmConfigurationError, match=r"OTEL_CONFIG_FILE='otel.yaml'"):
        configure_sdk_from_environment()
