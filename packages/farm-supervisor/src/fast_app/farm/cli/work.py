"""``fast-app work``: the supervisor, its worker processes scaled by queue depth."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from fast_app.core.queue.errors import QueueConfigurationError
from fast_app.core.queue.settings import QueueSettings
from fast_app.farm._logging import configure_logging
from fast_app.farm.cli._common import (
    EXIT_USAGE,
    broker_unreachable,
    load_settings,
    set_up_telemetry,
    setting_help,
)
from fast_app.farm.cli._dashboards import dashboard_entry_point, load_embedded
from fast_app.farm.settings import FarmSettings

__all__ = ["WORK_FLAGS", "add_work_parser", "run_work"]

#: Flag, ``FarmSettings`` field and type of each setting ``work`` takes on its command line.
WORK_FLAGS = (
    ("--min-workers", "min_workers", int),
    ("--max-workers", "max_workers", int),
    ("--queues", "queues", str),
    ("--concurrency", "concurrency", int),
    ("--prefetch", "prefetch", int),
    ("--threads", "threads", int),
    ("--imports", "imports", str),
    ("--allowed-modules", "allowed_modules", str),
    ("--grace-period", "grace_period_s", float),
    ("--heartbeat-interval", "heartbeat_interval_s", float),
    ("--heartbeat-tolerance", "heartbeat_tolerance", int),
    ("--scale-check-interval", "scale_check_interval_s", float),
    ("--cooldown", "scale_cooldown_s", float),
    ("--scale-up-step", "scale_up_step", int),
    ("--scale-down-step", "scale_down_step", int),
    ("--target-drain", "target_drain_s", float),
    ("--supervisor-id", "supervisor_id", str),
    ("--max-startup-failures", "max_startup_failures", int),
    ("--worker-start", "worker_start", str),
)


def add_work_parser(commands: Any) -> None:
    """Add ``work`` to the ``fast-app`` parser (run it with ``run_work``)."""
    work = commands.add_parser(
        "work",
        help="run the supervisor: worker processes, scaled by queue depth",
        description=(
            "Run and scale worker processes. Flags override FARM_* / QUEUE_* variables. "
            "Exit codes: 0 drained cleanly; 1 jobs still ran when the grace period ended "
            "(they return to the queue) or workers were killed; 2 bad settings or the broker "
            "unreachable at start; 3 workers could not start (FARM_MAX_STARTUP_FAILURES in "
            "a row)."
        ),
    )
    for flag, name, kind in WORK_FLAGS:
        work.add_argument(
            flag,
            dest=name,
            type=kind,
            metavar={int: "N", float: "SECONDS"}.get(kind),
            help=setting_help(FarmSettings, name),
        )
    work.add_argument(
        "--queue",
        dest="queue_name",
        help=(
            f"the farm's default jobs queue (QUEUE_NAME, default "
            f"{QueueSettings.model_fields['name'].default}); --queues lists the queues served"
        ),
    )
    work.add_argument(
        "--json-logs",
        action="store_true",
        default=None,
        help=setting_help(FarmSettings, "json_logs"),
    )
    work.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING... (default INFO)")
    work.add_argument(
        "--tui", action="store_true", help="show the live dashboard (needs fast-app-farm-tui)"
    )
    work.add_argument(
        "--log-file",
        type=Path,
        help="with --tui: also append the supervisor's and workers' log lines to this file",
    )


def run_work(options: argparse.Namespace) -> int:
    """Run the ``work`` command parsed into ``options``; return the exit code."""
    from fast_app.farm.supervisor import Supervisor, template_environment
    from fast_app.farm.template import discard_preforked, prefork_template

    dashboard = None
    if options.tui:
        dashboard = dashboard_entry_point("embedded", "work --tui")
        if dashboard is None:
            return EXIT_USAGE
    overrides = {
        name: getattr(options, name)
        for _, name, _ in WORK_FLAGS
        if getattr(options, name) is not None
    }
    if options.json_logs:
        overrides["json_logs"] = True
    loaded = load_settings("work", options.queue_name, overrides)
    if loaded is None:
        return EXIT_USAGE
    farm, queue = loaded
    configure_logging(options.log_level, json_lines=farm.json_logs)
    if farm.worker_start == "template":
        # Here, while this process has no event loop and no thread yet (an OpenTelemetry
        # SDK may start some; the dashboard does): the first template is forked from the
        # supervisor, so that both and the workers share one copy of the imported code.
        # The supervisor's ``WorkerTemplate`` adopts it (the dashboard's reads its output),
        # and would have started one with the same environment (``template_environment``).
        prefork_template(
            imports=farm.imports,
            environment=template_environment(farm, queue),
            captured=dashboard is not None,
        )
    try:
        if not set_up_telemetry("work", farm.otel_sdk):
            return EXIT_USAGE
        if dashboard is not None:
            return load_embedded(dashboard)(farm, queue, log_file=options.log_file)
        return asyncio.run(Supervisor(farm, queue).run())
    except (OSError, TimeoutError, ConnectionError) as error:
        return broker_unreachable("work", queue, error)
    except QueueConfigurationError as error:
        print(f"fast-app work: {error}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        discard_preforked()  # when the supervisor never started its template
