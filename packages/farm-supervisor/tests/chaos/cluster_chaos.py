"""Chaos run on a private 3-node RabbitMQ cluster: jobs through two supervisors while nodes
are killed, restarted in turn, or lost two at a time.

Run the full version (10,000 jobs of 5 ms per scenario, the killed leader back after 20 s):

    uv run python packages/farm-supervisor/tests/chaos/cluster_chaos.py [--scenario all]

It starts its own cluster (``rabbitmq_cluster(nodes=3)``), then for each scenario two
``fast-app work`` supervisors on a queue of its own (``QUEUE_REPLICAS=3``), each given
the nodes in another order so that they connect to different nodes. This process
publishes the jobs at a steady pace, each ``queue()`` a task of its own, and records for
each its tag, its job id, and when it was confirmed or why it raised.

- ``leader_loss``: once half the jobs are confirmed, SIGKILL the node leading the jobs
  queue; start it again ``restart_after_s`` later.
- ``rolling_restart``: stop and start each node in turn, the next once the restarted one
  has rejoined and its replica of the jobs queue is back online.
- ``minority_loss``: stop two nodes of three: ``queue()`` must fail within its bound;
  start one back: ``queue()`` must succeed again, nothing restarted; then the third.

Publishing goes on until the faults are over, so a scenario publishes at least ``jobs``.
The accounting at the end: a job confirmed must have completed or be dead-lettered
(else it is LOST); a job whose ``queue()`` raised is unconfirmed (its outcome unknown);
a job that completed more than once is a duplicate (at-least-once allows it). The test
suite runs shortened versions on one shared cluster (``tests/test_cluster_failover.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import os
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SUPPORT = HERE.parent / "support"
sys.path.insert(0, str(SUPPORT))

import farm_jobs  # noqa: E402
from farm_testkit import (  # noqa: E402
    Farm,
    SupervisorProcess,
    pid_alive,
    start_supervisor,
    wait_until,
)

from fast_app.core.queue import QueueUnavailableError, close, configure, queue  # noqa: E402
from fast_app.core.queue.amqp.connecting import connect_first  # noqa: E402
from fast_app.core.queue.settings import QueueSettings, reset_settings  # noqa: E402
from fast_app.core.queue.testing.rabbitmq_cluster import (  # noqa: E402
    RabbitMQCluster,
    rabbitmq_cluster,
)
from fast_app.farm.dead_letters import list_dead_letters  # noqa: E402

Log = Callable[[str], None]
#: ``queue()`` calls that may fail around a failover: the issue expects publishers to
#: keep succeeding, a handful failing at most while the queue elects a leader.
AT_MOST_A_HANDFUL = 5


@dataclass(frozen=True)
class ClusterChaosConfig:
    """What to throw at the farm (defaults: the full run)."""

    jobs: int = 10_000
    job_s: float = 0.005
    publish_per_s: float = 200.0
    restart_after_s: float = 20.0
    supervisors: int = 2
    workers: int = 2  # per supervisor, fixed (min = max)
    connect_timeout_s: float = 5.0
    #: ``queue()`` must fail within 1.25 times its bound (the watchdog's), plus this.
    unavailable_margin_s: float = 1.0
    settle_timeout_s: float = 300.0


@dataclass
class Enqueue:
    """One ``queue()`` call: its job's tag, and how it ended (monotonic time)."""

    tag: str
    job_id: str | None = None
    confirmed_at: float | None = None
    error: str | None = None


