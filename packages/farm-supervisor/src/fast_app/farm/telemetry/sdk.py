"""Setting up the OpenTelemetry SDK in farm processes from ``OTEL_*`` variables.

With ``FARM_OTEL_SDK=1``, ``fast-app work`` and each worker it spawns install SDK tracer
and meter providers configured by the standard variables. ``opentelemetry-instrument``
does this with the SDK's configurator, which is private (``opentelemetry.sdk._configuration``)
and has no public replacement, so the same set-up is built here from public pieces:

- exporters: ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER``, comma-separated names
  of entry points in the documented groups ``opentelemetry_traces_exporter`` /
  ``opentelemetry_metrics_exporter``. Unset, each is ``otlp``, as the specification
  says, and is set so in the environment, which the workers inherit. ``otlp`` means
  ``otlp_proto_grpc`` or ``otlp_proto_http`` as ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` /
  ``OTEL_EXPORTER_OTLP_METRICS_PROTOCOL``, else ``OTEL_EXPORTER_OTLP_PROTOCOL``, say
  (``grpc`` or ``http/protobuf``; ``grpc`` when unset, as in the SDK's configurator).
  ``none``, or an empty value, names no exporter;
- spans: one ``BatchSpanProcessor`` per exporter (``OTEL_BSP_*``); metrics: one
  ``PeriodicExportingMetricReader`` per exporter (``OTEL_METRIC_EXPORT_INTERVAL`` /
  ``OTEL_METRIC_EXPORT_TIMEOUT``), or the exporter itself when it is a ``MetricReader``
  (a pull exporter such as Prometheus's);
- resource: ``Resource.create()`` (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``);
- sampler: ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG``; ``TracerProvider``
  reads the built-in names itself, other names are entry points in the
  ``opentelemetry_traces_sampler`` group (a sampler that cannot be built is logged and
  the default, ``parentbased_always_on``, used: the SDK's behaviour);
- ID generator: ``OTEL_PYTHON_ID_GENERATOR``, an entry point in the
  ``opentelemetry_id_generator`` group (``random``, the default, is the SDK's);
- what the SDK classes read themselves: ``OTEL_SDK_DISABLED``, span limits
  (``OTEL_SPAN_*``, ``OTEL_ATTRIBUTE_*``), the exporters' own variables.

Not supported: logs, whose SDK is private too (``opentelemetry.sdk._logs``), so
``OTEL_LOGS_EXPORTER`` and ``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED`` are
ignored with a warning; declarative configuration (``OTEL_CONFIG_FILE`` is refused); the
SDK's private extension points (``OTEL_PYTHON_TRACER_CONFIGURATOR`` and its meter and
logger siblings, OpAMP). Configure those in a ``FARM_STARTUP`` hook instead.

The SDK is imported only when this runs: the farm itself depends on ``opentelemetry-api``
alone.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, TypeVar

from opentelemetry import metrics, trace

from fast_app.farm.errors import FarmConfigurationError

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from opentelemetry.sdk.trace.sampling import Sampler

__all__ = ["configure_sdk_from_environment"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_TRACES = "OTEL_TRACES_EXPORTER"
_METRICS = "OTEL_METRICS_EXPORTER"
_DEFAULT_EXPORTERS = {_TRACES: "otlp", _METRICS: "otlp"}
_EXPORTER_GROUPS = {
    _TRACES: "opentelemetry_traces_exporter",
    _METRICS: "opentelemetry_metrics_exporter",
}
_OTLP_PROTOCOL_VARIABLES = {
    _TRACES: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    _METRICS: "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
}
_OTLP_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}
_OTLP_HINTS = {
    "otlp_proto_grpc": "; pip install opentelemetry-exporter-otlp-proto-grpc (or, for OTLP over "
    "HTTP, opentelemetry-exporter-otlp-proto-http and OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf)",
    "otlp_proto_http": "; pip install opentelemetry-exporter-otlp-proto-http",
}
# The samplers the specification names and TracerProvider builds from the environment.
_BUILT_IN_SAMPLERS = frozenset(
    {
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    }
)


def configure_sdk_from_environment() -> None:
    """Install SDK tracer and meter providers configured by the ``OTEL_*`` variables.

    Everything is resolved before anything is installed: on an error, the global
    providers are left as they were.

    Raises:
        FarmConfigurationError: the SDK, or an exporter or ID generator the variables
            name, is not installed, or a variable is invalid.
    """
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise FarmConfigurationError(
            "FARM_OTEL_SDK=1 needs the OpenTelemetry SDK: pip install opentelemetry-sdk "
            "(plus the exporter OTEL_TRACES_EXPORTER names; otlp, the default, is in "
            "opentelemetry-exporter-otlp)"
        ) from None

    for variable, default in _DEFAULT_EXPORTERS.items():
        # Set in the environment (as opentelemetry-distro does), so that the workers a
        # supervisor spawns inherit the same choice.
        os.environ.setdefault(variable, default)
    environ: Mapping[str, str] = os.environ
    if environ.get("OTEL_CONFIG_FILE"):
        raise FarmConfigurationError(
            "FARM_OTEL_SDK=1 reads the OTEL_* variables, not a declarative configuration "
            f"file: unset OTEL_CONFIG_FILE={environ['OTEL_CONFIG_FILE']!r}, or configure the "
            "SDK from that file in a FARM_STARTUP hook (opentelemetry-configuration)"
        )
    _warn_about_logs(environ)

    span_exporter_classes = [
        _span_exporter_class(loaded, name) for name, loaded in _exporters(environ, _TRACES)
    ]
    metric_exporter_classes = [
        _metric_exporter_class(loaded, name) for name, loaded in _exporters(environ, _METRICS)
    ]
    sampler = _sampler(environ)
    id_generator = _id_generator(environ)

    span_exporters = [_build(cls, _TRACES) for cls in span_exporter_classes]
    metric_exporters = [_build(cls, _METRICS) for cls in metric_exporter_classes]
    try:
        resource = Resource.create()
        tracer_provider = TracerProvider(
            resource=resource, sampler=sampler, id_generator=id_generator
        )
        for span_exporter in span_exporters:
            tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
        metric_readers = [
            exporter
            if isinstance(exporter, MetricReader)
            else PeriodicExportingMetricReader(exporter)
            for exporter in metric_exporters
        ]
        meter_provider = MeterProvider(resource=resource, metric_readers=metric_readers)
    except Exception as error:  # e.g. OTEL_BSP_MAX_EXPORT_BATCH_SIZE > OTEL_BSP_MAX_QUEUE_SIZE
        raise FarmConfigurationError(
            f"FARM_OTEL_SDK=1: cannot set up the OpenTelemetry SDK from the OTEL_* variables "
            f"({type(error).__name__}: {error})"
        ) from None
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)


def _warn_about_logs(environ: Mapping[str, str]) -> None:
    """Say that log variables meant for the SDK's configurator do nothing here."""
    exporters = environ.get("OTEL_LOGS_EXPORTER", "").strip()
    if exporters and exporters.lower() != "none":
        logger.warning(
            "FARM_OTEL_SDK=1 sets up traces and metrics only: OTEL_LOGS_EXPORTER=%r is "
            "ignored (the SDK's logs are not public API); export logs from a FARM_STARTUP hook",
            exporters,
        )
    handler = environ.get("OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED", "")
    if handler.strip().lower() == "true":
        logger.warning(
            "FARM_OTEL_SDK=1 sets up traces and metrics only: "
            "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true is ignored; use "
            "opentelemetry-instrumentation-logging from a FARM_STARTUP hook"
        )


