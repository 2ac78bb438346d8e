"""Pytest fixtures of the farm's tests (registered by the ``pytest11`` entry point).

A unique jobs queue name per test. The broker itself (``rabbitmq_url``, one private
RabbitMQ node per test session) comes from queue-core's ``fast_app_queue`` plugin.
"""

from __future__ import annotations

import re
import uuid

import pytest

__all__ = ["farm_queue_name"]


@pytest.fixture
def farm_queue_name(request: pytest.FixtureRequest) -> str:
    """A jobs queue name no other test uses, readable in the broker's queue list."""
    test_name = re.sub(r"[^A-Za-z0-9_]+", "_", request.node.name)[:60]
    return f"test.{test_name}.{uuid.uuid4().hex[:8]}"
