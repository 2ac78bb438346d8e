"""Bulk enqueue (``queue_many``) against concurrent ``queue()`` and raw aio-pika, in one run.

Run: ``uv run python benchmarks/bulk_enqueue.py [--jobs 20000] [--rounds 3] [--profile]``

On one private broker (``RABBITMQ_URL`` when set, else a node started from the installed
server), one process publishes ``--jobs`` no-op jobs to a quorum queue, confirms on, in
each of these ways, the ways alternating within each round; the queue is purged after
each so that every way starts from an empty queue. Each figure is the median of the
rounds:

- ``queue()``: every call concurrent (``asyncio.gather``), as farm_throughput.py does;
- ``queue_many``: the same jobs in batches of 100, 1,000 and all of them (the default
  window of 1,000 messages per write), then the whole batch with windows of 250 and
  4,000, with a hook that counts the enqueue events, and with an OpenTelemetry SDK
  tracer (one span per job, none exported; ``queue()`` too, for comparison);
- raw aio-pika: the same body bytes, ``default_exchange.publish`` of an ``aio_pika.Message``
  for each, all concurrent, each awaiting its confirm (pipelined confirms).

``--profile`` adds a cProfile of one ``queue_many`` batch: where the client's time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import os
import pstats
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator

import aio_pika
import bench_jobs
from opentelemetry.sdk.trace import TracerProvider

from fast_app.core.queue import close, configure, job_call, queue, queue_many
from fast_app.core.queue.amqp import Topology
from fast_app.core.queue.hooks import Enqueueing, Hook, add_hook, remove_hook
from fast_app.core.queue.telemetry import use_providers
from fast_app.core.queue.testing.rabbitmq import rabbitmq_node
from fast_app.core.queue.worker_side import prepare


@contextlib.contextmanager
def broker() -> Iterator[str]:
    if os.environ.get("RABBITMQ_URL"):
        yield os.environ["RABBITMQ_URL"]
        return
    with rabbitmq_node() as node:
        yield node.url


class CountingHook(Hook):
    """A cheap hook on every enqueue event (what statistics hooks cost)."""

    def __init__(self) -> None:
        self.count = 0

    def before_enqueue(self, call: Enqueueing) -> None:
        self.count += 1

    def job_prepared(self, call: Enqueueing, headers: dict[str, str]) -> None:
        self.count += 1

    def after_enqueue(self, call: Enqueueing, job: object, error: BaseException | None) -> None:
        self.count += 1


async def concurrent_queue(jobs: int) -> None:
    await asyncio.gather(*(queue(bench_jobs.noop) for _ in range(jobs)))


async def bulk(jobs: int, batch: int, window: int = 1000) -> None:
    for start in range(0, jobs, batch):
        result = await queue_many(
            (job_call(bench_jobs.noop) for _ in range(min(batch, jobs - start))), window=window
        )
        if not result.ok:
            raise RuntimeError(f"failures: {result.failures[:3]}")


async def with_hook(jobs: int) -> None:
    hook = CountingHook()
    add_hook(hook)
    try:
        await bulk(jobs, jobs)
    finally:
        remove_hook(hook)
    assert hook.count == 3 * jobs, hook.count


async def traced(way: Callable[[int], Awaitable[None]], jobs: int) -> None:
    provider = TracerProvider()  # spans are made and ended, none exported
    use_providers(tracer_provider=provider)
    try:
        await way(jobs)
    finally:
        use_providers()
        provider.shutdown()


async def raw(
    channel: aio_pika.abc.AbstractChannel, queue_name: str, body: bytes, jobs: int
) -> None:
    await asyncio.gather(
        *(
            channel.default_exchange.publish(
                aio_pika.Message(
                    body,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=uuid.uuid4().hex,
                ),
                routing_key=queue_name,
            )
            for _ in range(jobs)
        )
    )


async def measure(url: str, jobs: int, rounds: int, profile: bool) -> None:
    queue_name = f"bench.bulk.{uuid.uuid4().hex[:6]}"
    configure(
        driver="async_farm",
        rabbitmq_url=url,
        name=queue_name,
        queue_type="quorum",
        connect_timeout_s=60,
    )
    body = prepare(bench_jobs.noop, (), {}, max_payload_bytes=1 << 20, allow_unportable=False).body
    connection = await aio_pika.connect(url)
    channel = await connection.channel(publisher_confirms=True)
    await Topology(queue_name, "quorum", 10).declare(channel)
    declared = await channel.get_queue(queue_name, ensure=False)

    ways: dict[str, Callable[[int], Awaitable[None]]] = {
        "queue(), all concurrent": concurrent_queue,
        "queue_many, batches of 100": lambda n: bulk(n, 100),
        "queue_many, batches of 1,000": lambda n: bulk(n, 1000),
        f"queue_many, one batch of {jobs:,}": lambda n: bulk(n, n),
        "  same, window 250": lambda n: bulk(n, n, 250),
        "  same, window 4,000": lambda n: bulk(n, n, 4000),
        "  same, with a counting hook": with_hook,
        "  same, with OTel tracing (span per job)": lambda n: traced(lambda m: bulk(m, m), n),
        "queue(), all concurrent, with OTel tracing": lambda n: traced(concurrent_queue, n),
        "raw aio-pika, all concurrent": lambda n: raw(channel, queue_name, body, n),
    }
    rates: dict[str, list[float]] = {name: [] for name in ways}
    for way in ways.values():  # warm up: connect, declare, first imports
        await way(200)
        await declared.purge()
    for _round in range(rounds):
        for name, way in ways.items():
            started = time.perf_counter()
            await way(jobs)
            rates[name].append(jobs / (time.perf_counter() - started))
            await declared.purge()

    report(jobs, rounds, {name: statistics.median(values) for name, values in rates.items()})
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        started = time.perf_counter()
        await bulk(jobs, jobs)
        elapsed = time.perf_counter() - started
        profiler.disable()
        await declared.purge()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
        print(
            f"\ncProfile of one queue_many batch of {jobs:,} ({elapsed:.2f} s under the profiler)"
        )
        print(text.getvalue())
    await declared.delete(if_unused=False, if_empty=False)
    await connection.close()
    await close()


def report(jobs: int, rounds: int, rates: dict[str, float]) -> None:
    concurrent = rates["queue(), all concurrent"]
    raw_rate = rates["raw aio-pika, all concurrent"]
    print(f"\n{jobs:,} no-op jobs to a quorum queue, confirms on, median of {rounds} rounds")
    print(f"{'':44}{'jobs/s':>10}{'÷ queue()':>11}{'÷ raw':>8}")
    for name, rate in rates.items():
        print(f"{name:44}{rate:10,.0f}{rate / concurrent:11.2f}{rate / raw_rate:8.2f}")
    best = max(rate for name, rate in rates.items() if name.startswith("queue_many"))
    print(
        f"target: queue_many >= 2x concurrent queue(): "
        f"{'yes' if best >= 2 * concurrent else 'NO'} ({best / concurrent:.2f}x)"
    )


async def main(jobs: int, rounds: int, profile: bool) -> None:
    with broker() as url:
        await measure(url, jobs, rounds, profile)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    options = parser.parse_args()
    asyncio.run(main(options.jobs, options.rounds, options.profile))
