"""Job hooks for the farm's tests, added when a worker imports this module (FARM_IMPORTS).

``RecordingHook`` appends each event it sees to the JSON-lines file named by
FARM_TEST_JOB_HOOKS; ``RaisingHook`` raises in every ``after_run``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from fast_app.core.queue.handle import JobOutcome
from fast_app.core.queue.hooks import Hook, JobRun, add_hook


class RecordingHook(Hook):
    def __init__(self, path: str) -> None:
        self.path = path

    def _write(self, event: str, run: JobRun, **extra: Any) -> None:
        line = {
            "event": event,
            "id": run.message_id,
            "function": None if run.envelope is None else run.envelope.function,
            "attempt": None if run.envelope is None else run.envelope.attempt,
            "queue": run.queue,
            "worker_id": run.worker_id,
            **extra,
        }
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(json.dumps(line) + "\n")

    def delivered(self, run: JobRun) -> None:
        self._write("delivered", run)

    def refused(self, run: JobRun, reason: str, description: str) -> None:
        self._write("refused", run, reason=reason)

    def before_run(self, run: JobRun) -> None:
        self._write("before_run", run)

    def after_run(self, run: JobRun, outcome: JobOutcome) -> None:
        self._write("after_run", run, status=outcome.status.value)

    def hard_timeout(self, run: JobRun, description: str) -> None:
        self._write("hard_timeout", run)

    def before_retry(self, run: JobRun, headers: dict[str, str]) -> None:
        self._write("before_retry", run)

    def retried(self, run: JobRun) -> None:
        self._write("retried", run)

    def dead_lettered(self, run: JobRun, reason: str) -> None:
        self._write("dead_lettered", run, reason=reason)

    def cancelled(self, run: JobRun) -> None:
        self._write("cancelled", run)

    def settled(self, run: JobRun) -> None:
        self._write("settled", run)


class RaisingHook(Hook):
    def after_run(self, run: JobRun, outcome: JobOutcome) -> None:
        raise RuntimeError("a broken hook")


add_hook(RaisingHook())
add_hook(RecordingHook(os.environ["FARM_TEST_JOB_HOOKS"]))
