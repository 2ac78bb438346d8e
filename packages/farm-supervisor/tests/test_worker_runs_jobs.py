"""Jobs published with QUEUE_DRIVER=async_farm run on a worker process, each exactly once."""

from __future__ import annotations

import asyncio
import collections
import time

import aio_pika
import farm_jobs
from farm_testkit import Farm, wait_until

from fast_app.core.context import context
from fast_app.core.queue import queue
from fast_app.core.queue.amqp import headers as h


async def test_a_job_runs_on_a_worker_with_its_context(farm: Farm) -> None:
    await farm.start_worker()
    context.set("request_id", "req-1")

    job = await queue(farm_jobs.record, str(farm.results), "one")

    assert job.driver == "async_farm"
    assert job.outcome is None
    await wait_until(lambda: farm.tags("ran") == ["one"], message="the job to run")
    [ran] = farm.events("ran")
    assert ran["context"] == {"request_id": "req-1"}
    assert ran["pid"] == farm.workers[0].pid


async def test_plain_functions_run_in_the_worker_s_thread_pool(farm: Farm) -> None:
    await farm.start_worker()

    await queue(farm_jobs.record_in_thread, str(farm.results), "threaded")

    await wait_until(lambda: farm.tags("ran") == ["threaded"], message="the job to run")


async def test_a_thousand_concurrent_jobs_run_exactly_once_with_their_own_context(
    farm: Farm,
) -> None:
    await farm.start_worker(FARM_CONCURRENCY="32")
    results = str(farm.results)

    async def enqueue(number: int) -> str:
        context.set("user_id", f"user-{number}")
        job = await queue(farm_jobs.record, results, f"job-{number}")
        return job.id

    ids = await asyncio.gather(*(enqueue(n) for n in range(1000)))

    assert len(set(ids)) == 1000
    await wait_until(lambda: len(farm.events("ran")) >= 1000, timeout=60, message="1000 jobs")
    await asyncio.sleep(0.3)  # would any job run twice, its second run lands by now
    runs = collections.Counter(farm.tags("ran"))
    assert len(runs) == 1000
    assert set(runs.values()) == {1}
    for event in farm.events("ran"):
        assert event["context"] == {"user_id": event["tag"].replace("job", "user")}


async def test_messages_are_persistent_with_job_id_type_and_timeouts(farm: Farm) -> None:
    job = await queue(
        farm_jobs.record, str(farm.results), "props", __soft_timeout_s=5, __hard_timeout_s=9
    )

    connection = await aio_pika.connect(farm.url)
    try:
        channel = await connection.channel()
        jobs_queue = await channel.get_queue(farm.queue_name, ensure=False)
        message = await jobs_queue.get(no_ack=True)
    finally:
        await connection.close()
    assert message.message_id == job.id
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.content_type is not None and message.content_type.startswith(
        "application/vnd.fast-app.job+json"
    )
    assert message.type == "farm_jobs.record"
    assert message.timestamp is not None
    assert message.headers[h.SOFT_TIMEOUT] == 5.0
    assert message.headers[h.HARD_TIMEOUT] == 9.0
    assert h.ATTEMPT not in message.headers  # only retries say their attempt


async def test_the_jobs_queue_is_a_durable_quorum_queue_with_a_delivery_limit(farm: Farm) -> None:
    await queue(farm_jobs.record, str(farm.results), "declare")

    connection = await aio_pika.connect(farm.url)
    try:
        channel = await connection.channel()
        # Redeclaring with the same arguments succeeds; a classic declaration would fail.
        await channel.declare_queue(
            farm.queue_name,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": 10,
                "x-dead-letter-exchange": f"{farm.queue_name}.dlx",
                "x-dead-letter-routing-key": farm.queue_name,
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )
    finally:
        await connection.close()


async def test_delayed_jobs_start_no_earlier_than_asked(farm: Farm) -> None:
    await farm.start_worker()
    results = str(farm.results)
    enqueued = time.time()

    await queue(farm_jobs.record, results, "later", __delay_s=1.5)
    await queue(farm_jobs.record, results, "soon", __delay_s=0.3)
    await queue(farm_jobs.record, results, "now")

    await wait_until(lambda: len(farm.events("ran")) == 3, message="three jobs")
    started = {e["tag"]: e["at"] - enqueued for e in farm.events("ran")}
    assert farm.tags("ran") == ["now", "soon", "later"]
    assert started["soon"] >= 0.3
    assert started["later"] >= 1.5
    assert started["later"] < 4
