"""The broker down or restarting: queue() raises within its bound, and never loses a returned job."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import farm_jobs
import pytest
from farm_testkit import Farm, wait_until

from fast_app.core.queue import QueueConfigurationError, QueueUnavailableError, configure, queue
from fast_app.core.queue import close as close_queue
from fast_app.core.queue.amqp import headers as h
from fast_app.core.queue.testing.rabbitmq import RabbitMQNode, rabbitmq_node


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_broker_down_raises_a_clear_error_within_the_bound() -> None:
    port = _closed_port()
    configure(
        driver="async_farm",
        rabbitmq_url=f"amqp://app:hunter2@127.0.0.1:{port}/",
        connect_timeout_s=1,
    )
    started = time.monotonic()

    with pytest.raises(QueueUnavailableError) as raised:
        await queue(farm_jobs.record, "unused", "never")

    assert time.monotonic() - started < 1.5
    message = str(raised.value)
    assert f"amqp://app:***@127.0.0.1:{port}/" in message
    assert "hunter2" not in message
    await close_queue()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never says a word (a hung broker)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield int(server.getsockname()[1])
    finally:
        server.close()


async def test_a_hung_broker_cannot_make_queue_hang(silent_server: int) -> None:
    configure(
        driver="async_farm",
        rabbitmq_url=f"amqp://guest:guest@127.0.0.1:{silent_server}/",
        connect_timeout_s=0.5,
    )
    started = time.monotonic()

    with pytest.raises(QueueUnavailableError, match=r"within 0.5s \(QUEUE_CONNECT_TIMEOUT_S\)"):
        await queue(farm_jobs.record, "unused", "never")

    assert time.monotonic() - started < 1.5
    await close_queue()


@pytest.fixture
def own_node() -> Iterator[RabbitMQNode]:
    """A private node of this test's own, which it may stop and start."""
    with rabbitmq_node() as node:
        yield node


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_broker_restart_while_5000_jobs_are_enqueued_loses_no_returned_job(
    own_node: RabbitMQNode, farm_queue_name: str, tmp_path: Path
) -> None:
    configure(
        driver="async_farm", rabbitmq_url=own_node.url, name=farm_queue_name, connect_timeout_s=2
    )
    results = str(tmp_path / "results.jsonl")
    returned = 0

    async def enqueue(number: int) -> bool:
        nonlocal returned
        try:
            await queue(farm_jobs.record, results, f"job-{number}")
        except QueueUnavailableError:
            return False
        returned += 1
        return True

    async def restart_when_busy() -> None:
        await wait_until(lambda: returned >= 1000, timeout=60, message="1000 confirmed jobs")
        await asyncio.to_thread(own_node.stop_broker, graceful=False)  # a crash, not a shutdown
        await asyncio.to_thread(own_node.start_broker)

    restarter = asyncio.create_task(restart_when_busy())
    calls = []
    for number in range(5000):  # a steady ~500/s stream, so that the restart falls in its middle
        calls.append(asyncio.create_task(enqueue(number)))
        if number % 25 == 24:
            await asyncio.sleep(0.05)
    outcomes = await asyncio.gather(*calls)
    await restarter
    await close_queue()

    stored = {f"job-{n}" for n, ok in enumerate(outcomes) if ok}
    assert 1000 <= len(stored) < 5000, "the restart should fall in the middle of the stream"
    first_failure = outcomes.index(False)
    assert any(outcomes[first_failure:]), "the publisher reconnects after the restart"
    farm = Farm(own_node.url, farm_queue_name, Path(results), tmp_path)
    worker = await farm.start_worker(FARM_CONCURRENCY="64")
    try:
        await wait_until(
            lambda: stored <= set(farm.tags("ran")), timeout=90, message="every confirmed job"
        )
    finally:
        worker.process.kill()
        worker.process.wait(10)
    ran = collections.Counter(farm.tags("ran"))
    assert stored <= set(ran)
    print(f"confirmed {len(stored)} of 5000, raised {5000 - len(stored)}, ran {len(ran)}")


@pytest.fixture
def strict_node() -> Iterator[RabbitMQNode]:
    """A private node whose consumer_timeout is one second."""
    with rabbitmq_node(consumer_timeout_ms=1000) as node:
        yield node


@pytest.mark.slow
async def test_a_job_outliving_consumer_timeout_is_reported_and_the_worker_recovers(
    strict_node: RabbitMQNode, farm_queue_name: str, tmp_path: Path
) -> None:
    configure(
        driver="async_farm",
        rabbitmq_url=strict_node.url,
        name=farm_queue_name,
        queue_type="classic",
    )
    farm = Farm(strict_node.url, farm_queue_name, tmp_path / "results.jsonl", tmp_path)
    worker = await farm.start_worker(QUEUE_TYPE="classic")
    try:
        await queue(farm_jobs.sleep_then_record, str(farm.results), "long", 3)
        await wait_until(
            lambda: "past its consumer_timeout" in worker.log(),
            timeout=20,
            message="the timeout report",
        )
        [letter] = await farm.dead_letters(1)
        assert letter.headers[h.DEAD_REASON] == "consumer_timeout"
        await queue(farm_jobs.record, str(farm.results), "next")
        await wait_until(lambda: "next" in farm.tags("ran"), timeout=20, message="the next job")
        assert worker.process.poll() is None
        assert "raise consumer_timeout in rabbitmq.conf" in worker.log()
        assert farm.tags("started") == ["long"]  # cancelled, not run again in a loop
        assert farm.tags("cancelled") == ["long"]
    finally:
        await close_queue()
        worker.process.kill()
        worker.process.wait(10)


