"""The ``fast-app`` command: one module per command, each adding its parser and running it.

``work`` (the supervisor), ``worker``, ``status``, ``top``, ``dlq``, ``cancel``, ``broker``
and ``config-reference``; ``_common`` holds what they share, ``_dashboards`` finds the
dashboards that fast-app-farm-tui contributes (``work --tui``, ``top``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from fast_app.core.queue.amqp import install_tolerant_decoding
from fast_app.farm.cli.broker import add_broker_parser, run_broker
from fast_app.farm.cli.cancel import add_cancel_parser, run_cancel
from fast_app.farm.cli.config_reference import (
    add_config_reference_parser,
    run_config_reference,
)
from fast_app.farm.cli.dlq import add_dlq_parser, run_dlq
from fast_app.farm.cli.status import add_status_parser, run_status
from fast_app.farm.cli.top import add_top_parser, run_top
from fast_app.farm.cli.work import add_work_parser, run_work
from fast_app.farm.cli.worker import add_worker_parser, run_worker

__all__ = ["build_parser", "main"]

_RUN: dict[str, Callable[[argparse.Namespace], int]] = {
    "work": run_work,
    "dlq": run_dlq,
    "cancel": run_cancel,
    "worker": run_worker,
    "status": run_status,
    "top": run_top,
    "broker": run_broker,
    "config-reference": run_config_reference,
}


def build_parser() -> argparse.ArgumentParser:
    """The ``fast-app`` command line."""
    parser = argparse.ArgumentParser(prog="fast-app", description="FastApp's async farm.")
    commands = parser.add_subparsers(dest="command", required=True)
    add_work_parser(commands)
    add_dlq_parser(commands)
    add_cancel_parser(commands)
    add_worker_parser(commands)
    add_status_parser(commands)
    add_top_parser(commands)
    add_broker_parser(commands)
    add_config_reference_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fast-app`` console script."""
    install_tolerant_decoding()
    options = build_parser().parse_args(argv)
    return _RUN[options.command](options)
