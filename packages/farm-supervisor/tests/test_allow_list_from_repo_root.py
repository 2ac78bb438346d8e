"""A worker started in the repository root, as the README does, runs only the demo's jobs.

From the root, fast-app's own editable packages (and, through the namespace packages that
the current directory makes of ``apps/`` and ``packages/``, second copies of them) are
importable and live under the current directory; none of them may run as a job.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from farm_testkit import Farm, WorkerProcess, pid_alive, wait_until

from fast_app.core.queue.amqp import headers as h
from fast_app.core.queue.amqp import job_properties
from fast_app.core.queue.envelope import (
    FORMAT_VERSION,
    JobEnvelope,
    JobOptions,
    encode_envelope,
    new_job_id,
)

# The README's worker runs the demo's jobs: farm-supervisor's own CI stage, without the
# demo installed, leaves this to the whole suite.
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("fast_app_demo") is None,
    reason="needs fast-app-demo installed (the whole suite has it)",
)

REPO_ROOT = next(p for p in Path(__file__).resolve().parents if (p / "uv.lock").exists())


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process group, which a job must not be able to signal."""
    process = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        yield process
    finally:
        process.kill()
        process.wait(10)


async def start_worker_in_repo_root(farm: Farm, demo_data: Path) -> WorkerProcess:
    """``FARM_IMPORTS=fast_app_demo.jobs python -m fast_app.farm worker`` in the root."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ("FARM_ALLOWED_MODULES", "PYTHONPATH")
    }
    environment.update(
        RABBITMQ_URL=farm.url,
        QUEUE_NAME=farm.queue_name,
        FARM_IMPORTS="fast_app_demo.jobs",
        DEMO_DATA_DIR=str(demo_data),
        DEMO_TELEMETRY="0",
    )
    log_path = farm.tmp_path / "worker-repo-root.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "fast_app.farm", "worker", "--log-level", "INFO"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )
    worker = WorkerProcess(process, log_path)
    farm.workers.append(worker)  # the farm fixture kills it at the end
    await worker.wait_consuming()
    return worker


async def publish(farm: Farm, function: str, *args: Any) -> str:
    """Publish a valid job envelope naming ``function``, as anyone with access could."""
    envelope = JobEnvelope(
        format=FORMAT_VERSION,
        id=new_job_id(),
        function=function,
        args=list(args),
        kwargs={},
        context={},
        options=JobOptions(),
        enqueued_at=time.time(),
    )
    body = encode_envelope(envelope)
    connection = await aio_pika.connect(farm.url)
    try:
        channel = await connection.channel()
        underlay = await channel.get_underlay_channel()
        await underlay.basic_publish(
            body,
            exchange="",
            routing_key=farm.queue_name,
            properties=job_properties(body, envelope, signing_key=None),
        )
    finally:
        await connection.close()
    return envelope.id


async def test_a_worker_in_the_repository_root_refuses_the_framework_and_installed_code(
    farm: Farm, tmp_path: Path, bystander: subprocess.Popen[bytes]
) -> None:
    # Given a worker started in the repository root with only FARM_IMPORTS set.
    demo_data = tmp_path / "demo"
    worker = await start_worker_in_repo_root(farm, demo_data)
    results = tmp_path / "results.jsonl"

    # When jobs name the framework, the test kit, and demo code outside its jobs module.
    refused = {
        await publish(
            farm, "fast_app.core.queue.testing.rabbitmq._signal_group", bystander.pid, 9
        ): "part of fast_app, the framework",
        await publish(
            farm, "fast_app.farm.worker._app.run_hooks", ["os:abort"]
        ): "part of fast_app, the framework",
        await publish(
            farm, "fast_app_demo.settings.default_data_dir"
        ): "belongs to the installed distribution fast-app-demo",
        await publish(
            farm, "apps.demo.src.fast_app_demo.jobs.make_thumbnail", "copy", "copy"
        ): "belongs to the installed distribution fast-app-demo",
        await publish(farm, "farm_jobs.record", str(results), "kit"): "cannot be found",
        await publish(
            farm, "fast_app.farm.cli.main", ["dlq", "purge", "--yes"]
        ): "part of fast_app, the framework",
    }
    # And then a job of the demo's jobs module, which needs no web app.
    await publish(farm, "fast_app_demo.jobs.make_thumbnail", "image-1", "batch-1")

    # Then the demo's job runs.
    thumbnail = demo_data / "thumbnails" / "batch-1" / "image-1.json"
    await wait_until(
        lambda: thumbnail.exists() or worker.process.poll() is not None,
        timeout=30,
        message="the demo's job to run",
    )
    assert worker.process.poll() is None, f"the worker died:\n{worker.log()[-4000:]}"
    assert thumbnail.exists()
    # And every other job is dead-lettered as not allowed, saying why (and the purge did
    # not run: all of them are still in the dead-letter queue).
    letters = await farm.dead_letters(len(refused), timeout=30)
    assert {letter.message_id for letter in letters} == set(refused)
    for letter in letters:
        assert letter.headers[h.DEAD_REASON] == "not_allowed", letter.type
        assert refused[str(letter.message_id)] in str(letter.headers[h.DEAD_ERROR])
    assert await farm.queue_depth(f"{farm.queue_name}.dead") == 0
    # And nothing they name ran: the worker and the bystander live, no copy ran.
    assert worker.process.poll() is None, worker.log()[-4000:]
    assert pid_alive(worker.pid)
    assert bystander.poll() is None
    assert pid_alive(bystander.pid)
    assert not results.exists()
    assert not (demo_data / "thumbnails" / "copy").exists()
