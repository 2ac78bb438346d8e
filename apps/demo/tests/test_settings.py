"""The demo's settings: defaults, the variables it reads, and the errors it gives."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from fast_app_demo.errors import DemoConfigurationError
from fast_app_demo.settings import DemoSettings


def test_defaults_need_no_environment() -> None:
    settings = DemoSettings.from_environment({})

    assert settings.data_dir == Path(tempfile.gettempdir()) / "fast-app-demo"
    assert settings.telemetry is True
    assert settings.traces_exporters is None
    assert settings.otlp_endpoint is None
    assert settings.service_name is None


def test_it_reads_the_demo_and_otel_variables() -> None:
    settings = DemoSettings.from_environment(
        {
            "DEMO_DATA_DIR": "/srv/demo",
            "DEMO_TELEMETRY": "off",
            "OTEL_TRACES_EXPORTER": " OTLP, console ",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
            "OTEL_SERVICE_NAME": "shop-api",
        }
    )

    assert settings == DemoSettings(
        data_dir=Path("/srv/demo"),
        telemetry=False,
        traces_exporters=("otlp", "console"),
        otlp_endpoint="http://collector:4318",
        service_name="shop-api",
    )


def test_the_traces_specific_endpoint_counts_as_an_endpoint() -> None:
    settings = DemoSettings.from_environment(
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}
    )

    assert settings.otlp_endpoint == "http://collector:4318/v1/traces"


def test_an_invalid_flag_names_the_variable_and_what_is_allowed() -> None:
    with pytest.raises(DemoConfigurationError, match=r"DEMO_TELEMETRY='maybe': expected 1/0"):
        DemoSettings.from_environment({"DEMO_TELEMETRY": "maybe"})


def test_the_reports_queue_is_read_and_checked_like_any_queue_name() -> None:
    assert DemoSettings.from_environment({}).reports_queue == "reports"
    assert DemoSettings.from_environment({"DEMO_REPORTS_QUEUE": " slow "}).reports_queue == "slow"
    with pytest.raises(DemoConfigurationError, match=r"DEMO_REPORTS_QUEUE='x.dead': .*companion"):
        DemoSettings.from_environment({"DEMO_REPORTS_QUEUE": "x.dead"})
    with pytest.raises(DemoConfigurationError, match=r"DEMO_REPORTS_QUEUE='a b': a queue name is"):
        DemoSettings.from_environment({"DEMO_REPORTS_QUEUE": "a b"})
