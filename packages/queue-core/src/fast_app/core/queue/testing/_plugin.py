"""Pytest plugin of the queue's test kit (registered by the ``pytest11`` entry point).

- ``queued_jobs``: record the jobs a test enqueues instead of running them (a
  ``JobRecorder``; annotate with ``from fast_app.core.queue.testing import JobRecorder``).
- ``rabbitmq_url``: a real broker for the whole session: a private RabbitMQ node started
  from the installed ``rabbitmq-server``, or the broker of ``RABBITMQ_URL`` when it is
  set. Without either, the tests using it fail (never skip) with a message saying how to
  install it. ``rabbitmq_node_session`` is that node (``None`` with ``RABBITMQ_URL``).
- The ``rabbitmq`` marker, for tests that need a broker (``pytest -m "not rabbitmq"``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ._recorder import JobRecorder
from .rabbitmq import RabbitMQNode, rabbitmq_node

__all__ = ["pytest_configure", "queued_jobs", "rabbitmq_node_session", "rabbitmq_url"]


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``rabbitmq`` marker, so that ``--strict-markers`` accepts it."""
    config.addinivalue_line("markers", "rabbitmq: needs a RabbitMQ broker (rabbitmq_url)")


@pytest.fixture
def queued_jobs() -> Iterator[JobRecorder]:
    """Record the jobs enqueued by the test instead of running them.

    Example::

        async def test_signup(queued_jobs: JobRecorder) -> None:
            await signup("ada@example.com")
            job = queued_jobs.assert_enqueued(send_welcome_email, user_id="u1")
            await queued_jobs.run_all()  # with their retries, without waiting
    """
    recorder = JobRecorder()
    with recorder.capture():
        yield recorder


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
