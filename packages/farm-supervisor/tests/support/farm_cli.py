"""``fast-app`` commands run as an operator runs them, against a test farm's broker."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from farm_testkit import Farm

__all__ = ["run_status", "status_json_until"]


def run_status(farm: Farm, *flags: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``fast-app status`` in a clean environment pointing at the farm's broker."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("QUEUE_", "FARM_", "RABBITMQ_", "ASYNC_FARM_"))
    }
    environment |= {"RABBITMQ_URL": farm.url, "QUEUE_NAME": farm.queue_name, **env}
    return subprocess.run(
        [sys.executable, "-m", "fast_app.farm", "status", *flags],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def status_json_until(
    farm: Farm,
    condition: Callable[[dict[str, Any]], bool],
    *flags: str,
    timeout: float = 30,
    **env: str,
) -> dict[str, Any]:
    """``status --json`` run until ``condition(report)`` holds; that report."""
    deadline = time.monotonic() + timeout
    while True:
        finished = await asyncio.to_thread(run_status, farm, "--json", "--wait", "1", *flags, **env)
        report = json.loads(finished.stdout)
        if condition(report):
            return report
        if time.monotonic() > deadline:
            logs = "\n".join(s.log()[-3000:] for s in farm.supervisors)
            raise AssertionError(f"status never showed it:\n{finished.stdout}\n{logs}")
        await asyncio.sleep(0.2)
