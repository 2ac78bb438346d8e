"""The ``fast-app`` command: ``worker`` runs one worker, ``broker`` a private dev broker."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import Any

from fast_app.core.queue.errors import QueueConfigurationError
from fast_app.core.queue.settings import configure, get_settings
from fast_app.farm.errors import FarmConfigurationError
from fast_app.farm.settings import load_farm_settings

__all__ = ["main"]

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


def _run_worker(options: argparse.Namespace) -> int:
    from fast_app.farm.worker import Worker

    logging.basicConfig(
        level=options.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
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
    try:
        farm = load_farm_settings(**farm_overrides)
        queue = configure(name=options.queue_name) if options.queue_name else get_settings()
    except (FarmConfigurationError, QueueConfigurationError) as error:
        print(f"fast-app worker: {error}", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(Worker(farm, queue).run())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fast-app`` console script."""
    parser = argparse.ArgumentParser(prog="fast-app", description="FastApp's async farm.")
    commands = parser.add_subparsers(dest="command", required=True)
    _worker_parser(commands)
    broker = commands.add_parser(
        "broker",
        help="run a private RabbitMQ node in the foreground (for development)",
        description="Start a throwaway RabbitMQ node from the installed rabbitmq-server.",
    )
    broker.add_argument(
        "--port", type=int, help="AMQP port (default 5672 if free; 0: any free port)"
    )
    commands.add_parser("config-reference", help="print the configuration reference (Markdown)")
    options = parser.parse_args(argv)
    if options.command == "worker":
        return _run_worker(options)
    if options.command == "config-reference":
        from fast_app.farm.config_reference import render_reference

        print(render_reference(), end="")
        return 0
    from fast_app.farm.testing._rabbitmq_node import main as broker_main

    return broker_main([] if options.port is None else ["--port", str(options.port)])


if __name__ == "__main__":
    sys.exit(main())
