"""The demo's OpenTelemetry SDK setup: one trace from the HTTP request to the job.

The queue packages depend on ``opentelemetry-api`` only; an application configures the
SDK. Here each process of the demo (the web app, each farm worker) installs a tracer
provider whose exporters the ``OTEL_*`` variables choose:

- nothing set: one line per span on stderr (``oneline``, the demo's own exporter);
- ``OTEL_EXPORTER_OTLP_ENDPOINT`` set: OTLP over HTTP to it (and metrics too);
- ``OTEL_TRACES_EXPORTER=name[,name]``: ``oneline``, ``console`` (the SDK's JSON),
  ``otlp``, ``none``, or any exporter installed under the ``opentelemetry_traces_exporter``
  entry point group (as ``opentelemetry-instrument`` does).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from importlib.metadata import entry_points

from opentelemetry import metrics, trace
from opentelemetry.instrumentation.propagators import (
    TraceResponsePropagator,
    set_global_response_propagator,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)

from fast_app_demo._oneline import OneLineSpanExporter
from fast_app_demo.errors import DemoConfigurationError
from fast_app_demo.settings import DemoSettings, get_settings

__all__ = [
    "API_SERVICE",
    "WORKER_SERVICE",
    "configure_telemetry",
    "exporter_names",
    "load_span_exporter",
]

API_SERVICE = "fast-app-demo-api"
WORKER_SERVICE = "fast-app-demo-worker"

_ENTRY_POINT_GROUP = "opentelemetry_traces_exporter"
# "otlp" is the name the specification uses; the entry point of that name comes with the
# opentelemetry-exporter-otlp meta-package, which the demo does not install.
_ALIASES = {"otlp": "otlp_proto_http"}
_lock = threading.Lock()


def exporter_names(
    settings: DemoSettings, default: tuple[str, ...] = ("oneline",)
) -> tuple[str, ...]:
    """The span exporters to use: those named, else OTLP if an endpoint is set, else ``default``."""
    if settings.traces_exporters is not None:
        return tuple(name for name in settings.traces_exporters if name != "none")
    if settings.otlp_endpoint:
        return ("otlp",)
    return default


def load_span_exporter(name: str) -> SpanExporter:
    """A new span exporter by name.

    Raises:
        DemoConfigurationError: no exporter of that name is installed.
    """
    if name == "oneline":
        return OneLineSpanExporter()
    wanted = _ALIASES.get(name, name)
    found = entry_points(group=_ENTRY_POINT_GROUP, name=wanted)
    if not found:
        installed = sorted(
            {"oneline", "none", *_ALIASES, *entry_points(group=_ENTRY_POINT_GROUP).names}
        )
        raise DemoConfigurationError(
            f"OTEL_TRACES_EXPORTER: no span exporter named {name!r} is installed "
            f"(installed: {', '.join(installed)})"
        )
    exporter_class = next(iter(found)).load()
    exporter: SpanExporter = exporter_class()
    return exporter


def _sdk_configured() -> bool:
    return isinstance(trace.get_tracer_provider(), TracerProvider)


def configure_telemetry(
    service_name: str,
    *,
    settings: DemoSettings | None = None,
    default_exporters: tuple[str, ...] = ("oneline",),
    extra_exporters: Sequence[SpanExporter] = (),
) -> TracerProvider | None:
    """Install the OpenTelemetry SDK for this process, once.

    Does nothing (and returns ``None``) when ``DEMO_TELEMETRY`` is off or a tracer
    provider is already installed: by an earlier call, ``FARM_OTEL_SDK=1`` or anything
    else. The first caller names the process; the demo's entry points call this before
    they import the jobs module, which calls it as a worker would.

    Args:
        service_name: ``service.name`` of the process, unless ``OTEL_SERVICE_NAME`` is set.
        settings: the settings to follow (default: from the environment).
        default_exporters: exporters when the ``OTEL_*`` variables choose none.
        extra_exporters: exporters added in any case (the tour's in-memory one).

    Raises:
        DemoConfigurationError: an exporter named in ``OTEL_TRACES_EXPORTER`` is missing.
    """
    settings = settings or get_settings()
    if not settings.telemetry:
        return None
    with _lock:
        if _sdk_configured():
            return None
        names = exporter_names(settings, default_exporters)
        exporters = [(name, load_span_exporter(name)) for name in names]
        resource = Resource.create({"service.name": settings.service_name or service_name})
        provider = TracerProvider(resource=resource)
        for name, exporter in exporters:
            # One line per span is cheap enough to print at once, which keeps it next to
            # the request's own log line; the others batch (OTEL_BSP_* apply).
            if name == "oneline":
                provider.add_span_processor(SimpleSpanProcessor(exporter))
            else:
                provider.add_span_processor(BatchSpanProcessor(exporter))
        for exporter in extra_exporters:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        if "otlp" in names:
            _configure_otlp_metrics(resource)
        # A `traceresponse` header on every response names the request's trace: the
        # tour prints it, and you can look the trace up with it.
        set_global_response_propagator(TraceResponsePropagator())  # type: ignore[no-untyped-call]
    return provider


def _configure_otlp_metrics(resource: Resource) -> None:
    """Send the queue's and farm's metrics to the same OTLP endpoint as the spans."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    reader = PeriodicExportingMetricReader(OTLPMetricExporter())
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