def _exporters(environ: Mapping[str, str], variable: str) -> list[tuple[str, object]]:
    """The exporters ``variable`` names, as (entry point name, loaded object)."""
    value = environ.get(variable, "")
    names: list[str] = []
    for written in value.split(","):
        name = written.strip()
        if name.lower() in ("", "none"):
            continue
        name = _otlp_by_protocol(environ, variable, name)
        if name not in names:
            names.append(name)
    group = _EXPORTER_GROUPS[variable]
    found = _entry_points(group)
    loaded: list[tuple[str, object]] = []
    for name in names:
        if name not in found:
            raise FarmConfigurationError(
                f"FARM_OTEL_SDK=1: {variable}={value!r} names the exporter {name!r}, which no "
                f"installed package provides (entry point group {group}: "
                f"{', '.join(sorted(found)) or 'none'}; 'none' turns the signal off)"
                f"{_OTLP_HINTS.get(name, '')}"
            )
        loaded.append((name, _load(found[name], variable)))
    return loaded


def _otlp_by_protocol(environ: Mapping[str, str], variable: str, name: str) -> str:
    """``otlp`` as the entry point of the OTLP exporter for the configured protocol."""
    if name != "otlp":
        return name
    signal_variable = _OTLP_PROTOCOL_VARIABLES[variable]
    protocol_variable = (
        signal_variable if environ.get(signal_variable) else "OTEL_EXPORTER_OTLP_PROTOCOL"
    )
    protocol = environ.get(protocol_variable, "").strip()
    if not protocol:
        return _OTLP_BY_PROTOCOL["grpc"]
    if protocol not in _OTLP_BY_PROTOCOL:
        raise FarmConfigurationError(
            f"FARM_OTEL_SDK=1: {protocol_variable}={protocol!r} is not an OTLP protocol the "
            f"SDK's exporters speak (one of: {', '.join(_OTLP_BY_PROTOCOL)})"
        )
    return _OTLP_BY_PROTOCOL[protocol]


