"""Chaos run: jobs through a supervisor while workers are killed and the broker restarts.

Run the full version (20,000 jobs, a few minutes):

    uv run python packages/farm-supervisor/tests/chaos/farm_chaos.py

It starts a private RabbitMQ node and ``fast-app work --min-workers 1 --max-workers 4``,
enqueues the jobs at a steady pace while it SIGKILLs a random worker every few seconds,
has 1% of jobs raise, some pass their soft and some their hard timeout, and restarts the
broker (a crash) in the middle. At the end every job must be accounted for: succeeded,
or in the dead-letter queue with a reason; no worker process may outlive the supervisor;
and worker memory must stay flat. The test suite runs a shortened version.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika

HERE = Path(__file__).resolve().parent
SUPPORT = HERE.parent / "support"
sys.path.insert(0, str(SUPPORT))

import farm_jobs  # noqa: E402

from fast_app.core.queue import QueueUnavailableError, close, configure, queue  # noqa: E402
from fast_app.core.queue.testing.rabbitmq import RabbitMQNode, rabbitmq_node  # noqa: E402

EXPECTED_REASON = {"fail": "failed", "soft": "soft_timeout", "hard": "hard_timeout"}


@dataclass
class ChaosConfig:
    """What to throw at the farm."""

    jobs: int = 20_000
    enqueue_per_s: float = 1000.0
    kill_every_s: float = 4.0
    fail_ratio: float = 0.01
    soft_ratio: float = 0.01
    hard_jobs: int = 10
    restart_broker: bool = True
    crash_broker: bool = False  # SIGKILL the broker instead of stopping it
    seed: int = 7
    deadline_s: float = 900.0


@dataclass
class ChaosReport:
    """The accounting at the end."""

    enqueued: int = 0
    succeeded: int = 0
    dead: collections.Counter[str] = field(default_factory=collections.Counter)
    wrong_reason: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    ran_more_than_once: int = 0
    enqueue_retries: int = 0
    kills: int = 0
    broker_restarts: int = 0
    workers_started: int = 0
    leaked_pids: list[int] = field(default_factory=list)
    rss_mb: dict[int, tuple[float, float]] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def whole(self) -> bool:
        """Nothing lost, nothing leaked."""
        return (
            not self.lost
            and not self.leaked_pids
            and self.succeeded + sum(self.dead.values()) == self.enqueued
        )

    def render(self) -> str:
        growth = [last - first for first, last in self.rss_mb.values()]
        return "\n".join(
            [
                f"jobs enqueued        {self.enqueued} ({self.enqueue_retries} enqueue calls retried after QueueUnavailableError)",
                f"succeeded            {self.succeeded} ({self.ran_more_than_once} ran more than once: at-least-once)",
                f"dead-lettered        {sum(self.dead.values())} {dict(self.dead)}",
                f"wrong reason         {len(self.wrong_reason)} {self.wrong_reason[:5]}",
                f"LOST                 {len(self.lost)} {self.lost[:10]}",
                f"faults               {self.kills} workers SIGKILLed, {self.broker_restarts} broker restarts",
                f"workers started      {self.workers_started}; leaked after shutdown: {self.leaked_pids}",
                f"worker RSS growth    {max(growth, default=0.0):+.1f} MB at most over {len(growth)} long-lived workers",
                f"elapsed              {self.elapsed_s:.1f}s",
                f"verdict              {'WHOLE: every job accounted for' if self.whole else 'BROKEN'}",
            ]
        )


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _worker_pids(log: Path) -> list[int]:
    return [
        int(pid) for pid in re.findall(r"started \(pid (\d+)\)", log.read_text(errors="replace"))
    ]


async def _dead_letters(url: str, queue_name: str) -> list[tuple[str, str]]:
    """Take every dead letter: (job tag, reason)."""
    taken: list[tuple[str, str]] = []
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        dead = await channel.get_queue(f"{queue_name}.dead", ensure=False)
        while (message := await dead.get(no_ack=True, fail=False)) is not None:
            reason = str((message.headers or {}).get("x-fast-app-dead-reason"))
            if reason == "None":
                reason = "broker:" + str((message.headers or {}).get("x-first-death-reason"))
            try:
                tag = json.loads(message.body)["args"][1]
            except (ValueError, KeyError, IndexError, TypeError):
                tag = "?"
            taken.append((tag, reason))
    finally:
        await connection.close()
    return taken


async def run_chaos(config: ChaosConfig, workdir: Path, log=print) -> ChaosReport:  # type: ignore[no-untyped-def]
    """Run the chaos scenario in ``workdir``; return the accounting."""
    report = ChaosReport()
    started = time.monotonic()
    rng = random.Random(config.seed)
    results = workdir / "results.jsonl"
    queue_name = f"chaos.{os.getpid()}"
    kinds: dict[str, str] = {}
    hard_at = set(rng.sample(range(config.jobs), min(config.hard_jobs, config.jobs)))
    for number in range(config.jobs):
        roll = rng.random()
        kind = (
            "hard"
            if number in hard_at
            else "fail"
            if roll < config.fail_ratio
            else "soft"
            if roll < config.fail_ratio + config.soft_ratio
            else "ok"
        )
        kinds[f"job-{number}"] = kind

    with rabbitmq_node() as node:
        configure(driver="async_farm", rabbitmq_url=node.url, name=queue_name, connect_timeout_s=3)
        supervisor_log = workdir / "supervisor.log"
        environment = {
            **os.environ,
            "RABBITMQ_URL": node.url,
            "QUEUE_NAME": queue_name,
            "FARM_ALLOWED_MODULES": "farm_jobs",
            "FARM_HEARTBEAT_INTERVAL_S": "0.5",
            "FARM_SCALE_COOLDOWN_S": "5",
            "FARM_GRACE_PERIOD_S": "10",
            "PYTHONPATH": os.pathsep.join([str(SUPPORT), os.environ.get("PYTHONPATH", "")]),
        }
        with open(supervisor_log, "wb") as output:
            supervisor = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "fast_app.farm",
                    "work",
                    "--min-workers",
                    "1",
                    "--max-workers",
                    "4",
                ],
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=workdir,
            )
        try:
            deadline = time.monotonic() + 60
            while b"consuming" not in supervisor_log.read_bytes():
                if supervisor.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the supervisor did not start:\n{supervisor_log.read_text()}"
                    )
                await asyncio.sleep(0.1)
            await _run_faults_and_jobs(
                config, report, node, kinds, results, supervisor_log, rng, log
            )
            await _settle(config, report, node.url, queue_name, kinds, results, started, log)
        finally:
            supervisor.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                supervisor.wait(60)
            if supervisor.poll() is None:
                supervisor.kill()
                supervisor.wait(10)
            await close()
            pids = _worker_pids(supervisor_log)
            report.workers_started = len(pids)
            deadline = time.monotonic() + 15
            while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            report.leaked_pids = [pid for pid in pids if _alive(pid)]
            for pid in report.leaked_pids:
                os.kill(pid, signal.SIGKILL)
    report.elapsed_s = time.monotonic() - started
    return report


async def _run_faults_and_jobs(
    config, report, node: RabbitMQNode, kinds, results, supervisor_log, rng, log
) -> None:  # type: ignore[no-untyped-def]
    tags = list(kinds)
    enqueued_half = asyncio.Event()
    done = asyncio.Event()
    rss_first: dict[int, tuple[float, float]] = {}

    async def enqueue(tag: str) -> None:
        kind = kinds[tag]
        while True:
            try:
                if kind == "ok":
                    await queue(
                        farm_jobs.sleep_then_record, str(results), tag, rng.uniform(0.005, 0.03)
                    )
                elif kind == "fail":
                    await queue(farm_jobs.fail, str(results), tag)
                elif kind == "soft":
                    await queue(
                        farm_jobs.sleep_then_record, str(results), tag, 3, __soft_timeout_s=0.2
                    )
                else:
                    await queue(farm_jobs.block_loop, str(results), tag, 20, __hard_timeout_s=0.5)
                report.enqueued += 1
                return
            except QueueUnavailableError:
                report.enqueue_retries += 1  # not stored: try again once the broker is back
                await asyncio.sleep(0.5)

    async def producer() -> None:
        batch = max(1, int(config.enqueue_per_s / 20))
        pending: list[asyncio.Task[None]] = []
        for index in range(0, len(tags), batch):
            pending += [asyncio.create_task(enqueue(tag)) for tag in tags[index : index + batch]]
            if index + batch >= len(tags) // 2:
                enqueued_half.set()
            await asyncio.sleep(0.05)
        await asyncio.gather(*pending)
        log(f"enqueued {report.enqueued} jobs")

    async def killer() -> None:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), config.kill_every_s)
            if done.is_set():
                return
            live = [pid for pid in _worker_pids(supervisor_log) if _alive(pid)]
            if live:
                victim = rng.choice(live)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim, signal.SIGKILL)
                    report.kills += 1

    async def restarter() -> None:
        if not config.restart_broker:
            return
        await enqueued_half.wait()
        log("crashing the broker" if config.crash_broker else "restarting the broker")
        await asyncio.to_thread(node.stop_broker, graceful=not config.crash_broker)
        await asyncio.to_thread(node.start_broker)
        report.broker_restarts += 1
        log("broker back")

    async def memory() -> None:
        while not done.is_set():
            for pid in _worker_pids(supervisor_log):
                rss = _rss_mb(pid)
                if rss is not None:
                    first = rss_first.setdefault(pid, (time.monotonic(), rss))
                    if time.monotonic() - first[0] > 5:
                        report.rss_mb[pid] = (first[1], rss)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 2)

    helpers = [
        asyncio.create_task(killer()),
        asyncio.create_task(restarter()),
        asyncio.create_task(memory()),
    ]
    await producer()
    await helpers[1]
    # Keep killing while the backlog drains, then stop the faults.
    await asyncio.sleep(config.kill_every_s * 2)
    done.set()
    await asyncio.gather(*helpers)


async def _settle(config, report, url, queue_name, kinds, results, started, log) -> None:  # type: ignore[no-untyped-def]
    dead: dict[str, str] = {}
    deadline = started + config.deadline_s
    while True:
        try:
            for tag, reason in await _dead_letters(url, queue_name):
                dead.setdefault(tag, reason)
        except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as error:
            log(f"reading dead letters failed ({type(error).__name__}); trying again")
        finished = collections.Counter(
            farm_jobs.read_events(results)
            and [e["tag"] for e in farm_jobs.read_events(results) if e["event"] == "finished"]
        )
        settled = set(finished) | set(dead)
        missing = [tag for tag in kinds if tag not in settled]
        if not missing or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    report.lost = missing
    report.succeeded = sum(1 for tag in kinds if tag in finished and tag not in dead)
    report.ran_more_than_once = sum(1 for count in finished.values() if count > 1)
    for tag, reason in dead.items():
        report.dead[reason] += 1
        expected = EXPECTED_REASON.get(kinds.get(tag, ""))
        if expected != reason:
            report.wrong_reason.append(f"{tag}:{kinds.get(tag)}:{reason}")


def main() -> int:
    import logging

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)
    logging.getLogger("aio_pika").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--kill-every", type=float, default=4.0)
    parser.add_argument("--no-broker-restart", action="store_true")
    options = parser.parse_args()
    config = ChaosConfig(
        jobs=options.jobs,
        kill_every_s=options.kill_every,
        restart_broker=not options.no_broker_restart,
    )
    with tempfile.TemporaryDirectory() as directory:
        report = asyncio.run(run_chaos(config, Path(directory)))
    print(report.render())
    return 0 if report.whole else 1


if __name__ == "__main__":
    sys.exit(main())
