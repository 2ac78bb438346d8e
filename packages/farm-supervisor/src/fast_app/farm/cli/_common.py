"""What several ``fast-app`` commands share: exit codes, settings, errors, telemetry."""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import urlsplit

from pydantic_settings import BaseSettings

from fast_app.core.queue.errors import QueueConfigurationError
from fast_app.core.queue.settings import QueueSettings, configure, get_settings
from fast_app.farm.errors import FarmConfigurationError
from fast_app.farm.settings import FarmSettings, load_farm_settings

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "broker_unreachable",
    "load_settings",
    "queue_settings",
    "set_up_telemetry",
    "setting_help",
]

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def load_settings(
    command: str, queue_name: str | None, overrides: dict[str, Any]
) -> tuple[FarmSettings, QueueSettings] | None:
    """Farm and queue settings from the environment and flags; ``None`` after saying why."""
    try:
        farm = load_farm_settings(**overrides)
        queue = configure(name=queue_name) if queue_name else get_settings()
    except (FarmConfigurationError, QueueConfigurationError) as error:
        print(f"fast-app {command}: {error}", file=sys.stderr)
        return None
    return farm, queue


def queue_settings(command: str, queue_name: str | None) -> QueueSettings | None:
    """Queue settings from the environment and ``--queue``; ``None`` after saying why."""
    try:
        return configure(name=queue_name) if queue_name else get_settings()
    except QueueConfigurationError as error:
        print(f"fast-app {command}: {error}", file=sys.stderr)
        return None


def broker_unreachable(command: str, queue: QueueSettings, error: BaseException) -> int:
    """Say that the broker could not be reached; the exit code for it."""
    hint = ""
    if urlsplit(queue.redacted_rabbitmq_url).hostname in _LOCAL_HOSTS:
        hint = " (for a local broker, run `fast-app broker` in another terminal)"
    print(
        f"fast-app {command}: cannot reach the broker at {queue.redacted_rabbitmq_url}: "
        f"{type(error).__name__}{hint}",
        file=sys.stderr,
    )
    return EXIT_USAGE


def setting_help(settings: type[BaseSettings], name: str) -> str:
    """A flag's help from its setting's description (``"VAR: meaning"``): the meaning,
    then the variable and the default, as in ``most workers a supervisor runs
    (FARM_MAX_WORKERS, default 4)``."""
    field = settings.model_fields[name]
    variable, _, meaning = (field.description or "").partition(": ")
    meaning = meaning.rstrip(".")
    default = field.default
    if "default" in meaning or default is None or default == ():
        where = variable  # the description says it, or there is none
    elif isinstance(default, bool):
        where = f"{variable}, default {'on' if default else 'off'}"
    elif isinstance(default, float) and default.is_integer():
        where = f"{variable}, default {int(default)}"
    else:
        where = f"{variable}, default {default}"
    return f"{meaning} ({where})".replace("%", "%%")  # argparse formats help with %


def set_up_telemetry(command: str, from_environment: bool) -> bool:
    """With FARM_OTEL_SDK=1, set up the OpenTelemetry SDK; whether that went well."""
    if not from_environment:
        return True
    from fast_app.farm.telemetry import configure_sdk_from_environment

    try:
        configure_sdk_from_environment()
    except FarmConfigurationError as error:
        print(f"fast-app {command}: {error}", file=sys.stderr)
        return False
    return True