@dataclass
class ClusterChaosReport:
    """The accounting of one scenario; ``lost`` must be empty."""

    scenario: str
    faults: list[str] = field(default_factory=list)
    published: int = 0
    confirmed: int = 0
    completed: int = 0
    duplicates: dict[str, int] = field(default_factory=dict)
    dead_lettered: dict[str, str] = field(default_factory=dict)  # tag: reason
    unconfirmed: dict[str, str] = field(default_factory=dict)  # tag: error
    lost: list[str] = field(default_factory=list)
    longest_confirm_gap_s: float = 0.0
    # leader_loss
    down_s: float | None = None
    completed_while_down: int | None = None
    # rolling_restart: what the jobs queue still holds at the end
    left_ready: int | None = None
    left_unacked: int | None = None
    left_by_passive_declare: int | None = None
    # minority_loss
    unavailable_after_s: list[float] = field(default_factory=list)
    unavailable_bound_s: float | None = None
    unavailable_errors: list[str] = field(default_factory=list)
    accepted_without_majority: int = 0
    recovered_after_s: float | None = None
    failed_while_recovering: int = 0
    # every scenario: the farm's processes
    supervisors_gone: list[int] = field(default_factory=list)
    workers_gone: list[int] = field(default_factory=list)
    workers_started_since_ready: int = 0
    elapsed_s: float = 0.0

    @property
    def drain_per_s_while_down(self) -> float | None:
        """Distinct jobs completed per second while the killed node was down."""
        if self.down_s is None or self.completed_while_down is None or self.down_s <= 0:
            return None
        return self.completed_while_down / self.down_s

    @property
    def processes_intact(self) -> bool:
        """No supervisor or worker ended or was restarted during the scenario."""
        return not (self.supervisors_gone or self.workers_gone or self.workers_started_since_ready)

    @property
    def whole(self) -> bool:
        """Every confirmed job completed or dead-lettered."""
        return not self.lost

    def problems(self) -> list[str]:
        """What the scenario expected and did not get; empty when all went as it should."""
        found = []
        if self.lost:
            found.append(f"{len(self.lost)} confirmed jobs lost")
        if self.scenario != "minority_loss" and len(self.unconfirmed) > AT_MOST_A_HANDFUL:
            found.append(f"{len(self.unconfirmed)} queue() calls failed around the faults")
        if self.scenario == "leader_loss" and not self.completed_while_down:
            found.append("nothing completed while the node was down")
        if self.left_ready or self.left_unacked or self.left_by_passive_declare:
            found.append("jobs left in the queue")
        if self.unavailable_bound_s is not None:
            if self.accepted_without_majority or any(
                took > self.unavailable_bound_s for took in self.unavailable_after_s
            ):
                found.append("queue() did not fail in time without a majority")
            if self.recovered_after_s is None:
                found.append("queue() never succeeded again once the majority was back")
        if not self.processes_intact:
            found.append("supervisors or workers ended or restarted")
        return found

    def render(self) -> str:
        duplicates = ", ".join(f"{tag}x{count}" for tag, count in sorted(self.duplicates.items()))
        unconfirmed = "; ".join(f"{tag}: {error}" for tag, error in self.unconfirmed.items())
        lines = [
            f"== {self.scenario}: {'; '.join(self.faults)}",
            f"published            {self.published} queue() calls",
            f"confirmed            {self.confirmed}",
            f"completed            {self.completed} distinct jobs",
            f"duplicates           {len(self.duplicates)} ran more than once {duplicates}",
            f"dead-lettered        {len(self.dead_lettered)} {self.dead_lettered}",
            f"unconfirmed          {len(self.unconfirmed)} (queue() raised: outcome unknown) "
            f"{unconfirmed[:600]}",
            f"LOST                 {len(self.lost)} (confirmed, neither completed nor "
            f"dead-lettered) {self.lost[:20]}",
            f"longest confirm gap  {self.longest_confirm_gap_s:.2f}s between consecutive "
            "confirmed enqueues",
        ]
        if (rate := self.drain_per_s_while_down) is not None:
            lines.append(
                f"drain while down     {rate:.1f} jobs/s ({self.completed_while_down} "
                f"completed in {self.down_s:.1f}s)"
            )
        if self.left_ready is not None:
            lines.append(
                f"left in the queue    ready {self.left_ready}, unacked {self.left_unacked} "
                f"(passive declare: {self.left_by_passive_declare})"
            )
        if self.unavailable_bound_s is not None:
            took = ", ".join(f"{seconds:.2f}s" for seconds in self.unavailable_after_s)
            lines.append(
                f"minority             queue() raised after {took} (bound "
                f"{self.unavailable_bound_s:.2f}s), accepted {self.accepted_without_majority}: "
                f"{self.unavailable_errors[:1]}"
            )
            recovered = (
                "never"
                if self.recovered_after_s is None
                else f"{self.recovered_after_s:.2f}s after the node was back"
            )
            lines.append(
                f"majority back        queue() succeeded {recovered}, "
                f"{self.failed_while_recovering} calls failed meanwhile"
            )
        lines += [
            f"processes            supervisors ended: {self.supervisors_gone}; workers "
            f"ended: {self.workers_gone}; workers started since ready: "
            f"{self.workers_started_since_ready}",
            f"elapsed              {self.elapsed_s:.1f}s",
            f"verdict              {'; '.join(self.problems()) or 'as expected'}"
            f"{'' if self.whole else ' (BROKEN: confirmed jobs lost)'}",
        ]
        return "\n".join(lines)


