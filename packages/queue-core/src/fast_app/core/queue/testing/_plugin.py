"""Pytest plugin with the ``queued_jobs`` fixture (registered by the ``pytest11`` entry point)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._recorder import JobRecorder

__all__ = ["queued_jobs"]


@pytest.fixture
def queued_jobs() -> Iterator[JobRecorder]:
    """Record the jobs enqueued by the test instead of running them.

    Example::

        async def test_signup(queued_jobs):
            await signup("ada@example.com")
            job = queued_jobs.assert_enqueued(send_welcome_email, user_id="u1")
            await queued_jobs.run_all()
    """
    recorder = JobRecorder()
    with recorder.capture():
        yield recorder
