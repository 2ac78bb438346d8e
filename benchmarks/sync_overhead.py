"""Per-call overhead of ``queue()`` on the sync driver, against calling the function directly.

Run: ``uv run python benchmarks/sync_overhead.py [--calls N]``

Both are measured in the same run, for a no-op ``async def`` job with three simple
arguments and two context values; the overhead is validation, encode, decode, type
restoration, context install and running the job in its own task. Plain functions run
in a thread, whose hand-off dominates their overhead; that figure is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from bench_jobs import three_args, three_args_sync

from fast_app.core.context import context
from fast_app.core.queue import queue


async def _per_call_us(call: Callable[[], Awaitable[object]], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        await call()
    return (time.perf_counter() - started) / calls * 1e6


async def _best_of(call: Callable[[], Awaitable[object]], calls: int, rounds: int) -> float:
    await _per_call_us(call, min(calls, 1000))  # warm caches
    return min([await _per_call_us(call, calls) for _ in range(rounds)])


async def main(calls: int, rounds: int) -> None:
    context.set("request_id", "req-0001")
    context.set("user_id", "66f2d3a1")

    async def direct() -> None:
        await three_args("66f2d3a1", 3, 0.5)

    async def queued() -> object:
        return await queue(three_args, "66f2d3a1", 3, 0.5)

    async def direct_thread() -> None:
        await asyncio.to_thread(three_args_sync, "66f2d3a1", 3, 0.5)

    async def queued_thread() -> object:
        return await queue(three_args_sync, "66f2d3a1", 3, 0.5)

    direct_us = await _best_of(direct, calls, rounds)
    queued_us = await _best_of(queued, calls, rounds)
    thread_direct_us = await _best_of(direct_thread, calls // 4, rounds)
    thread_queued_us = await _best_of(queued_thread, calls // 4, rounds)
    samples = [await _per_call_us(queued, calls // 10) for _ in range(10)]

    print(f"calls per round: {calls}, best of {rounds} rounds")
    print(f"{'':34}{'direct':>10}{'queue()':>10}{'overhead':>10}")
    print(
        f"{'async def, 3 args (µs/call)':34}{direct_us:10.2f}{queued_us:10.2f}"
        f"{queued_us - direct_us:10.2f}"
    )
    print(
        f"{'plain def in a thread (µs/call)':34}{thread_direct_us:10.2f}{thread_queued_us:10.2f}"
        f"{thread_queued_us - thread_direct_us:10.2f}"
    )
    print(f"queue() async spread over 10 samples: stdev {statistics.stdev(samples):.2f} µs")
    target = 20.0
    verdict = "within" if queued_us - direct_us <= target else "OVER"
    print(f"target: overhead <= {target:.0f} µs for the async job -> {verdict}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    asyncio.run(main(options.calls, options.rounds))