class _Publisher:
    """Publishes ``cluster_job``s at a steady pace, each ``queue()`` a task of its own."""

    def __init__(self, results: Path, config: ClusterChaosConfig, scenario: str) -> None:
        self.calls: list[Enqueue] = []
        self._results = str(results)
        self._config = config
        self._scenario = scenario
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def confirmed(self) -> int:
        return sum(1 for call in self.calls if call.confirmed_at is not None)

    async def publish(self, count: int, per_s: float) -> None:
        """Publish ``count`` jobs, ``per_s`` a second, without waiting for their confirms."""
        await self.publish_until(lambda: len(self.calls) >= count, per_s)

    async def publish_until(self, done: Callable[[], bool], per_s: float) -> None:
        """Publish ``per_s`` jobs a second until ``done()``, then await every confirm."""
        started = time.monotonic()
        while not done():
            number = len(self.calls)
            # Paced against the start, so a slow iteration is caught up, not carried over.
            await asyncio.sleep(max(0.0, started + number / per_s - time.monotonic()))
            call = Enqueue(f"{self._scenario}-{number}")
            self.calls.append(call)
            self._tasks.append(asyncio.create_task(self.send(call)))
        await asyncio.gather(*self._tasks)

    async def send(self, call: Enqueue) -> None:
        """Make ``call``'s ``queue()``; record its job id and confirm time, or its error."""
        try:
            job = await queue(farm_jobs.cluster_job, self._results, call.tag, self._config.job_s)
        except QueueUnavailableError as error:
            call.error = f"{type(error).__name__}: {error}"
            return
        call.job_id, call.confirmed_at = job.id, time.monotonic()


@dataclass
class _Run:
    """One scenario's farm: its queue, its supervisors, its publisher."""

    cluster: RabbitMQCluster
    config: ClusterChaosConfig
    settings: QueueSettings
    farm: Farm
    publisher: _Publisher
    report: ClusterChaosReport
    worker_pids: list[int] = field(default_factory=list)
    started_lines: list[int] = field(default_factory=list)

    async def publish_via(self, first: int) -> None:
        """Publish through node ``first`` first, then the next ones (before publishing)."""
        await close()
        urls = self.cluster.urls[first:] + self.cluster.urls[:first]
        self.settings = _configure(",".join(urls), self.settings.name, self.config)

    @property
    def supervisors(self) -> list[SupervisorProcess]:
        return self.farm.supervisors

    def finished_events(self) -> list[dict[str, Any]]:
        return [e for e in farm_jobs.read_events(self.farm.results) if e["event"] == "finished"]

    def check_processes(self) -> None:
        """Record supervisors and workers that ended, and workers started since ready."""
        self.report.supervisors_gone = [s.pid for s in self.supervisors if not pid_alive(s.pid)]
        self.report.workers_gone = [pid for pid in self.worker_pids if not pid_alive(pid)]
        self.report.workers_started_since_ready = sum(
            len(s.worker_pids()) - before
            for s, before in zip(self.supervisors, self.started_lines, strict=True)
        )


