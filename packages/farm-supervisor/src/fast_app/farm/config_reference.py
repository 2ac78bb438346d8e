"""The configuration reference (``docs/configuration.md``), rendered from the settings classes.

``fast-app config-reference`` prints it; a test checks that the committed file matches,
so the reference cannot drift from the code.
"""

from __future__ import annotations

from pydantic import BaseModel, SecretStr

from fast_app.core.queue.settings import QueueSettings
from fast_app.farm.settings import FarmSettings

__all__ = ["WORKER_FLAGS", "render_reference"]

# Settings that `fast-app worker` also takes as flags.
WORKER_FLAGS: dict[str, str] = {
    "FARM_CONCURRENCY": "--concurrency",
    "FARM_THREADS": "--threads",
    "FARM_IMPORTS": "--imports",
    "FARM_ALLOWED_MODULES": "--allowed-modules",
    "FARM_GRACE_PERIOD_S": "--grace-period",
    "FARM_WORKER_ID": "--worker-id",
    "QUEUE_NAME": "--queue",
}


def _default(value: object) -> str:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value is None or value == ():
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _rows(settings: type[BaseModel]) -> list[str]:
    rows = []
    for field in settings.model_fields.values():
        variable, _, meaning = (field.description or "").partition(": ")
        flag = WORKER_FLAGS.get(variable, "")
        flag_cell = f"`{flag}`" if flag else ""
        rows.append(f"| `{variable}` | {flag_cell} | `{_default(field.default)}` | {meaning} |")
    return rows


def render_reference() -> str:
    """The whole reference, as Markdown."""
    header = "| variable | `fast-app worker` flag | default | meaning |\n|---|---|---|---|"
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
            *_rows(QueueSettings),
            "",
            "## Farm (`fast_app.farm.FarmSettings`): worker processes",
            "",
            "List settings are comma-separated: `FARM_IMPORTS=app.jobs,app.reports`.",
            "",
            header,
            *_rows(FarmSettings),
            "",
        ]
    )
