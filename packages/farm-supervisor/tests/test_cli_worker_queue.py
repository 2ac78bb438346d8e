"""fast-app worker --queue NAME: the queue this worker consumes (FARM_WORKER_QUEUE)."""

from __future__ import annotations

import os
import subprocess
import sys

import aio_pika
import farm_jobs
from farm_testkit import SUPPORT, Farm, WorkerProcess, wait_until

from fast_app.core.queue import queue


async def consumers_of(farm: Farm, name: str) -> int:
    connection = await aio_pika.connect(farm.url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(name, passive=True)
        return declared.declaration_result.consumer_count or 0
    finally:
        await connection.close()


async def test_worker_queue_consumes_that_queue_and_leaves_queue_name_alone(farm: Farm) -> None:
    # Given a worker started with --queue reports (QUEUE_NAME stays the farm's default).
    reports = f"{farm.queue_name}.reports"
    log_path = farm.tmp_path / "worker-reports.log"
    environment = {
        **os.environ,
        "RABBITMQ_URL": farm.url,
        "QUEUE_NAME": farm.queue_name,
        "FARM_ALLOWED_MODULES": "farm_jobs",
        "PYTHONPATH": os.pathsep.join([str(SUPPORT), os.environ.get("PYTHONPATH", "")]),
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "fast_app.farm", "worker", "--queue", reports],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=farm.tmp_path,
        )
    worker = WorkerProcess(process, log_path)
    farm.workers.append(worker)  # stopped by the fixture
    await worker.wait_consuming()
    assert f"consuming {reports}" in worker.log()

    # When jobs go to both queues.
    await queue(farm_jobs.record_queue, str(farm.results), "report", __queue=reports)
    await queue(farm_jobs.record_queue, str(farm.results), "default")

    # Then it runs the one in its queue, and nothing consumes QUEUE_NAME.
    await wait_until(lambda: farm.tags("ran") == ["report"], message="the report job")
    [ran] = farm.events("ran")
    assert ran["queue"] == reports
    assert await consumers_of(farm, reports) == 1
    assert await consumers_of(farm, farm.queue_name) == 0
    assert await farm.queue_depth(farm.queue_name) == 1
