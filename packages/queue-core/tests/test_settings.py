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


def test_redact_url_hides_a_bracketed_ipv6_host_s_password_and_keeps_the_brackets() -> None:
    assert redact_url("amqp://u:p@[::1]:5672/v") == "amqp://u:***@[::1]:5672/v"


@pytest.mark.parametrize(
    "url",
    [
        "amqp://u:hunter2@h:99999/",
        "amqp://u:hunter2@h:abc/",
        "amqp://u:hunter2@[::1/",
        "u:hunter2@h",  # no scheme: the '@' may still sit next to a password
    ],
)
def test_redact_url_never_raises_and_hides_what_it_cannot_parse(url: str) -> None:
    shown = redact_url(url)

    assert "hunter2" not in shown
    assert shown == "<hidden URL>"


_BAD_URLS = [
    pytest.param("amqp://app:hunter2@broker:99999/", "invalid port", id="port-too-large"),
    pytest.param("amqp://app:hunter2@broker:abc/", "invalid port", id="port-not-a-number"),
    pytest.param("amqp://app:hunter2@broker:0/", "invalid port", id="port-zero"),
    pytest.param("amqp://app:hunter2@[::1/", "IPv6", id="unclosed-ipv6-bracket"),
    pytest.param("amqp://app:hunter2@[broker]/", "IPv6", id="bracketed-non-ip"),
    pytest.param("http://app:hunter2@broker/", r"amqp:// or amqps:// \(not http://\)", id="http"),
    pytest.param("not a url", "amqp:// or amqps://", id="not-a-url"),
    pytest.param("app:hunter2@broker:5672", "amqp:// or amqps://", id="no-scheme"),
    pytest.param("amqp://app:hunter2@/vhost", "no host", id="no-host"),
    pytest.param("amqp://app:hunter2@bro ker/", "spaces", id="space"),
]


@pytest.mark.parametrize(("url", "problem"), _BAD_URLS)
def test_an_unusable_broker_url_is_a_settings_error_without_its_password(
    monkeypatch: pytest.MonkeyPatch, url: str, problem: str
) -> None:
    monkeypatch.setenv("RABBITMQ_URL", url)

    with pytest.raises(
        QueueConfigurationError, match=rf"RABBITMQ_URL=<hidden>: .*{problem}"
    ) as raised:
        get_settings()
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize(("url", "problem"), _BAD_URLS[:3])
async def test_queue_with_an_unusable_broker_url_raises_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, url: str, problem: str
) -> None:
    monkeypatch.setenv("QUEUE_DRIVER", "async_farm")
    monkeypatch.setenv("RABBITMQ_URL", url)

    with pytest.raises(QueueConfigurationError, match="RABBITMQ_URL") as raised:
        await queue(jobs.send_welcome_email, "u1")
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize(
    "url",
    [
        "amqp://guest:guest@localhost:5672/",
        "amqps://app:p%40ss@broker.example.com/prod",
        "amqp://[::1]:5672/",
        "AMQP://broker",
    ],
)
def test_usable_broker_urls_are_accepted(url: str) -> None:
    assert configure(rabbitmq_url=url).rabbitmq_url.get_secret_value() == url


@pytest.mark.parametrize(
    "key",
    ["", "k3y", "x" * 31, "é" * 15 + "x"],
    ids=["empty", "short", "31-bytes", "31-utf8-bytes"],
)
def test_a_signing_key_shorter_than_32_bytes_is_refused(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    monkeypatch.setenv("ASYNC_FARM_SIGNING_KEY", key)

    with pytest.raises(
        QueueConfigurationError, match=r"ASYNC_FARM_SIGNING_KEY=<hidden>: must be at least 32 bytes"
    ) as raised:
        get_settings()
    if key:
        assert key not in str(raised.value)


@pytest.mark.parametrize("key", ["x" * 32, "é" * 16], ids=["32-ascii", "32-utf8-bytes"])
def test_a_signing_key_of_32_bytes_is_accepted(key: str) -> None:
    settings = configure(signing_key=key)

    assert settings.signing_key is not None
    assert settings.signing_key.get_secret_value() == key
