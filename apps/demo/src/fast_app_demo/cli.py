"""The ``demo`` command: ``demo [serve] [--host H] [--port P]`` and ``demo tour [--url U]``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from fast_app.core.queue import QueueConfigurationError
from fast_app.core.queue import get_settings as get_queue_settings
from fast_app_demo import telemetry
from fast_app_demo.errors import DemoConfigurationError
from fast_app_demo.queues import FARM_MAX_WORKERS, current_queues, use_default_routes
from fast_app_demo.settings import get_settings

__all__ = ["banner", "main"]

EXIT_USAGE = 2
_COMMANDS = frozenset({"serve", "tour"})


def banner(host: str, port: int) -> str:
    """What ``demo serve`` prints: where to go, what to try, where jobs run."""
    base = f"http://{host}:{port}"
    queue_settings = get_queue_settings()
    queues = current_queues()
    if queue_settings.driver == "async_farm":
        jobs_run = (
            f"on workers, through RabbitMQ at {queue_settings.redacted_rabbitmq_url}.\n"
            f"  Start them: uv run fast-app work --imports fast_app_demo.jobs \\\n"
            f"                --queues {queues.farm_pools()} --max-workers {FARM_MAX_WORKERS}"
        )
    else:
        jobs_run = (
            "in this process, before each response (driver sync, no broker).\n"
            "  For workers: uv run fast-app broker, then QUEUE_DRIVER=async_farm uv run demo"
        )
    return (
        f"FastApp queue demo on {base}\n"
        f"  API docs:  {base}/docs\n"
        f"  Endpoints: {base}/\n"
        f"  Activity:  {base}/activity   (what jobs did, written to {get_settings().data_dir})\n"
        f"  Try:       curl -X POST {base}/signup -H 'content-type: application/json' "
        f'-d \'{{"email": "ada@example.com"}}\'\n'
        f"  Tour:      uv run demo tour --url {base}   (this server; no --url: in-process)\n"
        f"  Queues:    welcome emails on {queues.emails} (QUEUE_ROUTES), reports on "
        f"{queues.reports} (__queue=), the rest on {queues.default} (QUEUE_NAME)\n"
        f"Jobs run {jobs_run}\n"
    )


def _serve(host: str, port: int) -> int:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    telemetry.configure_telemetry(telemetry.API_SERVICE)
    from fast_app_demo.app import create_app  # after telemetry: see fast_app_demo.jobs

    print(banner(host, port), flush=True)
    uvicorn.run(create_app(), host=host, port=port, log_level="info")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="demo", description="FastApp's demo: a web API whose endpoints queue jobs."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the API (the default command)")
    serve.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    serve.add_argument("--port", type=int, default=8000, help="default 8000")
    tour = commands.add_parser(
        "tour", help="call each endpoint, show what each job did, exit 0 if all went well"
    )
    tour.add_argument(
        "--url", help="tour a running demo (e.g. http://127.0.0.1:8000); default: in-process"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``demo`` console script."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or arguments[0] not in _COMMANDS | {"-h", "--help"}:
        arguments.insert(0, "serve")  # `demo` and `demo --port 9000` serve
    options = _parser().parse_args(arguments)
    try:
        use_default_routes()  # before any queue(): the demo's QUEUE_ROUTES, unless set
        if options.command == "tour":
            from fast_app_demo.tour import run_tour

            return asyncio.run(run_tour(options.url))
        return _serve(options.host, options.port)
    except (DemoConfigurationError, QueueConfigurationError) as error:
        print(f"demo: {error}", file=sys.stderr)
        return EXIT_USAGE
