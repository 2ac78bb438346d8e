"""Test kit for the farm's tests: worker subprocesses, results, dead letters, polling."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika

SUPPORT = Path(__file__).parent


async def wait_until(
    condition: Callable[[], bool], *, timeout: float = 20, message: str = "condition"
) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(0.02)


@dataclass
class _ChildProcess:
    """A ``fast-app`` subprocess started by a test, its output in a log file."""

    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def send(self, signum: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    async def wait_exit(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while (code := self.process.poll()) is None:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.pid} still running after {timeout}s:\n{self.log()[-4000:]}"
                )
            await asyncio.sleep(0.02)
        return code


@dataclass
class WorkerProcess(_ChildProcess):
    """A ``fast-app worker`` subprocess started by a test."""

    async def wait_consuming(self, timeout: float = 20) -> None:
        await wait_until(
            lambda: "consuming" in self.log() or self.process.poll() is not None,
            timeout=timeout,
            message=f"worker {self.pid} to consume",
        )
        assert self.process.poll() is None, f"worker exited early:\n{self.log()}"


@dataclass
class Farm:
    """What a farm test needs: broker URL, queue name, results file, workers."""

    url: str
    queue_name: str
    results: Path
    tmp_path: Path
    workers: list[WorkerProcess] = field(default_factory=list)
    supervisors: list[SupervisorProcess] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)

    async def start_worker(self, *, wait: bool = True, **env: str) -> WorkerProcess:
        environment = {
            **os.environ,
            "RABBITMQ_URL": self.url,
            "QUEUE_NAME": self.queue_name,
            "FARM_ALLOWED_MODULES": "farm_jobs",
            "FARM_GRACE_PERIOD_S": "10",
            "QUEUE_RETRY_BASE_S": "0.2",
            "QUEUE_RETRY_CAP_S": "1",
            "PYTHONPATH": os.pathsep.join([str(SUPPORT), os.environ.get("PYTHONPATH", "")]),
            **self.environment,
            **env,
        }
        log_path = self.tmp_path / f"worker-{len(self.workers)}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "fast_app.farm", "worker", "--log-level", "INFO"],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.tmp_path,
            )
        worker = WorkerProcess(process, log_path)
        self.workers.append(worker)
        if wait:
            await worker.wait_consuming()
        return worker

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        import farm_jobs

        return [
            e for e in farm_jobs.read_events(self.results) if event is None or e["event"] == event
        ]

    def tags(self, event: str) -> list[str]:
        return [e["tag"] for e in self.events(event)]

    async def dead_letters(
        self, expected: int, timeout: float = 20
    ) -> list[aio_pika.abc.AbstractIncomingMessage]:
        """Wait for ``expected`` dead letters and take them off the dead-letter queue."""
        letters: list[aio_pika.abc.AbstractIncomingMessage] = []
        connection = await aio_pika.connect(self.url)
        try:
            channel = await connection.channel()
            queue = await channel.get_queue(f"{self.queue_name}.dead", ensure=False)
            deadline = time.monotonic() + timeout
            while len(letters) < expected:
                message = await queue.get(no_ack=True, fail=False)
                if message is not None:
                    letters.append(message)
                    continue
                if time.monotonic() > deadline:
                    logs = "\n".join(w.log()[-3000:] for w in self.workers)
                    raise AssertionError(
                        f"{len(letters)} of {expected} dead letters arrived\n{logs}"
                    )
                await asyncio.sleep(0.05)
        finally:
            await connection.close()
        return letters

    async def queue_depth(self, name: str | None = None) -> int:
        connection = await aio_pika.connect(self.url)
        try:
            channel = await connection.channel()
            declared = await channel.declare_queue(name or self.queue_name, passive=True)
            return declared.declaration_result.message_count or 0
        finally:
            await connection.close()


__all__ = [
    "SUPPORT",
    "Farm",
    "SupervisorProcess",
    "WorkerProcess",
    "pid_alive",
    "start_supervisor",
    "wait_until",
]


@dataclass
class SupervisorProcess(_ChildProcess):
    """A ``fast-app work`` subprocess started by a test."""

    def worker_pids(self) -> dict[str, int]:
        """Workers it started, by id, from its log (dead ones included)."""
        import re

        found = re.findall(r"worker (\S+) started \(pid (\d+)\)", self.log())
        return {worker_id: int(pid) for worker_id, pid in found}

    def live_worker_pids(self) -> dict[str, int]:
        return {w: pid for w, pid in self.worker_pids().items() if pid_alive(pid)}

    def replaced(self, pid: int, workers: int) -> bool:
        """Whether ``workers`` workers live and worker ``pid`` is not one of them, read
        at one moment: two reads could see it alive, then dead, with no replacement."""
        live = self.live_worker_pids().values()
        return len(live) == workers and pid not in live


def pid_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return status.rsplit(")", 1)[1].split()[0] != "Z"


async def start_supervisor(farm: Farm, *flags: str, **env: str) -> SupervisorProcess:
    """Start ``fast-app work`` for ``farm`` with fast intervals, plus ``flags`` and ``env``."""
    environment = {
        **os.environ,
        "RABBITMQ_URL": farm.url,
        "QUEUE_NAME": farm.queue_name,
        "FARM_ALLOWED_MODULES": "farm_jobs",
        "FARM_GRACE_PERIOD_S": "10",
        "FARM_HEARTBEAT_INTERVAL_S": "0.2",
        "FARM_SCALE_CHECK_INTERVAL_S": "0.5",
        "QUEUE_RETRY_BASE_S": "0.2",
        "QUEUE_RETRY_CAP_S": "1",
        "PYTHONPATH": os.pathsep.join([str(SUPPORT), os.environ.get("PYTHONPATH", "")]),
        **env,
    }
    log_path = farm.tmp_path / f"supervisor-{len(farm.supervisors)}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "fast_app.farm", "work", *flags],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=farm.tmp_path,
        )
    supervisor = SupervisorProcess(process, log_path)
    farm.supervisors.append(supervisor)
    return supervisor
