"""``fast-app top``: the live dashboard of a running farm (needs fast-app-farm-tui)."""

from __future__ import annotations

import argparse
from typing import Any

from fast_app.farm._logging import configure_logging
from fast_app.farm.cli._common import EXIT_USAGE, broker_unreachable, queue_settings
from fast_app.farm.cli._dashboards import dashboard_entry_point, load_remote

__all__ = ["add_top_parser", "run_top"]


def add_top_parser(commands: Any) -> None:
    """Add ``top`` to the ``fast-app`` parser (run it with ``run_top``)."""
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


def run_top(options: argparse.Namespace) -> int:
    """Run the ``top`` command parsed into ``options``; return the exit code."""
    dashboard = dashboard_entry_point("remote", "top")
    if dashboard is None:
        return EXIT_USAGE
    queue = queue_settings("top", options.queue_name)
    if queue is None:
        return EXIT_USAGE
    configure_logging(options.log_level)
    run_remote = load_remote(dashboard)
    try:
        return run_remote(queue)
    except (OSError, TimeoutError, ConnectionError) as error:
        return broker_unreachable("top", queue, error)
