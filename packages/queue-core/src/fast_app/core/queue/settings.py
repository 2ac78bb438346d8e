"""Queue settings, read once per process from the environment (prefix ``QUEUE_``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .broker_urls import (
    MAX_BROKER_URLS,
    redact_url,
    split_broker_urls,
)
from .errors import QueueConfigurationError
from .queues import QueueRoutes, check_queue_name

__all__ = [
    "MIN_SIGNING_KEY_BYTES",
    "DriverName",
    "QueueType",
    "QueueSettings",
    "configure",
    "describe_invalid_settings",
    "get_settings",
    "override_settings",
    "redact_url",
    "reset_settings",
]

DriverName = Literal["sync", "async_farm"]
QueueType = Literal["quorum", "classic"]
_NameList = Annotated[tuple[str, ...], NoDecode]

#: Shortest accepted ``ASYNC_FARM_SIGNING_KEY``, HMAC-SHA256's output size. Short keys
#: are mostly words or patterns, and one signed job is enough to test guesses offline;
#: whoever finds the key signs jobs (with an empty key, anyone can).
MIN_SIGNING_KEY_BYTES = 32
_AMQP_SCHEMES = ("amqp", "amqps")


class QueueSettings(BaseSettings):
    """Settings of ``fast_app.core.queue``; each field's env var is in its description."""

    model_config = SettingsConfigDict(
        env_prefix="QUEUE_", extra="forbid", frozen=True, validate_default=True
    )

    driver: DriverName = Field(
        default="sync",
        description=(
            "QUEUE_DRIVER: where jobs run; `sync` runs them at once, in-process, "
            "`async_farm` publishes them to RabbitMQ for worker processes."
        ),
    )
    name: str = Field(
        default="async_farm.jobs",
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description=(
            "QUEUE_NAME: the RabbitMQ queue of jobs; `<name>.dead` holds dead letters and "
            "`<name>.delay.*` delayed jobs."
        ),
    )
    queue_type: QueueType = Field(
        default="quorum",
        validation_alias=AliasChoices("QUEUE_TYPE", "queue_type"),
        description=(
            "QUEUE_TYPE: `quorum` (replicated, with a delivery limit against crash "
            "loops) or `classic`."
        ),
    )
    replicas: int | None = Field(
        default=None,
        ge=1,
        le=99,
        description=(
            "QUEUE_REPLICAS: on a RabbitMQ cluster, how many nodes hold a copy of each "
            "quorum queue of the farm (jobs, delays, dead letters; "
            "`x-quorum-initial-group-size`). Unset: the broker's default (on RabbitMQ 3.x, "
            "every node of the cluster when the queue is first declared). 3 survives the "
            "loss of 1 node, 5 of 2. Fixed at the first declare, like every queue argument."
        ),
    )
    delivery_limit: int = Field(
        default=10,
        ge=1,
        le=1000,
        description=(
            "QUEUE_DELIVERY_LIMIT: quorum queues dead-letter a job delivered this many times "
            "without being acknowledged (its workers kept dying)."
        ),
    )
    connect_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description=(
            "QUEUE_CONNECT_TIMEOUT_S: how long `queue()` waits for the broker to accept and "
            "confirm a job before raising `QueueUnavailableError`."
        ),
    )
    retry_base_s: float = Field(
        default=1.0,
        gt=0,
        le=3600,
        description="QUEUE_RETRY_BASE_S: backoff before the first retry (doubles each retry).",
    )
    retry_cap_s: float = Field(
        default=300.0,
        gt=0,
        le=7 * 86400,
        description="QUEUE_RETRY_CAP_S: longest backoff between retries.",
    )
    signing_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("ASYNC_FARM_SIGNING_KEY", "signing_key"),
        description=(
            "ASYNC_FARM_SIGNING_KEY: shared secret of at least 32 bytes; publishers add an "
            "HMAC-SHA256 of each job and workers dead-letter jobs whose signature is missing "
            "or wrong."
        ),
    )
    rabbitmq_url: SecretStr = Field(
        default=SecretStr("amqp://guest:guest@localhost:5672/"),
        validation_alias=AliasChoices("RABBITMQ_URL", "rabbitmq_url"),
        description=(
            "RABBITMQ_URL: the broker used by the `async_farm` driver: "
            "`amqp://user:password@host:port/vhost`, or `amqps://` for TLS; for a cluster, "
            "its nodes' URLs separated by commas: processes connect to the first that "
            "accepts, in order, and fail over to the next."
        ),
    )
    strict: bool = Field(
        default=False,
        description=(
            "QUEUE_STRICT: in the sync driver, refuse lambdas, nested functions and "
            "functions of `__main__` (which workers cannot import) instead of warning."
        ),
    )
    sync_raise: bool = Field(
        default=False,
        description="QUEUE_SYNC_RAISE: in the sync driver, re-raise a job's exception.",
    )
    max_payload_bytes: int = Field(
        default=256 * 1024,
        gt=0,
        le=128 * 1024 * 1024,
        description="QUEUE_MAX_PAYLOAD_BYTES: largest encoded job accepted by `queue()`.",
    )
    trace_link_after_s: float | None = Field(
        default=None,
        ge=0,
        le=365 * 86400,
        description=(
            "QUEUE_TRACE_LINK_AFTER_S: a job that starts more than this many seconds after "
            "it was first enqueued begins a new trace, linked to the enqueue's, instead of "
            "continuing it (for long delays; 0: always; unset: never)."
        ),
    )
    routes: Annotated[QueueRoutes, NoDecode] = Field(
        default=QueueRoutes(),
        description=(
            "QUEUE_ROUTES: the queue of each function path or module prefix, "
            "`app.reports=reports,app.mail.send_welcome_email=emails`; the longest match "
            "wins, an explicit `__queue=` wins over it, and unrouted jobs go to QUEUE_NAME."
        ),
    )
    baggage_keys: _NameList = Field(
        default=(),
        description=(
            "QUEUE_BAGGAGE_KEYS: comma-separated context keys whose values `queue()` also "
            "sends as OpenTelemetry baggage (to the job and the services it calls); no "
            "context key is sent as baggage unless listed here."
        ),
    )

    @field_validator("baggage_keys", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("name")
    @classmethod
    def _queue_name(cls, name: str) -> str:
        return check_queue_name(name)

    @field_validator("routes", mode="before")
    @classmethod
    def _parse_routes(cls, value: Any) -> Any:
        return QueueRoutes.parse(value) if isinstance(value, str) else value

    @field_validator("signing_key")
    @classmethod
    def _long_enough(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and len(key.get_secret_value().encode()) < MIN_SIGNING_KEY_BYTES:
            # Without the key's length too: it would narrow the search for the key.
            raise PydanticCustomError(
                "signing_key_too_short",
                "must be at least {minimum} bytes (UTF-8); generate one with "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`, or unset it",
                {"minimum": MIN_SIGNING_KEY_BYTES},
            )
        return key

    @field_validator("rabbitmq_url")
    @classmethod
    def _usable_url(cls, url: SecretStr) -> SecretStr:
        urls = split_broker_urls(url.get_secret_value())
        if len(urls) > MAX_BROKER_URLS:
            raise PydanticCustomError(
                "rabbitmq_url",
                "lists {count} URLs: at most {most} (a cluster's nodes)",
                {"count": len(urls), "most": MAX_BROKER_URLS},
            )
        for position, one in enumerate(urls, start=1):
            problem = _url_problem(one)
            if problem is not None:
                which = "" if len(urls) == 1 else f"URL {position} of {len(urls)} "
                raise PydanticCustomError("rabbitmq_url", which + problem)
        return url

    @model_validator(mode="after")
    def _cap_not_below_base(self) -> QueueSettings:
        if self.retry_cap_s < self.retry_base_s:
            raise ValueError(
                f"QUEUE_RETRY_CAP_S ({self.retry_cap_s:g}) must be at least "
                f"QUEUE_RETRY_BASE_S ({self.retry_base_s:g})"
            )
        return self

    @property
    def rabbitmq_urls(self) -> list[str]:
        """The broker's URLs (a cluster's nodes), in the order to try them; with passwords."""
        return split_broker_urls(self.rabbitmq_url.get_secret_value())

    @property
    def redacted_rabbitmq_url(self) -> str:
        """The broker URL (every URL of a list) with passwords hidden, safe for logs."""
        return redact_url(self.rabbitmq_url.get_secret_value())


_ENV_NAMES = {
    "rabbitmq_url": "RABBITMQ_URL",
    "signing_key": "ASYNC_FARM_SIGNING_KEY",
    "queue_type": "QUEUE_TYPE",
}
_ALIASES = {env_name: field_name for field_name, env_name in _ENV_NAMES.items()}
_SECRETS = frozenset({"rabbitmq_url", "signing_key"})
_HIDDEN = _SECRETS | {_ENV_NAMES[name] for name in _SECRETS}  # field names and aliases


def _env_name(field_name: str) -> str:
    return _ENV_NAMES.get(field_name, f"QUEUE_{field_name.upper()}")


def describe_invalid_settings(
    error: ValidationError,
    env_name: Callable[[str], str],
    hidden: Collection[str] = (),
) -> str:
    """What is wrong with some settings, one ``VARIABLE=value: problem`` per field.

    Shared by every settings class of the fast-app packages, so that all of them name
    the environment variable to fix, the same way.

    Args:
        error: pydantic's error for the settings class.
        env_name: the environment variable of a field name.
        hidden: fields whose values are secrets: shown as ``<hidden>``.
    """
    problems = []
    for detail in error.errors():
        if not detail["loc"]:  # a rule across fields; its message names them
            problems.append(str(detail["msg"]).removeprefix("Value error, "))
            continue
        field_name = str(detail["loc"][0])
        shown = "<hidden>" if field_name in hidden else repr(detail.get("input"))
        problems.append(f"{env_name(field_name)}={shown}: {detail['msg']}")
    return "; ".join(problems)


def _load(overrides: dict[str, Any]) -> QueueSettings:
    try:
        return QueueSettings(**overrides)
    except ValidationError as error:
        described = describe_invalid_settings(
            error, lambda name: _env_name(_ALIASES.get(name, name)), hidden=_HIDDEN
        )
        raise QueueConfigurationError(f"invalid queue settings: {described}") from None


_current: QueueSettings | None = None
_lock = threading.Lock()


def get_settings() -> QueueSettings:
    """The process's settings, read from the environment on first use.

    Raises:
        QueueConfigurationError: naming each invalid variable.
    """
    global _current
    settings = _current
    if settings is None:
        with _lock:
            if _current is None:
                _current = _load({})
            settings = _current
    return settings


def configure(**overrides: Any) -> QueueSettings:
    """Replace the process's settings: the environment, then ``overrides`` (field names)."""
    global _current
    settings = _load(overrides)
    with _lock:
        _current = settings
    return settings


def reset_settings() -> None:
    """Forget the settings so that the next use reads the environment again."""
    global _current
    with _lock:
        _current = None


@contextmanager
def override_settings(**overrides: Any) -> Iterator[QueueSettings]:
    """Use other settings inside a ``with`` block (for tests); restores the previous ones."""
    global _current
    previous = _current
    settings = configure(**overrides)
    try:
        yield settings
    finally:
        with _lock:
            _current = previous


def _url_problem(url: str) -> str | None:
    """What makes ``url`` unusable as ``RABBITMQ_URL``, or ``None`` when it is usable.

    Checked when the settings load, so that a typo stops the process with a message
    naming the variable instead of a traceback at the first connection. The problem
    never quotes the URL: it may hold the password.
    """
    scheme, separator, _ = url.partition("://")
    if not separator or scheme.lower() not in _AMQP_SCHEMES:
        shown = f" (not {scheme}://)" if separator and scheme.isalpha() else ""
        return f"must start with amqp:// or amqps://{shown}"
    if any(character.isspace() or not character.isprintable() for character in url):
        return "must not contain spaces or control characters (percent-encode them)"
    try:
        parts = urlsplit(url)
    except ValueError:  # unbalanced brackets, or a bracketed host that is no IP address
        return "has an invalid host: write an IPv6 address in brackets, amqp://[::1]:5672/"
    if not parts.hostname:
        return "has no host: amqp://user:password@host:5672/vhost"
    try:
        port = parts.port
    except ValueError:  # not a number, or above 65535
        port = 0
    if port == 0:
        return "has an invalid port: a number from 1 to 65535"
    return None
