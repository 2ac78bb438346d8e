"""Settings: read from the environment once, overridable, with errors naming the variable."""

from __future__ import annotations

import pytest
import queue_core_jobs as jobs

from fast_app.core.queue import (
    QueueConfigurationError,
    configure,
    get_settings,
    override_settings,
    queue,
    reset_settings,
)
from fast_app.core.queue.settings import redact_url


def test_defaults() -> None:
    settings = get_settings()

    assert settings.driver == "sync"
    assert settings.rabbitmq_url.get_secret_value() == "amqp://guest:guest@localhost:5672/"
    assert settings.strict is False
    assert settings.sync_raise is False
    assert settings.max_payload_bytes == 256 * 1024


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUE_STRICT", "true")
    monkeypatch.setenv("QUEUE_MAX_PAYLOAD_BYTES", "4096")
    monkeypatch.setenv("RABBITMQ_URL", "amqp://app:s3cret@broker:5672/prod")

    settings = get_settings()

    assert settings.strict is True
    assert settings.max_payload_bytes == 4096
    assert settings.redacted_rabbitmq_url == "amqp://app:***@broker:5672/prod"


def test_settings_are_read_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    monkeypatch.setenv("QUEUE_STRICT", "1")

    assert get_settings() is first
    reset_settings()
    assert get_settings().strict is True


async def test_an_unknown_driver_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUE_DRIVER", "celery")

    with pytest.raises(QueueConfigurationError, match=r"QUEUE_DRIVER='celery'.*'sync'"):
        await queue(jobs.send_welcome_email, "u1")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("QUEUE_MAX_PAYLOAD_BYTES", "0"),
        ("QUEUE_MAX_PAYLOAD_BYTES", "lots"),
        ("QUEUE_STRICT", "maybe"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(QueueConfigurationError, match=rf"{variable}='{value}'"):
        get_settings()


def test_the_broker_password_never_appears_in_errors_or_reprs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RABBITMQ_URL", "amqp://app:hunter2@broker/")
    monkeypatch.setenv("QUEUE_STRICT", "maybe")

    with pytest.raises(QueueConfigurationError) as raised:
        get_settings()
    assert "hunter2" not in str(raised.value)
    monkeypatch.delenv("QUEUE_STRICT")
    assert "hunter2" not in repr(get_settings())


def test_an_invalid_url_value_is_hidden_in_the_error() -> None:
    with pytest.raises(QueueConfigurationError, match="RABBITMQ_URL=<hidden>") as raised:
        configure(rabbitmq_url=12)
    assert "12" not in str(raised.value).split("RABBITMQ_URL=")[1].split(":")[0]


def test_configure_and_override_settings_in_code() -> None:
    configure(strict=True)
    assert get_settings().strict is True

    with override_settings(strict=False, max_payload_bytes=10) as inner:
        assert get_settings() is inner
        assert inner.max_payload_bytes == 10
    assert get_settings().strict is True


def test_unknown_setting_names_are_refused() -> None:
    with pytest.raises(QueueConfigurationError, match="QUEUE_DRIVERS"):
        configure(drivers="sync")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("amqp://u:p@h:5672/v", "amqp://u:***@h:5672/v"),
        ("amqp://h/", "amqp://h/"),
        ("amqps://u:p%40ss@h/", "amqps://u:***@h/"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