def _sampler(environ: Mapping[str, str]) -> Sampler | None:
    """A sampler from an entry point; ``None``: TracerProvider's own, from the environment."""
    from opentelemetry.sdk.trace.sampling import Sampler

    name = environ.get("OTEL_TRACES_SAMPLER", "").strip()
    if not name or name.lower() in _BUILT_IN_SAMPLERS:
        return None
    entry_point = _entry_points("opentelemetry_traces_sampler").get(name)
    if entry_point is None:
        return None  # TracerProvider warns and uses its default
    # As documented for custom samplers: the factory gets OTEL_TRACES_SAMPLER_ARG as is.
    argument = environ.get("OTEL_TRACES_SAMPLER_ARG")
    try:
        sampler: object = entry_point.load()(argument)
    except Exception as error:
        sampler = f"{type(error).__name__}: {error}"
    if isinstance(sampler, Sampler):
        return sampler
    # The SDK's configurator did the same: a warning, and the default sampler.
    logger.warning(
        "OTEL_TRACES_SAMPLER=%r: the sampler could not be built (%s), using the default",
        name,
        sampler,
    )
    return None


def _id_generator(environ: Mapping[str, str]) -> IdGenerator | None:
    """The generator ``OTEL_PYTHON_ID_GENERATOR`` names; ``None``: the SDK's random one."""
    from opentelemetry.sdk.trace.id_generator import IdGenerator

    variable = "OTEL_PYTHON_ID_GENERATOR"
    name = environ.get(variable, "").strip()
    if not name or name == "random":
        return None
    group = "opentelemetry_id_generator"
    found = _entry_points(group)
    if name not in found:
        raise FarmConfigurationError(
            f"FARM_OTEL_SDK=1: {variable}={name!r} names an ID generator that no installed "
            f"package provides (entry point group {group}: {', '.join(sorted(found))})"
        )
    loaded = _load(found[name], variable)
    if not (isinstance(loaded, type) and issubclass(loaded, IdGenerator)):
        raise _not_a("IdGenerator", loaded, variable, name)
    return _build(loaded, variable)


def _entry_points(group: str) -> dict[str, importlib.metadata.EntryPoint]:
    """The entry points of ``group`` by name; the first installed one wins a shared name."""
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for entry_point in importlib.metadata.entry_points(group=group):
        found.setdefault(entry_point.name, entry_point)
    return found


def _load(entry_point: importlib.metadata.EntryPoint, variable: str) -> object:
    try:
        loaded: object = entry_point.load()
    except Exception as error:
        raise FarmConfigurationError(
            f"FARM_OTEL_SDK=1: {variable}: cannot load {entry_point.name!r} "
            f"({entry_point.value}): {type(error).__name__}: {error}"
        ) from None
    return loaded


def _span_exporter_class(loaded: object, name: str) -> type[SpanExporter]:
    from opentelemetry.sdk.trace.export import SpanExporter

    if isinstance(loaded, type) and issubclass(loaded, SpanExporter):
        return loaded
    raise _not_a("SpanExporter", loaded, _TRACES, name)


def _metric_exporter_class(loaded: object, name: str) -> type[MetricExporter] | type[MetricReader]:
    """A push exporter, or a pull exporter, which is a reader itself."""
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader

    if isinstance(loaded, type) and issubclass(loaded, MetricExporter | MetricReader):
        return loaded
    raise _not_a("MetricExporter or MetricReader", loaded, _METRICS, name)


def _not_a(kind: str, loaded: object, variable: str, name: str) -> FarmConfigurationError:
    return FarmConfigurationError(
        f"FARM_OTEL_SDK=1: {variable}: {name!r} is {loaded!r}, not a {kind}"
    )


def _build(cls: type[_T], variable: str) -> _T:
    """An instance of an exporter or ID generator, its own settings read from the environment."""
    try:
        return cls()
    except Exception as error:
        raise FarmConfigurationError(
            f"FARM_OTEL_SDK=1: {variable}: cannot set up {cls.__module__}.{cls.__qualname__} "
            f"({type(error).__name__}: {error}); check the variables it reads"
        ) from None
