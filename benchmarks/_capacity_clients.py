"""The client processes of benchmarks/cluster_capacity.py: one publisher or one consumer each.

Usage (spawned by the benchmark)::

    python _capacity_clients.py publish raw|fast-app URL QUEUE MESSAGES REPLICAS WINDOW
    python _capacity_clients.py consume URL QUEUE PREFETCH SLOTS_FILE SLOT_INDEX

A publisher connects and sends one warm-up message (so that the connection, channel and,
for fast-app, the driver are open before the clock starts), prints ``ready``, waits for a
``go`` line on stdin, publishes ``MESSAGES`` with publisher confirms, and exits when stdin
closes (the benchmark reads its CPU time first).

The raw publisher keeps at most ``WINDOW`` publishes awaiting their confirms; fast-app's
publishes one ``queue_many`` batch (its own windows of 1,000, at most two unconfirmed).

A raw consumer (fast-app's is a ``fast-app worker``) acknowledges each delivery, at the
prefetch given, noting it in its slot of the shared file (see capacity_jobs.py), until
SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from collections.abc import Awaitable
from pathlib import Path

import aio_pika
import capacity_jobs

from fast_app.core.queue import close as close_queue
from fast_app.core.queue import configure, job_call, queue, queue_many
from fast_app.core.queue.worker_side import prepare


async def _line_from_stdin() -> str:
    return await asyncio.to_thread(sys.stdin.readline)


async def publish_raw(url: str, queue_name: str, messages: int, window: int) -> None:
    # The body of a real no-op job: the same bytes the fast-app publisher sends.
    submission = prepare(
        capacity_jobs.noop, (), {}, max_payload_bytes=1 << 20, allow_unportable=False
    )
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        unconfirmed = asyncio.Semaphore(window)

        async def publish_one() -> None:
            try:
                message = aio_pika.Message(
                    submission.body,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=uuid.uuid4().hex,
                )
                await channel.default_exchange.publish(message, routing_key=queue_name)
            finally:
                unconfirmed.release()

        async def publish(count: int) -> None:
            tasks = []
            for _ in range(count):
                await unconfirmed.acquire()
                tasks.append(asyncio.create_task(publish_one()))
            await asyncio.gather(*tasks)

        await publish(1)
        await timed(publish(messages))
    finally:
        await connection.close()


async def publish_fast_app(url: str, queue_name: str, messages: int, replicas: int) -> None:
    configure(
        driver="async_farm",
        rabbitmq_url=url,
        name=queue_name,
        queue_type="quorum",
        replicas=replicas,
        connect_timeout_s=60,
    )
    try:
        await queue(capacity_jobs.noop)

        async def publish() -> None:
            result = await queue_many(job_call(capacity_jobs.noop) for _ in range(messages))
            result.raise_failures()

        await timed(publish())
    finally:
        await close_queue()


async def timed(publishing: Awaitable[None]) -> None:
    """Say ready, await ``go``, run ``publishing``, then wait for stdin to close."""
    print("ready", flush=True)
    if (await _line_from_stdin()).strip() != "go":
        raise SystemExit("no go")
    await publishing
    await _line_from_stdin()  # EOF: the benchmark has read this process's CPU time


async def consume(url: str, queue_name: str, prefetch: int, tally: capacity_jobs.Tally) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        declared = await channel.get_queue(queue_name, ensure=False)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            tally.note()
            await message.ack()

        await declared.consume(on_message)
        await stop.wait()
    finally:
        await connection.close()


def main(argv: list[str]) -> None:
    role, *rest = argv
    if role == "publish":
        kind, url, queue_name, messages, replicas, window = rest
        if kind == "raw":
            asyncio.run(publish_raw(url, queue_name, int(messages), int(window)))
        else:
            asyncio.run(publish_fast_app(url, queue_name, int(messages), int(replicas)))
    else:
        url, queue_name, prefetch, slots_file, slot_index = rest
        tally = capacity_jobs.Tally(Path(slots_file), int(slot_index))
        asyncio.run(consume(url, queue_name, int(prefetch), tally))


if __name__ == "__main__":
    main(sys.argv[1:])
