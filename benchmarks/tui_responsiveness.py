"""How responsive the dashboard stays under a large, busy farm.

Run: ``uv run python benchmarks/tui_responsiveness.py [--seconds 15] [--supervisors 1]``

A producer thread plays supervisors of 32 workers each, 16 jobs in flight per worker
(the snapshot lists the 40 oldest, as a supervisor does), at 1,000 jobs/s: each snapshot
has every running job new, counters and rates moving, new ended jobs and lifecycle
events. Snapshots come every ``--interval`` seconds per supervisor (0.2 s: five times the
default heartbeat rate) and go through a JSON round trip on that thread, as ``fast-app
top`` decodes them off the UI loop; ``--log-lines`` output lines a second stand for the
supervisor's and workers' output of ``fast-app work --tui``.

The app runs headless (Textual's pilot) in this process, on each screen in turn. It
measures:

1. UI-loop lag: a probe task on the app's event loop sleeps 10 ms again and again; its
   oversleep is how long a key press would wait at that moment;
2. refresh cost: the time of each dashboard refresh (poll the link, update the model,
   diff the tables), at most 4 a second;
3. key latency: from a key press (``+``) to its command handed to the link.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import threading
import time
from typing import Any

from fast_app.farm_tui import FarmApp, LogLine, StaticFarm
from fast_app.farm_tui.sample import sample_dead_letters, sample_snapshot

WORKERS = 32
JOBS_PER_WORKER = 16
LISTED = 40
JOBS_PER_SECOND = 1000


def busy_snapshot(at: float, supervisor: int, tick: int, started_at: float) -> dict[str, Any]:
    """One supervisor's snapshot under load, capped as the supervisor caps it."""
    snapshot = sample_snapshot(
        at,
        supervisor_id=f"host-{supervisor}-{1000 + supervisor}",
        workers=WORKERS,
        jobs_per_worker=JOBS_PER_WORKER,
        tick=tick,
        ready=5000 + 37 * (tick % 50),
        events=40,
        started_at=started_at,
    )
    jobs = sorted(
        (job["started_at"], index, position)
        for index, worker in enumerate(snapshot["workers"])
        for position, job in enumerate(worker["in_flight"])
    )
    listed = {(index, position) for _, index, position in jobs[:LISTED]}
    for index, worker in enumerate(snapshot["workers"]):
        worker["in_flight"] = [
            job for position, job in enumerate(worker["in_flight"]) if (index, position) in listed
        ]
        worker["counters"]["succeeded"] += JOBS_PER_SECOND * tick // WORKERS
    snapshot["completion_rate"] = float(JOBS_PER_SECOND)
    snapshot["enqueue_rate"] = JOBS_PER_SECOND * (1.0 + 0.1 * (tick % 5))
    snapshot["recent_jobs"]["succeeded"] *= 10
    snapshot["recent_jobs"]["failed"] *= 10
    return json.loads(json.dumps(snapshot))


class FloodFarm(StaticFarm):
    """A ``StaticFarm`` fed by a producer thread."""

    def __init__(self, supervisors: int, interval_s: float, log_lines_per_s: int) -> None:
        super().__init__(dead_letters=sample_dead_letters(time.time(), count=200))
        self._supervisors = supervisors
        self._interval_s = interval_s
        self._log_lines_per_s = log_lines_per_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.produced = 0
        self._pending_lines: list[LogLine] = []
        self.command_sent = asyncio.Event()  # set on the app's loop, where keys act

    def send_command(self, supervisor_id: str, command: dict[str, Any]) -> Any:
        self.command_sent.set()
        return super().send_command(supervisor_id, command)

    def start(self) -> None:
        threading.Thread(target=self._produce, name="producer", daemon=True).start()

    def _produce(self) -> None:
        tick = 0
        started_at = time.time() - 3600
        next_at = time.monotonic()
        lines_per_tick = max(1, round(self._log_lines_per_s * self._interval_s))
        while not self._stop.is_set():
            now = time.time()
            snapshots = [
                busy_snapshot(now, number, tick, started_at) for number in range(self._supervisors)
            ]
            lines = [
                LogLine(now, "output", f"host-0-w{n % WORKERS}", f"line {tick}.{n} " + "x" * 60)
                for n in range(lines_per_tick)
            ]
            with self._lock:
                self.push(*snapshots)
                self._pending_lines.extend(lines)
                self.produced += len(snapshots)
            tick += 1
            next_at += self._interval_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def poll(self) -> Any:
        with self._lock:
            update = super().poll()
            lines, self._pending_lines = self._pending_lines, []
        return type(update)(update.snapshots, lines)

    def close(self) -> None:
        self._stop.set()
        super().close()


def percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return "n/a"
    ordered = sorted(values)
    cuts = statistics.quantiles(ordered, n=100)
    return (
        f"p50 {cuts[49] * 1000:6.1f} ms  p95 {cuts[94] * 1000:6.1f} ms  "
        f"p99 {cuts[98] * 1000:6.1f} ms  max {ordered[-1] * 1000:6.1f} ms  (n={len(values)})"
    )


async def measure(
    screen: str, seconds: float, supervisors: int, interval_s: float, log_lines: int
) -> None:
    link = FloodFarm(supervisors, interval_s, log_lines)
    app = FarmApp(link)
    lags: list[float] = []
    key_latencies: list[float] = []
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press({"overview": "1", "jobs": "2", "dead": "3", "output": "4"}[screen])
        await pilot.pause(1.0)
        app.refresh_durations.clear()
        deadline = time.monotonic() + seconds
        next_key = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - started - 0.01)
            if time.monotonic() >= next_key:
                next_key += 1.0
                link.command_sent.clear()
                pressed = time.perf_counter()
                press = asyncio.create_task(pilot.press("plus"))
                await asyncio.wait_for(link.command_sent.wait(), 10)
                key_latencies.append(time.perf_counter() - pressed)
                await press
        refreshes = list(app.refresh_durations)
    link.close()
    print(f"\n{screen} screen, {seconds:g}s, {link.produced} snapshots received")
    print(f"  UI-loop lag (10 ms probe oversleep): {percentiles(lags)}")
    print(f"  refresh cost:                        {percentiles(refreshes)}")
    print(f"  key press to command sent:           {percentiles(key_latencies)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="per screen")
    parser.add_argument("--supervisors", type=int, default=1)
    parser.add_argument("--interval", type=float, default=0.2, help="s between snapshots")
    parser.add_argument("--log-lines", type=int, default=200, help="output lines per second")
    parser.add_argument("--screens", default="overview,jobs,dead,output")
    options = parser.parse_args()
    print(
        f"{options.supervisors} supervisor(s) x {WORKERS} workers x {JOBS_PER_WORKER} jobs in "
        f"flight, {JOBS_PER_SECOND} jobs/s, a snapshot every {options.interval:g}s each, "
        f"{options.log_lines} output lines/s"
    )
    for screen in options.screens.split(","):
        asyncio.run(
            measure(
                screen, options.seconds, options.supervisors, options.interval, options.log_lines
            )
        )


if __name__ == "__main__":
    main()