@contextlib.asynccontextmanager
async def _farm_run(
    cluster: RabbitMQCluster, config: ClusterChaosConfig, workdir: Path, scenario: str, log: Log
) -> AsyncIterator[_Run]:
    """Supervisors on a fresh queue, each connecting to another node first, all workers
    consuming; this process configured to publish there. Everything ended on exit."""
    started = time.monotonic()
    await _await_whole(cluster)
    queue_name = f"cluster-chaos.{scenario}.{secrets.token_hex(4)}"
    directory = workdir / scenario
    directory.mkdir(parents=True, exist_ok=True)
    settings = _configure(cluster.url, queue_name, config)
    farm = Farm(cluster.url, queue_name, directory / "results.jsonl", directory)
    run = _Run(
        cluster,
        config,
        settings,
        farm,
        _Publisher(farm.results, config, scenario),
        ClusterChaosReport(scenario),
    )
    try:
        workers = str(config.workers)
        for number in range(config.supervisors):
            rotated = cluster.urls[number:] + cluster.urls[:number]
            await start_supervisor(
                farm,
                "--min-workers",
                workers,
                "--max-workers",
                workers,
                RABBITMQ_URL=",".join(rotated),
                QUEUE_REPLICAS=str(len(cluster.urls)),
                FARM_SUPERVISOR_ID=f"{scenario}-{number}",
            )
        await wait_until(
            lambda: all(_consuming(s) >= config.workers for s in farm.supervisors),
            timeout=60,
            message="every worker to consume",
        )
        for supervisor in farm.supervisors:
            run.worker_pids += supervisor.worker_pids().values()
            run.started_lines.append(len(supervisor.worker_pids()))
        log(f"{scenario}: {len(run.worker_pids)} workers consuming {queue_name}")
        yield run
        run.check_processes()
    finally:
        await close()
        reset_settings()
        await _end(farm.supervisors)
        run.report.elapsed_s = time.monotonic() - started


def _configure(url: str, queue_name: str, config: ClusterChaosConfig) -> QueueSettings:
    return configure(
        driver="async_farm",
        rabbitmq_url=url,
        name=queue_name,
        replicas=3,
        connect_timeout_s=config.connect_timeout_s,
    )


def _consuming(supervisor: SupervisorProcess) -> int:
    """How many of its workers said they consume (they log through the supervisor)."""
    if supervisor.process.poll() is not None:
        raise AssertionError(f"supervisor {supervisor.pid} exited:\n{supervisor.log()[-3000:]}")
    return supervisor.log().count("consuming")


async def _end(supervisors: list[SupervisorProcess]) -> None:
    for supervisor in supervisors:
        supervisor.send(signal.SIGTERM)
    for supervisor in supervisors:
        with contextlib.suppress(AssertionError):
            await supervisor.wait_exit(30)
        if supervisor.process.poll() is None:
            supervisor.process.kill()
            supervisor.process.wait(10)
        for pid in supervisor.worker_pids().values():  # only if the supervisor was killed
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# -- the cluster, as rabbitmqctl on a live node sees it ----------------------------------


def _live_node(cluster: RabbitMQCluster) -> int:
    return next(index for index, node in enumerate(cluster.nodes) if node.is_running)


def _queue_row(cluster: RabbitMQCluster, name: str) -> dict[str, Any]:
    """``leader``, ``online``, ``messages_ready`` and ``messages_unacknowledged`` of
    queue ``name``; empty if the node could not say."""
    listed = cluster.rabbitmqctl(
        _live_node(cluster),
        "list_queues",
        "name",
        "leader",
        "online",
        "messages_ready",
        "messages_unacknowledged",
        "--formatter",
        "json",
    )
    with contextlib.suppress(ValueError):
        for row in json.loads(listed.stdout or "[]"):
            if row.get("name") == name:
                return dict(row)
    return {}


async def _leader(cluster: RabbitMQCluster, name: str) -> int:
    deadline = time.monotonic() + 30
    while not (leader := (await asyncio.to_thread(_queue_row, cluster, name)).get("leader")):
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} has no leader")
        await asyncio.sleep(0.5)
    return cluster.index_of(str(leader))


async def _await_online(cluster: RabbitMQCluster, name: str, timeout: float = 60) -> None:
    """Until every node's replica of queue ``name`` is online (caught up and voting)."""
    deadline = time.monotonic() + timeout
    while len((await asyncio.to_thread(_queue_row, cluster, name)).get("online") or []) < len(
        cluster.nodes
    ):
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} replicas not all online after {timeout}s")
        await asyncio.sleep(0.5)


