"""Job functions used by the benchmarks (a real module, so workers can import them)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


async def three_args(user_id: str, count: int, ratio: float) -> None:
    """A no-op job with three simple arguments."""


def three_args_sync(user_id: str, count: int, ratio: float) -> None:
    """The same, as a plain function (runs in a thread)."""


# -- farm benchmark jobs: each worker keeps its own figures and writes them on shutdown --

_figures: dict[str, Any] = {"count": 0, "first": None, "last": None, "latencies": []}


async def noop() -> None:
    """A no-op job that notes when it ran (for the drain rate)."""
    now = time.time()
    if _figures["first"] is None:
        _figures["first"] = now
    _figures["last"] = now
    _figures["count"] += 1


async def timed(sent_at: float) -> None:
    """Notes how long after ``sent_at`` it started (for the latency)."""
    _figures["latencies"].append(time.time() - sent_at)
    await noop()


def write_figures() -> None:
    """Shutdown hook (FARM_SHUTDOWN=bench_jobs:write_figures): save this worker's figures."""
    directory = Path(os.environ["BENCH_FIGURES_DIR"])
    (directory / f"{os.getpid()}.json").write_text(json.dumps(_figures))
