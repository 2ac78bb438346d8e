"""Pytest fixtures for tests against a real broker (registered by the ``pytest11`` entry point).

One private RabbitMQ node per test session, started from the installed ``rabbitmq-server``
(or the broker of ``RABBITMQ_URL`` when it is set), and a unique queue name per test.
Without either, broker tests fail (never skip) with a message saying how to install it.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator

import pytest

from fast_app.farm.testing._rabbitmq_node import RabbitMQNode, rabbitmq_node

__all__ = ["farm_queue_name", "rabbitmq_node_session", "rabbitmq_url"]


@pytest.fixture(scope="session")
def rabbitmq_node_session() -> Iterator[RabbitMQNode | None]:
    """The session's private node; ``None`` when ``RABBITMQ_URL`` names a broker to use."""
    if os.environ.get("RABBITMQ_URL"):
        yield None
        return
    with rabbitmq_node() as node:
        yield node


@pytest.fixture(scope="session")
def rabbitmq_url(rabbitmq_node_session: RabbitMQNode | None) -> str:
    """URL of the test broker."""
    if rabbitmq_node_session is None:
        return os.environ["RABBITMQ_URL"]
    return rabbitmq_node_session.url


@pytest.fixture
def farm_queue_name(request: pytest.FixtureRequest) -> str:
    """A jobs queue name no other test uses, readable in the broker's queue list."""
    test_name = re.sub(r"[^A-Za-z0-9_]+", "_", request.node.name)[:60]
    return f"test.{test_name}.{uuid.uuid4().hex[:8]}"
