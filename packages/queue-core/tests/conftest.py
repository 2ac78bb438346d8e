from __future__ import annotations

from collections.abc import Iterator

import pytest
import queue_core_jobs

from fast_app.core.context import context
from fast_app.core.queue import reset_settings


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
