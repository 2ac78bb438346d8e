"""``fast-app broker``: a private RabbitMQ node, or cluster, in the foreground, for
development."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_broker_parser", "run_broker"]

_MAX_NODES = 9  # as many as RabbitMQCluster takes


def _node_count(text: str) -> int:
    """``--nodes``: a whole number from 1 to 9 (each node is an Erlang VM of ~150 MB)."""
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if not 1 <= count <= _MAX_NODES:
        raise argparse.ArgumentTypeError(f"must be 1 to {_MAX_NODES}, not {count}")
    return count


def add_broker_parser(commands: Any) -> None:
    """Add ``broker`` to the ``fast-app`` parser (run it with ``run_broker``)."""
    broker = commands.add_parser(
        "broker",
        help="run a private RabbitMQ node or cluster in the foreground (for development)",
        description=(
            "Start a private RabbitMQ node from the installed rabbitmq-server and print its "
            "URL. Its data (queued jobs, dead letters) is thrown away when it stops, unless "
            "--data-dir keeps it. With --nodes N, start N nodes clustered instead (quorum "
            "queues get a replica on each) and print the comma-separated URL of their nodes "
            "to export as RABBITMQ_URL; each node's name and URL go to stderr. Ctrl-C or "
            "SIGTERM stops every node."
        ),
    )
    broker.add_argument(
        "--nodes",
        type=_node_count,
        default=1,
        metavar="N",
        help="how many nodes, clustered (default 1; a cluster keeps no data across runs)",
    )
    broker.add_argument(
        "--port",
        type=int,
        help=(
            "AMQP port (default 5672 if free; 0: any free port); with --nodes, the first "
            "node's, the next nodes taking the following ports where free"
        ),
    )
    broker.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help=(
            "keep the node's queues and messages in DIR: a node started again on it finds "
            "them (default: a temporary directory, deleted when the node stops); one node only"
        ),
    )


def run_broker(options: argparse.Namespace) -> int:
    """Run the ``broker`` command parsed into ``options``; return the exit code."""
    port = [] if options.port is None else ["--port", str(options.port)]
    if options.nodes > 1:
        if options.data_dir is not None:
            print(
                "fast-app broker: --data-dir keeps the data of one node; "
                "it cannot be used with --nodes",
                file=sys.stderr,
            )
            return 2
        from fast_app.core.queue.testing.rabbitmq_cluster import main as cluster_main

        return cluster_main(["--nodes", str(options.nodes), *port], prog="fast-app broker")

    from fast_app.core.queue.testing.rabbitmq import main as broker_main

    argv = port
    if options.data_dir is not None:
        argv += ["--data-dir", str(options.data_dir)]
    return broker_main(argv, prog="fast-app broker")
