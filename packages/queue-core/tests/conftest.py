from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import queue_core_jobs
from queue_core_broker import Broker

from fast_app.core.context import context
from fast_app.core.queue import reset_settings
from fast_app.core.queue.amqp import Publisher, Topology
from fast_app.core.queue.settings import redact_url
from fast_app.core.queue.testing.rabbitmq import RabbitMQNode


@pytest.fixture(autouse=True)
def clean_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with default settings, an empty context and no recorded calls."""
    for name in ("QUEUE_DRIVER", "QUEUE_STRICT", "QUEUE_SYNC_RAISE", "QUEUE_MAX_PAYLOAD_BYTES"):
        monkeypatch.delenv(name, raising=False)
    reset_settings()
    context.clear()
    queue_core_jobs.calls.clear()
    yield
    reset_settings()
    context.clear()


@pytest.fixture
def queue_name(request: pytest.FixtureRequest) -> str:
    """A jobs queue name no other test uses, readable in the broker's queue list."""
    test_name = re.sub(r"[^A-Za-z0-9_]+", "_", request.node.name)[:60]
    return f"test.{test_name}.{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def broker(rabbitmq_url: str, request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    """The test's own connection to the session's broker, named after the test."""
    connected = await Broker.connect(rabbitmq_url, request.node.nodeid)
    try:
        yield connected
    finally:
        await connected.close()


@pytest.fixture
def private_node(rabbitmq_node_session: RabbitMQNode | None) -> RabbitMQNode:
    """The session's private node, for ``rabbitmqctl``; skips with ``RABBITMQ_URL``."""
    if rabbitmq_node_session is None:
        pytest.skip("needs the private test node (RABBITMQ_URL names another broker)")
    return rabbitmq_node_session


@pytest.fixture
async def publisher_for(
    rabbitmq_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[Callable[..., Publisher]]:
    """Make publishers whose connections are named after the test (on the session's
    broker unless told another URL); all are closed when the test ends."""
    made: list[Publisher] = []

    def make(
        topology: Topology,
        *,
        url: str = rabbitmq_url,
        signing_key: bytes | None = None,
        timeout_s: float = 5.0,
    ) -> Publisher:
        publisher = Publisher(
            url,
            redacted_url=redact_url(url),
            topology=topology,
            timeout_s=timeout_s,
            signing_key=signing_key,
            connection_name=f"{request.node.nodeid} (publisher)",
        )
        made.append(publisher)
        return publisher

    try:
        yield make
    finally:
        for publisher in made:
            await publisher.close()
