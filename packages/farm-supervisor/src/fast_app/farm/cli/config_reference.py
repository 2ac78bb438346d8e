"""The configuration reference (``docs/configuration.md``), rendered from the settings classes.

``fast-app config-reference`` prints it; a test checks that the committed file matches,
so the reference cannot drift from the code. The flags are read from the ``work`` and
``worker`` parsers themselves (their modules, not the whole ``fast-app`` parser, which
imports this one).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, SecretStr

from fast_app.core.queue.settings import QueueSettings
from fast_app.farm.cli.work import add_work_parser
from fast_app.farm.cli.worker import add_worker_parser
from fast_app.farm.settings import FarmSettings

__all__ = [
    "add_config_reference_parser",
    "command_flags",
    "render_reference",
    "run_config_reference",
]

#: The commands whose flags the reference lists, and how each adds its parser.
_COMMANDS: dict[str, Callable[[Any], None]] = {
    "work": add_work_parser,
    "worker": add_worker_parser,
}


def add_config_reference_parser(commands: Any) -> None:
    """Add ``config-reference`` to the ``fast-app`` parser."""
    commands.add_parser("config-reference", help="print the configuration reference (Markdown)")


def run_config_reference(options: argparse.Namespace) -> int:
    """Print the reference; the exit code."""
    print(render_reference(), end="")
    return 0


def _variable_of(destination: str, settings: dict[str, str]) -> str | None:
    """The variable a flag's ``dest`` sets: a field of the settings, or the queue's name."""
    if destination == "queue_name":
        return "QUEUE_NAME"
    return settings.get(destination)


def command_flags(command: str) -> dict[str, str]:
    """Variable -> flag of one ``fast-app`` command, read from its parser (never drifts)."""
    farm_variables = {
        name: (field.description or "").partition(": ")[0]
        for name, field in FarmSettings.model_fields.items()
    }
    parser = argparse.ArgumentParser(prog="fast-app")
    _COMMANDS[command](parser.add_subparsers(dest="command", required=True))
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            subcommand = action.choices[command]
            break
    else:  # pragma: no cover - the parser always has subcommands
        return {}
    flags: dict[str, str] = {}
    for option in subcommand._actions:
        variable = _variable_of(option.dest, farm_variables)
        if variable and option.option_strings:
            flags[variable] = option.option_strings[0]
    return flags


def _default(value: object) -> str:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value is None or value == () or str(value) == "":
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _rows(settings: type[BaseModel], *commands: dict[str, str]) -> list[str]:
    rows = []
    for field in settings.model_fields.values():
        variable, _, meaning = (field.description or "").partition(": ")
        cells = [f"`{flags[variable]}`" if variable in flags else "" for flags in commands]
        rows.append(
            f"| `{variable}` | {' | '.join(cells)} | `{_default(field.default)}` | {meaning} |"
        )
    return rows


def render_reference() -> str:
    """The whole reference, as Markdown."""
    work, worker = command_flags("work"), command_flags("worker")
    header = (
        "| variable | `fast-app work` flag | `fast-app worker` flag | default | meaning |\n"
        "|---|---|---|---|---|"
    )
    return "\n".join(
        [
            "# Configuration reference",
            "",
            "Generated from the settings classes by `uv run fast-app config-reference`;",
            "a test fails when this file and the code disagree. Every setting is read from",
            "the environment once per process; invalid values stop the process with a",
            "message naming the variable (exit code 2 for `fast-app` commands).",
            "",
            "## Queue (`fast_app.core.queue.QueueSettings`): publishers and workers",
            "",
            header,
            *_rows(QueueSettings, work, worker),
            "",
            "## Farm (`fast_app.farm.FarmSettings`): worker processes",
            "",
            "List settings are comma-separated: `FARM_IMPORTS=app.jobs,app.reports`.",
            "",
            header,
            *_rows(FarmSettings, work, worker),
            "",
        ]
    )
