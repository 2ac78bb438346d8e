"""The demo's settings, read once from ``DEMO_*`` and the ``OTEL_*`` variables it honours.

A frozen dataclass rather than a pydantic-settings class: the demo does not declare
``pydantic-settings`` (the lock is shared), and these few variables need no more.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fast_app.core.queue.queues import check_queue_name
from fast_app_demo.errors import DemoConfigurationError

__all__ = ["DemoSettings", "default_data_dir", "get_settings"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def default_data_dir() -> Path:
    """Where jobs record what they did unless ``DEMO_DATA_DIR`` says otherwise."""
    # A fixed path (not a fresh temp dir) so that the web process and every worker,
    # started separately, agree on it without being told.
    return Path(tempfile.gettempdir()) / "fast-app-demo"


def _flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise DemoConfigurationError(f"{name}={raw!r}: expected 1/0, true/false, yes/no or on/off")


def _queue_name(environ: Mapping[str, str], name: str, default: str) -> str:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return check_queue_name(raw)
    except ValueError as error:
        raise DemoConfigurationError(f"{name}={raw!r}: {error}") from None


def _names(raw: str | None) -> tuple[str, ...] | None:
    if raw is None or not raw.strip():
        return None
    return tuple(name.strip().lower() for name in raw.split(",") if name.strip())


@dataclass(frozen=True, slots=True)
class DemoSettings:
    """What the demo's processes read from the environment.

    Attributes:
        data_dir: ``DEMO_DATA_DIR``: where jobs record their runs, emails, reports and
            thumbnails; every process of the demo (web app, workers) must see it.
        telemetry: ``DEMO_TELEMETRY``: set up the OpenTelemetry SDK (default on); off
            leaves it to you (``FARM_OTEL_SDK=1``, your own startup hook) or to nobody.
        traces_exporters: ``OTEL_TRACES_EXPORTER``: exporter names, as the OpenTelemetry
            specification spells them; ``None`` when unset (the demo then picks).
        otlp_endpoint: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or its ``_TRACES_`` variant):
            when set and no exporter is named, spans go there over OTLP/HTTP.
        service_name: ``OTEL_SERVICE_NAME``: overrides the name each process gives itself.
        reports_queue: ``DEMO_REPORTS_QUEUE``: the queue the report endpoints name in
            their ``queue()`` calls (``__queue=``); default ``reports``.
    """

    data_dir: Path
    telemetry: bool = True
    traces_exporters: tuple[str, ...] | None = None
    otlp_endpoint: str | None = None
    service_name: str | None = None
    reports_queue: str = "reports"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> DemoSettings:
        """Read the settings from ``environ`` (default: the process environment).

        Raises:
            DemoConfigurationError: naming the variable that is invalid.
        """
        env = os.environ if environ is None else environ
        data_dir = env.get("DEMO_DATA_DIR", "").strip()
        endpoint = (
            env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
            or env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        )
        return cls(
            data_dir=Path(data_dir).expanduser() if data_dir else default_data_dir(),
            telemetry=_flag(env, "DEMO_TELEMETRY", default=True),
            traces_exporters=_names(env.get("OTEL_TRACES_EXPORTER")),
            otlp_endpoint=endpoint or None,
            service_name=env.get("OTEL_SERVICE_NAME", "").strip() or None,
            reports_queue=_queue_name(env, "DEMO_REPORTS_QUEUE", default="reports"),
        )


@functools.cache
def get_settings() -> DemoSettings:
    """The process's settings, read from the environment on first use.

    Raises:
        DemoConfigurationError: naming the variable that is invalid.
    """
    return DemoSettings.from_environment()