async def _await_whole(cluster: RabbitMQCluster, timeout: float = 60) -> None:
    """Until every node runs and is a running member (a scenario starts from a whole one)."""
    deadline = time.monotonic() + timeout
    for index, node in enumerate(cluster.nodes):
        if not node.is_running:
            await asyncio.to_thread(cluster.start, index, max(1.0, deadline - time.monotonic()))
    while len(await asyncio.to_thread(cluster.running_members, 0)) < len(cluster.nodes):
        if time.monotonic() > deadline:
            raise AssertionError(f"cluster not whole after {timeout}s:\n{cluster.log_tail()}")
        await asyncio.sleep(0.5)


# -- the accounting ----------------------------------------------------------------------


async def _dead_letters(run: _Run) -> dict[str, str]:
    """The scenario's dead letters (through a live node), by tag: their reason."""
    tags_by_id = {call.job_id: call.tag for call in run.publisher.calls if call.job_id}
    letters = await list_dead_letters(run.settings, queues=[run.settings.name])
    dead: dict[str, str] = {}
    for letter in letters:
        tag = tags_by_id.get(letter.job_id or "")
        if tag is None and letter.args and len(letter.args) > 1:
            tag = str(letter.args[1])  # a job whose queue() raised: no id came back
        dead[tag or f"id:{letter.job_id}"] = str(letter.reason)
    return dead


async def _settle(run: _Run) -> None:
    """Wait until every confirmed job completed or is dead-lettered (or the deadline),
    then fill in the report's accounting."""
    calls = run.publisher.calls
    confirmed = {call.tag for call in calls if call.confirmed_at is not None}
    deadline = time.monotonic() + run.config.settle_timeout_s
    dead: dict[str, str] = {}
    progress_at, completed_before = time.monotonic(), -1
    while True:
        finished = {e["tag"] for e in run.finished_events()}
        missing = confirmed - finished
        if not missing:
            break
        if len(finished) != completed_before:
            progress_at, completed_before = time.monotonic(), len(finished)
        elif time.monotonic() - progress_at > 3:
            # Stalled: perhaps the rest were dead-lettered.
            with contextlib.suppress(QueueUnavailableError):
                dead = await _dead_letters(run)
            if missing <= dead.keys():
                break
            progress_at = time.monotonic()
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.25)
    if not dead:
        dead = await _dead_letters(run)
    published = {call.tag for call in calls}
    counts = collections.Counter(e["tag"] for e in run.finished_events() if e["tag"] in published)
    report = run.report
    report.published = len(calls)
    report.confirmed = len(confirmed)
    report.completed = len(counts)
    report.duplicates = {tag: count for tag, count in counts.items() if count > 1}
    report.dead_lettered = dead
    report.unconfirmed = {call.tag: call.error for call in calls if call.error is not None}
    report.lost = sorted(confirmed - counts.keys() - dead.keys(), key=_tag_number)
    confirms = sorted(call.confirmed_at for call in calls if call.confirmed_at is not None)
    report.longest_confirm_gap_s = max(
        (later - earlier for earlier, later in itertools.pairwise(confirms)),
        default=0.0,
    )


def _tag_number(tag: str) -> int:
    return int(tag.rsplit("-", 1)[-1]) if tag.rsplit("-", 1)[-1].isdigit() else -1


# -- the scenarios -----------------------------------------------------------------------