async def test_a_burst_longer_than_the_bound_succeeds_while_the_broker_makes_progress(
    farm: Farm, rabbitmq_url: str
) -> None:
    configure(
        driver="async_farm", rabbitmq_url=rabbitmq_url, name=farm.queue_name, connect_timeout_s=1
    )
    # Connected, and the new quorum queue has its leader (a node restarted by an earlier
    # test may take longer than this bound to elect it): the burst is what is measured.
    for _ in range(50):
        with contextlib.suppress(QueueUnavailableError):
            await queue(farm_jobs.record, "unused", "warm-up")
            break
    started = time.monotonic()

    jobs = await asyncio.gather(
        *(queue(farm_jobs.record, "unused", f"job-{n}") for n in range(8000))
    )

    assert time.monotonic() - started > 1  # longer than the bound, yet nothing failed
    assert len({job.id for job in jobs}) == 8000
    assert await farm.queue_depth() >= 8001  # a warm-up that timed out may be stored too


async def test_a_job_the_broker_refuses_raises_instead_of_vanishing(
    farm: Farm, rabbitmq_node_session: RabbitMQNode | None
) -> None:
    if rabbitmq_node_session is None:
        pytest.skip("needs the private node to set a policy (RABBITMQ_URL is set)")
    configure(driver="async_farm", rabbitmq_url=farm.url, name=farm.queue_name, connect_timeout_s=1)
    await queue(farm_jobs.record, "unused", "declares-the-queue")
    # A full queue that rejects publishes: the broker nacks every new message (a nack may
    # be an election's: it is published again until the bound, then raised).
    policy = '{"max-length": 0, "overflow": "reject-publish"}'
    result = rabbitmq_node_session.rabbitmqctl(
        "set_policy",
        "--apply-to",
        "queues",
        f"full-{farm.queue_name}",
        f"^{farm.queue_name}$",
        policy,
    )
    assert result.returncode == 0, result.stderr

    with pytest.raises(QueueUnavailableError, match=r"Nack|Reject"):
        await queue(farm_jobs.record, "unused", "refused")


async def test_a_queue_declared_with_another_delivery_limit_names_the_setting(
    rabbitmq_url: str, farm_queue_name: str
) -> None:
    # Given the jobs queue, declared with a delivery limit of 20.
    configure(driver="async_farm", rabbitmq_url=rabbitmq_url, name=farm_queue_name)
    await queue(farm_jobs.record, "/dev/null", "first")
    await close_queue()

    # When a publisher configured with another limit connects.
    configure(
        driver="async_farm", rabbitmq_url=rabbitmq_url, name=farm_queue_name, delivery_limit=5
    )
    try:
        with pytest.raises(QueueConfigurationError) as raised:
            await queue(farm_jobs.record, "/dev/null", "second")
    finally:
        await close_queue()

    # Then the error says which setting and what to do.
    message = str(raised.value)
    assert "x-delivery-limit differs from what QUEUE_DELIVERY_LIMIT asks for" in message
    assert "use another QUEUE_NAME" in message


async def test_a_retry_the_broker_will_not_store_hands_the_job_back_instead_of_dead_lettering_it(
    farm: Farm, rabbitmq_node_session: RabbitMQNode | None, tmp_path: Path
) -> None:
    if rabbitmq_node_session is None:
        pytest.skip("needs the private node to raise a memory alarm (RABBITMQ_URL is set)")
    # Given a worker running a job that fails once it is told to
    worker = await farm.start_worker(
        QUEUE_RETRY_BASE_S="0.2", QUEUE_RETRY_CAP_S="0.4", QUEUE_CONNECT_TIMEOUT_S="0.5"
    )
    go = tmp_path / "fail-now"
    await queue(
        farm_jobs.flaky_once_file_exists, str(farm.results), "hand-back", 1, str(go), __retries=3
    )
    await wait_until(lambda: farm.tags("started") == ["hand-back"], message="the job to start")

    # When the broker blocks every publisher (a memory alarm) as the job fails: its retry
    # cannot be stored
    async with rabbitmq_node_session.memory_alarm():
        go.touch()
        await wait_until(
            lambda: "its delivery goes back to the queue" in worker.log(),
            timeout=30,
            message="the delivery handed back",
        )

    # Then it was not dead-lettered: its delivery went back and ran again (at least once:
    # a retry the blocked broker stores late runs too)
    await wait_until(lambda: "hand-back" in farm.tags("ran"), message="the job to succeed")
    assert "could not store its retry" in worker.log()
    assert "dead-lettered" not in worker.log()
    assert await farm.queue_depth(f"{farm.queue_name}.dead") == 0


async def test_a_worker_given_a_cluster_consumes_from_the_first_node_that_accepts(
    farm: Farm,
) -> None:
    # Given a worker whose RABBITMQ_URL lists a node that is down before the live one
    down = _closed_port()
    worker = await farm.start_worker(
        RABBITMQ_URL=f"amqp://guest:secret-of-the-down-node@127.0.0.1:{down}/,{farm.url}"
    )

    # When a job is queued, then it runs
    await queue(farm_jobs.record, str(farm.results), "through the live node")
    await wait_until(lambda: farm.tags("ran") == ["through the live node"], message="the job")
    # And the node that was down is named without its password
    assert f"broker node amqp://guest:***@127.0.0.1:{down}/" in worker.log()
    assert "secret-of-the-down-node" not in worker.log()
