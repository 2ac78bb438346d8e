"""Setting up the OpenTelemetry SDK in farm processes from ``OTEL_*`` variables.

With ``FARM_OTEL_SDK=1``, ``fast-app work`` and each worker it spawns configure the SDK
the way ``opentelemetry-instrument`` does, through the SDK's own configurator: exporters
from ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER`` (``otlp`` when unset, as the
specification says), resource from ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``,
sampler from ``OTEL_TRACES_SAMPLER``, batching from ``OTEL_BSP_*``, and so on. The SDK is
imported only then: the farm itself depends on ``opentelemetry-api`` alone.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from fast_app.farm.errors import FarmConfigurationError

__all__ = ["configure_sdk_from_environment"]

_DEFAULT_EXPORTERS = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "otlp"}


def configure_sdk_from_environment() -> None:
    """Install SDK tracer and meter providers configured by the ``OTEL_*`` variables.

    Raises:
        FarmConfigurationError: the SDK, or an exporter the variables name, is not
            installed, or a variable is invalid.
    """
    try:
        configuration = importlib.import_module("opentelemetry.sdk._configuration")
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
    configurator: Any = configuration._OTelSDKConfigurator()
    try:
        configurator.configure()
    except Exception as error:
        raise FarmConfigurationError(
            f"FARM_OTEL_SDK=1: cannot set up the OpenTelemetry SDK from the OTEL_* variables "
            f"({type(error).__name__}: {error}); install the exporter packages they name "
            "(otlp: opentelemetry-exporter-otlp) or name others (console, none)"
        ) from None