async def leader_loss(
    cluster: RabbitMQCluster, config: ClusterChaosConfig, workdir: Path, log: Log = print
) -> ClusterChaosReport:
    """SIGKILL the jobs queue's leader once half the jobs are confirmed; start it again
    ``restart_after_s`` later. Publishing and consuming go on meanwhile."""
    async with _farm_run(cluster, config, workdir, "leader_loss", log) as run:
        # This process publishes through the leader's node, so that its connection breaks
        # with jobs in flight too.
        publisher_node = await _leader(cluster, run.settings.name)
        await run.publish_via(publisher_node)
        restarted = asyncio.Event()
        publishing = asyncio.create_task(
            run.publisher.publish_until(
                lambda: len(run.publisher.calls) >= config.jobs and restarted.is_set(),
                config.publish_per_s,
            )
        )
        await wait_until(
            lambda: run.publisher.confirmed >= config.jobs // 2 or publishing.done(),
            timeout=config.settle_timeout_s,
            message="half the jobs confirmed",
        )
        leader = await _leader(cluster, run.settings.name)
        if leader != publisher_node:
            run.report.faults.append(f"(the leader moved from node {publisher_node})")
        killed_at = time.time()
        await asyncio.to_thread(cluster.kill, leader)
        log(f"leader_loss: killed {cluster.node_names[leader]}, the jobs queue's leader")
        await asyncio.sleep(config.restart_after_s)  # the outage itself, not a wait for state
        back_at = time.time()
        await asyncio.to_thread(cluster.start, leader)
        restarted.set()
        log(f"leader_loss: {cluster.node_names[leader]} is back")
        run.report.faults.append(
            f"killed the leader {cluster.node_names[leader]} (node {leader}), started it "
            f"{back_at - killed_at:.1f}s later (back in the cluster after "
            f"{time.time() - back_at:.1f}s more)"
        )
        await publishing
        await _settle(run)
        first_finish: dict[str, float] = {}
        for event in run.finished_events():
            first_finish.setdefault(event["tag"], event["at"])
        run.report.down_s = back_at - killed_at
        run.report.completed_while_down = sum(
            1 for at in first_finish.values() if killed_at <= at < back_at
        )
        await _await_online(cluster, run.settings.name)
    return run.report


async def rolling_restart(
    cluster: RabbitMQCluster, config: ClusterChaosConfig, workdir: Path, log: Log = print
) -> ClusterChaosReport:
    """Stop and start each node in turn while jobs are published and consumed; at the end
    nothing is left in the jobs queue, and no supervisor or worker was restarted."""
    async with _farm_run(cluster, config, workdir, "rolling_restart", log) as run:
        restarts_done = asyncio.Event()
        publishing = asyncio.create_task(
            run.publisher.publish_until(
                lambda: len(run.publisher.calls) >= config.jobs and restarts_done.is_set(),
                config.publish_per_s,
            )
        )
        await wait_until(
            lambda: run.publisher.confirmed >= config.jobs // 10 or publishing.done(),
            timeout=60,
            message="a tenth of the jobs confirmed",
        )
        for index in range(len(cluster.nodes)):
            began = time.monotonic()
            await asyncio.to_thread(cluster.stop, index)
            await asyncio.to_thread(cluster.start, index)
            # Stopping the next node before this one's replica caught up would leave the
            # jobs queue without a majority: an operator waits for it too.
            await _await_online(cluster, run.settings.name)
            run.report.faults.append(f"restarted node {index} in {time.monotonic() - began:.1f}s")
            log(f"rolling_restart: node {index} restarted and its replica online")
        restarts_done.set()
        await publishing
        await _settle(run)
        row = await _await_drained(run)
        run.report.left_ready = row.get("messages_ready")
        run.report.left_unacked = row.get("messages_unacknowledged")
        run.report.left_by_passive_declare = await _passive_count(run.settings)
    return run.report


async def _await_drained(run: _Run, timeout: float = 60) -> dict[str, Any]:
    """The jobs queue's row once it holds nothing ready or unacknowledged, or as it is
    after ``timeout`` (the broker's counters lag the acks a little)."""
    deadline = time.monotonic() + timeout
    while True:
        row = await asyncio.to_thread(_queue_row, run.cluster, run.settings.name)
        drained = (row.get("messages_ready"), row.get("messages_unacknowledged")) == (0, 0)
        if drained or time.monotonic() > deadline:
            return row
        await asyncio.sleep(0.5)


async def _passive_count(settings: QueueSettings) -> int:
    connection = await connect_first(
        settings.rabbitmq_urls,
        timeout_s=settings.connect_timeout_s,
        connection_name="cluster chaos passive count",
    )
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(settings.name, passive=True)
        return declared.declaration_result.message_count or 0


