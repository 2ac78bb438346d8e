"""``fast-app broker --data-dir``: a development broker that keeps its queued jobs."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aio_pika
import pytest

pytestmark = pytest.mark.rabbitmq


@contextmanager
def _broker(tmp_path: Path, *flags: str) -> Iterator[tuple[str, Path]]:
    """``fast-app broker`` running; its URL and the file of its stderr. Stopped with Ctrl-C."""
    stderr_path = tmp_path / f"broker-{len(list(tmp_path.glob('broker-*')))}.err"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "fast_app.farm", "broker", "--port", "0", *flags],
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().decode().strip()
        assert url.startswith("amqp://"), stderr_path.read_text()
        yield url, stderr_path
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


async def _publish(url: str, queue_name: str, body: bytes) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(queue_name, durable=True)
        await channel.default_exchange.publish(
            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=queue_name,
        )


async def _take(url: str, queue_name: str) -> bytes | None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue_name, durable=True)
        message = await declared.get(no_ack=True, fail=False)
        return None if message is None else message.body


async def test_a_broker_with_a_data_dir_keeps_its_messages_across_a_restart(
    tmp_path: Path,
) -> None:
    # Given a broker keeping its data in a directory, holding a persistent message
    data_dir = tmp_path / "rabbitmq-data"
    with _broker(tmp_path, "--data-dir", str(data_dir)) as (url, stderr):
        await _publish(url, "kept.jobs", b"a queued job")
        assert f"Its data is kept in {data_dir}" in stderr.read_text()

    # When it is started again on the same directory
    with _broker(tmp_path, "--data-dir", str(data_dir)) as (url, _):
        # Then the message is still there
        assert await _take(url, "kept.jobs") == b"a queued job"


def test_a_broker_without_a_data_dir_says_its_data_is_thrown_away(tmp_path: Path) -> None:
    with _broker(tmp_path) as (_, stderr):
        said = stderr.read_text()

    assert "thrown away when it stops" in said
    assert "--data-dir" in said
