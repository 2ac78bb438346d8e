"""``fast-app worker``: one worker process (the supervisor normally spawns these)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from typing import Any

from fast_app.core.queue.amqp import install_tolerant_decoding
from fast_app.farm._logging import configure_logging
from fast_app.farm.cli._common import EXIT_USAGE, load_settings, set_up_telemetry, setting_help
from fast_app.farm.settings import FarmSettings

__all__ = ["add_worker_parser", "run_worker", "worker_main"]


def add_worker_parser(commands: Any) -> None:
    """Add ``worker`` to the ``fast-app`` parser (run it with ``run_worker``)."""
    worker = commands.add_parser(
        "worker",
        help="run one worker process (the supervisor normally spawns these)",
        description=(
            "Consume the jobs of one queue from RabbitMQ and run them. Flags override "
            "FARM_* variables; QUEUE_NAME (the farm's default queue, whose exchanges carry "
            "the farm's tombstones) comes from the environment."
        ),
    )
    worker.add_argument(
        "--concurrency", type=int, metavar="N", help=setting_help(FarmSettings, "concurrency")
    )
    worker.add_argument(
        "--prefetch", type=int, metavar="N", help=setting_help(FarmSettings, "prefetch")
    )
    worker.add_argument(
        "--threads", type=int, metavar="N", help=setting_help(FarmSettings, "threads")
    )
    worker.add_argument("--imports", help=setting_help(FarmSettings, "imports"))
    worker.add_argument("--allowed-modules", help=setting_help(FarmSettings, "allowed_modules"))
    worker.add_argument(
        "--grace-period",
        type=float,
        metavar="SECONDS",
        dest="grace_period_s",
        help=setting_help(FarmSettings, "grace_period_s"),
    )
    worker.add_argument("--worker-id", help=setting_help(FarmSettings, "worker_id"))
    worker.add_argument(
        "--queue",
        dest="worker_queue",
        metavar="NAME",
        help=(
            "the queue this worker consumes (FARM_WORKER_QUEUE; default: QUEUE_NAME). Not "
            "`fast-app work --queue`, which sets QUEUE_NAME itself"
        ),
    )
    worker.add_argument(
        "--log-level", default="INFO", help="DEBUG, INFO, WARNING... (default INFO)"
    )


def run_worker(options: argparse.Namespace) -> int:
    """Run the ``worker`` command parsed into ``options``; return the exit code."""
    from fast_app.farm.worker import Worker

    farm_overrides = {
        name: getattr(options, name)
        for name in (
            "concurrency",
            "prefetch",
            "threads",
            "imports",
            "allowed_modules",
            "grace_period_s",
            "worker_id",
            "worker_queue",
        )
        if getattr(options, name) is not None
    }
    loaded = load_settings("worker", None, farm_overrides)
    if loaded is None:
        return EXIT_USAGE
    farm, queue = loaded
    configure_logging(options.log_level, json_lines=farm.json_logs)
    if not set_up_telemetry("worker", farm.otel_sdk):
        return EXIT_USAGE
    return asyncio.run(Worker(farm, queue).run())


def worker_main(argv: Sequence[str] = ()) -> int:
    """``fast-app worker`` with ``argv`` after it, as the ``fast-app`` command runs it; the
    exit code.

    Where the worker template's children start: through this module rather than the
    whole ``fast-app`` command, whose ``work`` forks the template (its module would
    otherwise import itself in a circle).
    """
    parser = argparse.ArgumentParser(prog="fast-app")
    add_worker_parser(parser.add_subparsers(dest="command", required=True))
    options = parser.parse_args(["worker", *argv])
    install_tolerant_decoding()
    return run_worker(options)