async def minority_loss(
    cluster: RabbitMQCluster, config: ClusterChaosConfig, workdir: Path, log: Log = print
) -> ClusterChaosReport:
    """Stop two nodes of three under a consuming farm: ``queue()`` fails within its bound
    and nothing dies; start one back: ``queue()`` succeeds again and every job confirmed
    before completes; then start the third."""
    async with _farm_run(cluster, config, workdir, "minority_loss", log) as run:
        report = run.report
        # Quickly, so that some are still queued when the majority goes.
        await run.publisher.publish(config.jobs, config.publish_per_s * 5)
        done_before = len({e["tag"] for e in run.finished_events()})
        leader = await _leader(cluster, run.settings.name)
        stopped = [leader, *(i for i in range(len(cluster.nodes)) if i != leader)][:2]
        await asyncio.gather(*(asyncio.to_thread(cluster.stop, index) for index in stopped))
        report.faults.append(
            f"stopped nodes {stopped} (the leader first) with {done_before} of "
            f"{config.jobs} jobs completed"
        )
        log(f"minority_loss: stopped nodes {stopped}")
        report.unavailable_bound_s = 1.25 * config.connect_timeout_s + config.unavailable_margin_s
        for attempt in range(2):  # on the connection that broke, then on a fresh one
            began = time.monotonic()
            try:
                await queue(farm_jobs.cluster_job, str(run.farm.results), f"refused-{attempt}", 0)
            except QueueUnavailableError as error:
                report.unavailable_errors.append(str(error))
            else:
                report.accepted_without_majority += 1
            report.unavailable_after_s.append(time.monotonic() - began)

        back, last = stopped[1], stopped[0]
        await asyncio.to_thread(cluster.start, back)
        log(f"minority_loss: node {back} back: a majority again")
        await _until_queue_accepts(run)
        report.faults.append(f"started node {back}, then node {last}")
        last_back = asyncio.create_task(asyncio.to_thread(cluster.start, last))
        await _settle(run)
        await last_back
        await _await_online(cluster, run.settings.name)
    return report


async def _until_queue_accepts(run: _Run, timeout: float = 60) -> None:
    """``queue()`` one job at a time until one is confirmed (or ``timeout``)."""
    began = time.monotonic()
    while time.monotonic() < began + timeout:
        call = Enqueue(f"{run.report.scenario}-{len(run.publisher.calls)}")
        run.publisher.calls.append(call)
        await run.publisher.send(call)
        if call.confirmed_at is not None:
            run.report.recovered_after_s = call.confirmed_at - began
            return
        run.report.failed_while_recovering += 1
        await asyncio.sleep(0.2)


RUNNERS: dict[
    str,
    Callable[[RabbitMQCluster, ClusterChaosConfig, Path, Log], Awaitable[ClusterChaosReport]],
] = {"leader_loss": leader_loss, "rolling_restart": rolling_restart, "minority_loss": minority_loss}


async def run_scenarios(
    names: list[str], config: ClusterChaosConfig, workdir: Path, log: Log = print
) -> list[ClusterChaosReport]:
    """Start a cluster and run the scenarios ``names`` on it, one after the other."""
    reports = []
    began = time.monotonic()
    with rabbitmq_cluster(nodes=3) as cluster:
        log(f"cluster of 3 nodes formed in {time.monotonic() - began:.1f}s")
        for name in names:
            report = await RUNNERS[name](cluster, config, workdir, log)
            print(report.render(), flush=True)
            reports.append(report)
    return reports


def main() -> int:
    import logging

    logging.basicConfig(level=logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=[*RUNNERS, "all"], default="all")
    parser.add_argument("--jobs", type=int, default=ClusterChaosConfig.jobs)
    parser.add_argument("--rate", type=float, default=ClusterChaosConfig.publish_per_s)
    parser.add_argument("--restart-after", type=float, default=ClusterChaosConfig.restart_after_s)
    options = parser.parse_args()
    config = ClusterChaosConfig(
        jobs=options.jobs, publish_per_s=options.rate, restart_after_s=options.restart_after
    )
    names = list(RUNNERS) if options.scenario == "all" else [options.scenario]
    with tempfile.TemporaryDirectory() as directory:
        reports = asyncio.run(run_scenarios(names, config, Path(directory)))
    return 0 if not any(report.problems() for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
