"""``fast-app broker``: a private RabbitMQ node in the foreground, for development."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_broker_parser", "run_broker"]


def add_broker_parser(commands: Any) -> None:
    """Add ``broker`` to the ``fast-app`` parser (run it with ``run_broker``)."""
    broker = commands.add_parser(
        "broker",
        help="run a private RabbitMQ node in the foreground (for development)",
        description=(
            "Start a private RabbitMQ node from the installed rabbitmq-server. Its data "
            "(queued jobs, dead letters) is thrown away when it stops, unless --data-dir "
            "keeps it."
        ),
    )
    broker.add_argument(
        "--port", type=int, help="AMQP port (default 5672 if free; 0: any free port)"
    )
    broker.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help=(
            "keep the node's queues and messages in DIR: a node started again on it finds "
            "them (default: a temporary directory, deleted when the node stops)"
        ),
    )


def run_broker(options: argparse.Namespace) -> int:
    """Run the ``broker`` command parsed into ``options``; return the exit code."""
    from fast_app.core.queue.testing.rabbitmq import main as broker_main

    argv = [] if options.port is None else ["--port", str(options.port)]
    if options.data_dir is not None:
        argv += ["--data-dir", str(options.data_dir)]
    return broker_main(argv, prog="fast-app broker")
