"""Baseline consumer for benchmarks/farm_throughput.py: raw aio-pika, ack each message.

Usage (spawned by the benchmark): python raw_consumer.py URL QUEUE PREFETCH FIGURES_DIR
Writes its figures (count, first, last, latencies) on SIGTERM, like the workers do.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aio_pika


async def main(url: str, queue_name: str, prefetch: int, figures_dir: Path) -> None:
    figures: dict[str, Any] = {"count": 0, "first": None, "last": None, "latencies": []}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    connection = await aio_pika.connect(url)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=prefetch)
    queue = await channel.get_queue(queue_name, ensure=False)

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        now = time.time()
        if message.body.startswith(b'{"sent_at"'):
            figures["latencies"].append(now - json.loads(message.body)["sent_at"])
        if figures["first"] is None:
            figures["first"] = now
        figures["last"] = now
        figures["count"] += 1
        await message.ack()

    await queue.consume(on_message)
    print("consuming", flush=True)
    await stop.wait()
    await connection.close()
    (figures_dir / f"{os.getpid()}.json").write_text(json.dumps(figures))


if __name__ == "__main__":
    url, queue_name, prefetch, figures_dir = sys.argv[1:5]
    asyncio.run(main(url, queue_name, int(prefetch), Path(figures_dir)))
