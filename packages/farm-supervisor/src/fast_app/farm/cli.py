"""The ``fast-app`` command: ``work`` (the supervisor), ``worker``, ``status``, ``top``..."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fast_app.core.queue.amqp import guard_table_depth
from fast_app.core.queue.errors import QueueConfigurationError
from fast_app.core.queue.settings import QueueSettings, configure, get_settings
from fast_app.farm._logging import configure_logging
from fast_app.farm.dead_letters import add_dlq_parser, run_dlq
from fast_app.farm.errors import FarmConfigurationError
from fast_app.farm.settings import FarmSettings, load_farm_settings

__all__ = ["build_parser", "main"]

EXIT_USAGE = 2


def _worker_parser(commands: Any) -> None:
    worker = commands.add_parser(
        "worker",
        help="run one worker process (the supervisor normally spawns these)",
        description=(
            "Consume jobs from RabbitMQ and run them. Flags override FARM_* / QUEUE_* variables."
        ),
    )
    worker.add_argument("--concurrency", type=int, help="jobs run at once (FARM_CONCURRENCY)")
    worker.add_argument(
        "--threads", type=int, help="thread pool for plain functions (FARM_THREADS)"
    )
    worker.add_argument("--imports", help="comma-separated modules to import (FARM_IMPORTS)")
    worker.add_argument(
        "--allowed-modules", help="comma-separated module prefixes (FARM_ALLOWED_MODULES)"
    )
    worker.add_argument(
        "--grace-period", type=float, dest="grace_period_s", help="seconds (FARM_GRACE_PERIOD_S)"
    )
    worker.add_argument("--worker-id", help="name in logs and dead letters (FARM_WORKER_ID)")
    worker.add_argument("--queue", dest="queue_name", help="jobs queue (QUEUE_NAME)")
    worker.add_argument(
        "--log-level", default="INFO", help="DEBUG, INFO, WARNING... (default INFO)"
    )


def _load_settings(
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


def _queue_settings(command: str, queue_name: str | None) -> QueueSettings | None:
    """Queue settings from the environment and ``--queue``; ``None`` after saying why."""
    try:
        return configure(name=queue_name) if queue_name else get_settings()
    except QueueConfigurationError as error:
        print(f"fast-app {command}: {error}", file=sys.stderr)
        return None


def _broker_unreachable(command: str, queue: QueueSettings, error: BaseException) -> int:
    print(
        f"fast-app {command}: cannot reach the broker at {queue.redacted_rabbitmq_url}: "
        f"{type(error).__name__}",
        file=sys.stderr,
    )
    return EXIT_USAGE


def _run_worker(options: argparse.Namespace) -> int:
    from fast_app.farm.worker import Worker

    farm_overrides = {
        name: getattr(options, name)
        for name in (
            "concurrency",
            "threads",
            "imports",
            "allowed_modules",
            "grace_period_s",
            "worker_id",
        )
        if getattr(options, name) is not None
    }
    loaded = _load_settings("worker", options.queue_name, farm_overrides)
    if loaded is None:
        return EXIT_USAGE
    farm, queue = loaded
    configure_logging(options.log_level, json_lines=farm.json_logs)
    if not _set_up_telemetry("worker", farm.otel_sdk):
        return EXIT_USAGE
    return asyncio.run(Worker(farm, queue).run())


def _set_up_telemetry(command: str, from_environment: bool) -> bool:
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


_WORK_FLAGS = (
    ("--min-workers", "min_workers", int),
    ("--max-workers", "max_workers", int),
    ("--concurrency", "concurrency", int),
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
)


def _work_parser(commands: Any) -> None:
    work = commands.add_parser(
        "work",
        help="run the supervisor: worker processes, scaled by queue depth",
        description="Run and scale worker processes. Flags override FARM_* / QUEUE_* variables.",
    )
    for flag, name, kind in _WORK_FLAGS:
        work.add_argument(flag, dest=name, type=kind, help=f"FARM_{name.upper()}")
    work.add_argument("--queue", dest="queue_name", help="jobs queue (QUEUE_NAME)")
    work.add_argument(
        "--json-logs", action="store_true", default=None, help="JSON lines (FARM_JSON_LOGS)"
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


def _dashboard_missing(command: str) -> bool:
    """Whether fast-app-farm-tui is missing; if so, say how to install it."""
    # Found, not imported: the dashboard depends on this package, not the other way.
    if importlib.util.find_spec("fast_app.farm_tui") is not None:
        return False
    print(
        f"fast-app {command} needs the dashboard: pip install fast-app-farm-tui "
        "(in this repository: uv sync --all-packages)",
        file=sys.stderr,
    )
    return True


def _run_supervisor(options: argparse.Namespace) -> int:
    from fast_app.farm.supervisor import Supervisor

    if options.tui and _dashboard_missing("work --tui"):
        return EXIT_USAGE
    overrides = {
        name: getattr(options, name)
        for _, name, _ in _WORK_FLAGS
        if getattr(options, name) is not None
    }
    if options.json_logs:
        overrides["json_logs"] = True
    loaded = _load_settings("work", options.queue_name, overrides)
    if loaded is None:
        return EXIT_USAGE
    farm, queue = loaded
    configure_logging(options.log_level, json_lines=farm.json_logs)
    if not _set_up_telemetry("work", farm.otel_sdk):
        return EXIT_USAGE
    try:
        if options.tui:
            from fast_app.farm_tui import run_embedded

            return run_embedded(farm, queue, log_file=options.log_file)
        return asyncio.run(Supervisor(farm, queue).run())
    except (OSError, TimeoutError, ConnectionError) as error:
        return _broker_unreachable("work", queue, error)
    except QueueConfigurationError as error:
        print(f"fast-app work: {error}", file=sys.stderr)
        return EXIT_USAGE


def _run_top(options: argparse.Namespace) -> int:
    if _dashboard_missing("top"):
        return EXIT_USAGE
    queue = _queue_settings("top", options.queue_name)
    if queue is None:
        return EXIT_USAGE
    configure_logging(options.log_level)
    from fast_app.farm_tui import run_remote

    try:
        return run_remote(queue)
    except (OSError, TimeoutError, ConnectionError) as error:
        return _broker_unreachable("top", queue, error)


def _run_status(options: argparse.Namespace) -> int:
    import json

    from fast_app.farm.status import collect_snapshots, render_status

    queue = _queue_settings("status", options.queue_name)
    if queue is None:
        return EXIT_USAGE
    try:
        snapshots = asyncio.run(collect_snapshots(queue, wait_s=options.wait))
    except (OSError, TimeoutError, ConnectionError) as error:
        return _broker_unreachable("status", queue, error)
    if options.json:
        print(json.dumps(snapshots, indent=2, default=str))
    else:
        print(render_status(queue.name, snapshots))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``fast-app`` command line (also read by the configuration reference)."""
    parser = argparse.ArgumentParser(prog="fast-app", description="FastApp's async farm.")
    commands = parser.add_subparsers(dest="command", required=True)
    _work_parser(commands)
    add_dlq_parser(commands)
    _worker_parser(commands)
    status = commands.add_parser("status", help="print the state of the whole farm")
    status.add_argument("--json", action="store_true", help="print the snapshots as JSON")
    status.add_argument("--queue", dest="queue_name", help="jobs queue (QUEUE_NAME)")
    status.add_argument("--wait", type=float, default=2.5, help="seconds to listen (default 2.5)")
    top = commands.add_parser(
        "top",
        help="a live dashboard of a running farm, with its controls (needs fast-app-farm-tui)",
        description=(
            "Attach to the farm of a queue through its broker (RABBITMQ_URL): watch it, "
            "change its limits, drain workers, requeue dead letters. Quitting detaches."
        ),
    )
    top.add_argument("--queue", dest="queue_name", help="jobs queue (QUEUE_NAME)")
    top.add_argument(
        "--log-level", default="WARNING", help="this process's own log (default WARNING)"
    )
    broker = commands.add_parser(
        "broker",
        help="run a private RabbitMQ node in the foreground (for development)",
        description="Start a throwaway RabbitMQ node from the installed rabbitmq-server.",
    )
    broker.add_argument(
        "--port", type=int, help="AMQP port (default 5672 if free; 0: any free port)"
    )
    commands.add_parser("config-reference", help="print the configuration reference (Markdown)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fast-app`` console script."""
    guard_table_depth()
    options = build_parser().parse_args(argv)
    if options.command == "worker":
        return _run_worker(options)
    if options.command == "work":
        return _run_supervisor(options)
    if options.command == "status":
        return _run_status(options)
    if options.command == "top":
        return _run_top(options)
    if options.command == "dlq":
        return run_dlq(options)
    if options.command == "config-reference":
        from fast_app.farm.config_reference import render_reference

        print(render_reference(), end="")
        return 0
    from fast_app.farm.testing._rabbitmq_node import main as broker_main

    return broker_main([] if options.port is None else ["--port", str(options.port)])


if __name__ == "__main__":
    sys.exit(main())
