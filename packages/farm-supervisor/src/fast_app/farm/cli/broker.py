"""``fast-app broker``: a private, throwaway RabbitMQ node in the foreground."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_broker_parser", "run_broker"]


def add_broker_parser(commands: Any) -> None:
    """Add ``broker`` to the ``fast-app`` parser (run it with ``run_broker``)."""
    broker = commands.add_parser(
        "broker",
        help="run a private RabbitMQ node in the foreground (for development)",
        description="Start a throwaway RabbitMQ node from the installed rabbitmq-server.",
    )
    broker.add_argument(
        "--port", type=int, help="AMQP port (default 5672 if free; 0: any free port)"
    )


def run_broker(options: argparse.Namespace) -> int:
    """Run the ``broker`` command parsed into ``options``; return the exit code."""
    from fast_app.core.queue.testing.rabbitmq import main as broker_main

    argv = [] if options.port is None else ["--port", str(options.port)]
    return broker_main(argv, prog="fast-app broker")
