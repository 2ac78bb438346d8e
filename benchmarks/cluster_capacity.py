"""Queue and node capacity on a private 3-node RabbitMQ cluster, beside one node, in one run.

Run: ``uv run python benchmarks/cluster_capacity.py [--messages 8000] [--rounds 3]
[--paths raw,fast-app] [--cases abcd] [--window 1000]``. It starts a private cluster of 3 nodes and a private single
node from the installed ``rabbitmq-server`` (``RABBITMQ_URL`` is not used: it needs to
know every node's OS process), and measures publish and consume at the same time,
``--messages`` per case, in these cases:

a. one quorum queue of 3 replicas whose leader is node 1, every client connected to node 1;
b. three quorum queues (3 replicas each), each declared through a different node so that
   its leader is there (``queue_leader_locator`` ``client-local``, the 3.10 default; the
   leaders are read back with ``rabbitmqctl list_queues name leader`` and printed), each
   queue's clients connected to its leader's node;
c. the same three queues, every client connected to node 1: two thirds of the traffic
   crosses between nodes;
d. the baseline: one quorum queue of 1 replica on the single node.

Every case has the same clients: 3 publishers, 3 consumers, each its own process; in a
and d they share the one queue, in b and c each publisher and consumer pair has its own
queue. Publishers use publisher confirms (raw: at most ``--window`` unconfirmed each;
fast-app: one ``queue_many`` batch); consumers have a prefetch of 100 and acknowledge
each message (raw aio-pika, or ``fast-app worker`` running a no-op job at
``FARM_CONCURRENCY`` 100). Every queue is declared as the farm declares its queues, so
both paths use the same queues. A case runs from ``go`` to the last message handled;
its figures:

- msg/s: messages published and consumed per second, all queues of the case together;
- the ratio of msg/s to the baseline (case d) of the same path;
- CPU seconds per 1,000 messages of each Erlang VM (``beam.smp``, from ``/proc``), of the
  3 publishers together and of the 3 consumers together;
- how busy the machine's cores were: ours (the VMs, the clients and this script) and
  everything (``/proc/stat``: other work on the machine too).

Each figure is the median of ``--rounds`` rounds; within a round the cases alternate (in
a rotated order, so that none always comes first; the two paths of a case swap places
every other round). With both paths a run takes about 3 minutes on 2 cores (longer when
other work shares them); ``--paths raw`` or fewer ``--messages`` shorten it. Ctrl-C or
SIGTERM stops every node and client it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from _capacity_report import Figures, Round, report
from capacity_jobs import SLOT_INDEX_ENV, SLOTS_FILE_ENV, create_slots, read_slots
from farm_throughput import declare, wait_ready
from proc_figures import cpu_seconds

from fast_app.core.queue.amqp import Topology
from fast_app.core.queue.testing.rabbitmq import RabbitMQNode
from fast_app.core.queue.testing.rabbitmq_cluster import RabbitMQCluster

HERE = Path(__file__).parent
PREFETCH = 100
PAIRS = 3  # publisher and consumer processes per case
DELIVERY_LIMIT = 10  # QUEUE_DELIVERY_LIMIT's default: fast-app declares the same queue
CASE_TIMEOUT_S = 300.0
POLL_S = 0.01
PATHS = ("raw", "fast-app")


@dataclass(frozen=True)
class Lane:
    """One publisher and one consumer: their queue and the node both connect to."""

    queue: str
    url: str


@dataclass(frozen=True)
class Case:
    """One setting measured: its lanes and the queues' replicas."""

    key: str
    label: str
    lanes: tuple[Lane, ...]
    replicas: int


@dataclass(frozen=True)
class Brokers:
    """The private brokers: the cluster, the single node, and each VM's OS pid."""

    cluster: RabbitMQCluster
    single: RabbitMQNode
    vm_pids: dict[str, int]  # "node 1" ... "node 3", "single"


# -- brokers -------------------------------------------------------------------------------


@contextlib.contextmanager
def brokers() -> Iterator[Brokers]:
    """A 3-node cluster and a single node, started together, closed on any exit."""
    with contextlib.ExitStack() as stack:
        cluster = RabbitMQCluster(3)
        stack.callback(cluster.close)
        single = RabbitMQNode()
        stack.callback(single.close)
        with ThreadPoolExecutor(2) as pool:
            starting = [pool.submit(cluster.start_all, 120.0), pool.submit(single.start_broker)]
            for started in starting:
                started.result()
        pids = {f"node {i + 1}": os_pid(cluster.nodes[i]) for i in range(3)}
        pids["single"] = os_pid(single)
        yield Brokers(cluster, single, pids)


def os_pid(node: RabbitMQNode) -> int:
    """The OS pid of the node's Erlang VM, as the VM itself says."""
    said = node.rabbitmqctl("eval", "os:getpid().", timeout=60)
    if said.returncode != 0:
        raise RuntimeError(f"no pid from {node.node_name}: {said.stderr}")
    return int(said.stdout.strip().strip('"'))


def leaders(cluster: RabbitMQCluster) -> dict[str, int]:
    """Each quorum queue's leader, as the index of its node."""
    listed = cluster.rabbitmqctl(0, "list_queues", "name", "leader", "--formatter", "json")
    return {row["name"]: cluster.index_of(row["leader"]) for row in json.loads(listed.stdout)}


def version(node: RabbitMQNode) -> str:
    """RabbitMQ's and Erlang/OTP's versions."""
    rabbit = node.rabbitmqctl("version").stdout.strip()
    otp = node.rabbitmqctl("eval", "erlang:system_info(otp_release).").stdout.strip()
    return f"RabbitMQ {rabbit}, Erlang/OTP {otp.strip(chr(34))}"


async def declare_queues(found: Brokers) -> tuple[list[Case], list[str]]:
    """Declare the queues; the cases on them, and lines saying where their leaders are."""
    cluster, tag = found.cluster, uuid.uuid4().hex[:6]
    one, single = f"capacity.one.{tag}", f"capacity.single.{tag}"
    spread = [f"capacity.spread{i + 1}.{tag}" for i in range(3)]
    await declare(cluster.urls[0], Topology(one, "quorum", DELIVERY_LIMIT, 3))
    for index, name in enumerate(spread):
        # Declared through node i: client-local puts the leader on node i.
        await declare(cluster.urls[index], Topology(name, "quorum", DELIVERY_LIMIT, 3))
    await declare(found.single.url, Topology(single, "quorum", DELIVERY_LIMIT, 1))
    leader_of = await asyncio.to_thread(leaders, cluster)
    where = [
        f"  {name}: leader on node {leader_of[name] + 1}"
        + ("" if leader_of[name] == wanted else f" (declared through node {wanted + 1})")
        for name, wanted in [(one, 0), *((n, i) for i, n in enumerate(spread))]
    ]
    # Each case follows the leaders as found: a's clients are on its queue's leader (node
    # 1 unless the broker placed it elsewhere), b's on each queue's leader.
    one_leader = leader_of[one]
    to_leader = tuple(Lane(name, cluster.urls[leader_of[name]]) for name in spread)
    via_first = tuple(Lane(name, cluster.urls[0]) for name in spread)
    cases = [
        Case(
            "a",
            f"a. one queue, leader node {one_leader + 1}",
            (Lane(one, cluster.urls[one_leader]),) * PAIRS,
            3,
        ),
        Case(
            "b",
            f"b. 3 queues, leaders on {len({lane.url for lane in to_leader})} nodes",
            to_leader,
            3,
        ),
        Case("c", "c. 3 queues, all via node 1", via_first, 3),
        Case("d", "d. baseline: one node", (Lane(single, found.single.url),) * PAIRS, 1),
    ]
    return cases, where


# -- one case, one round -------------------------------------------------------------------


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (every core, every process)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def split(total: int, parts: int) -> list[int]:
    """``total`` in ``parts`` near-equal shares."""
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


@dataclass
class Clients:
    """The client processes of one case, killed on any exit."""

    consumers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    publishers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def stop(self, timeout: float = 15.0) -> None:
        """Let them finish: the publishers' stdin closed, the consumers sent SIGTERM (so
        that their last acknowledgements reach the broker); killed if they linger."""
        for process in self.publishers:
            if process.stdin is not None:
                process.stdin.close()
        for process in self.consumers:
            process.terminate()
        deadline = time.monotonic() + timeout
        for process in self.consumers + self.publishers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.0, deadline - time.monotonic()))
        self.kill()

    def kill(self) -> None:
        """Kill any still running, and reap them all."""
        for process in self.consumers + self.publishers:
            if process.poll() is None:
                process.kill()
            process.wait()


def consumer(
    path: str, lane: Lane, replicas: int, slots: Path, index: int, log: Path
) -> subprocess.Popen[bytes]:
    """Start the consumer of ``lane``: raw aio-pika, or a ``fast-app worker``."""
    if path == "raw":
        command = [sys.executable, str(HERE / "_capacity_clients.py"), "consume", lane.url]
        command += [lane.queue, str(PREFETCH), str(slots), str(index)]
        env = dict(os.environ)
    else:
        command = [sys.executable, "-m", "fast_app.farm", "worker", "--log-level", "WARNING"]
        env = {
            **os.environ,
            "RABBITMQ_URL": lane.url,
            "QUEUE_NAME": lane.queue,
            "QUEUE_TYPE": "quorum",
            "QUEUE_REPLICAS": str(replicas),
            "FARM_CONCURRENCY": str(PREFETCH),
            "FARM_PREFETCH": str(PREFETCH),
            "FARM_ALLOWED_MODULES": "capacity_jobs",
            "PYTHONPATH": str(HERE),
            SLOTS_FILE_ENV: str(slots),
            SLOT_INDEX_ENV: str(index),
        }
    with log.open("wb") as output:
        return subprocess.Popen(command, env=env, cwd=HERE, stdout=output, stderr=output)


def publisher(
    path: str, lane: Lane, replicas: int, messages: int, window: int, log: Path
) -> subprocess.Popen[bytes]:
    """Start the publisher of ``lane``; it says ``ready`` on stdout and waits for ``go``."""
    command = [sys.executable, str(HERE / "_capacity_clients.py"), "publish", path, lane.url]
    command += [lane.queue, str(messages), str(replicas), str(window)]
    with log.open("wb") as errors:
        return subprocess.Popen(
            command, cwd=HERE, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors
        )


async def handled(slots: Path, count: int, expected: int, deadline: float) -> list[float]:
    """Wait until the consumers handled ``expected`` messages; each one's last time."""
    while True:
        noted = read_slots(slots, count)
        if sum(handled for handled, _ in noted) >= expected:
            return [last for _, last in noted]
        if time.monotonic() > deadline:
            raise RuntimeError(f"{sum(h for h, _ in noted)} of {expected} messages handled")
        await asyncio.sleep(POLL_S)


def tails(logs: Path) -> str:
    return "\n".join(f"{p.name}: {p.read_text()[-1500:]}" for p in sorted(logs.glob("*.log")))


def cpu_now(found: Brokers, clients: Clients) -> dict[str, float]:
    """CPU seconds used so far by each process of ours (clients by role)."""
    used = {name: cpu_seconds(pid) for name, pid in found.vm_pids.items()}
    used["publishers"] = sum(cpu_seconds(p.pid) for p in clients.publishers)
    used["consumers"] = sum(cpu_seconds(p.pid) for p in clients.consumers)
    used["benchmark"] = cpu_seconds(os.getpid())
    return used


async def run_case(
    path: str, case: Case, found: Brokers, messages: int, window: int, logs: Path
) -> Round:
    """One round of ``case`` on ``path``, from ``go`` to the last message handled."""
    slots = logs / "slots"
    create_slots(slots, len(case.lanes))
    clients = Clients()
    deadline = time.monotonic() + CASE_TIMEOUT_S
    try:
        # All start at once: a publisher needs only its queue, declared already.
        for index, lane in enumerate(case.lanes):
            log = logs / f"consumer-{index}.log"
            clients.consumers.append(consumer(path, lane, case.replicas, slots, index, log))
        for index, (lane, share) in enumerate(zip(case.lanes, split(messages, PAIRS), strict=True)):
            log = logs / f"publisher-{index}.log"
            clients.publishers.append(publisher(path, lane, case.replicas, share, window, log))
        for first in {lane.queue: lane for lane in case.lanes}.values():
            sharing = sum(lane.queue == first.queue for lane in case.lanes)
            await wait_ready(first.url, first.queue, sharing)
        for process in clients.publishers:
            assert process.stdout is not None
            if (await asyncio.to_thread(process.stdout.readline)).strip() != b"ready":
                raise RuntimeError("a publisher did not start")
        # Each publisher sent one warm-up message: handled before the clock starts.
        await handled(slots, len(case.lanes), PAIRS, deadline)

        before, machine_before = cpu_now(found, clients), machine_busy_s()
        go = time.time()
        for process in clients.publishers:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            process.stdin.flush()
        lasts = await handled(slots, len(case.lanes), messages + PAIRS, deadline)
        after, machine_after = cpu_now(found, clients), machine_busy_s()
    except BaseException as error:
        clients.kill()
        if isinstance(error, Exception):  # not on Ctrl-C: the clients' logs say why
            print(tails(logs), file=sys.stderr)
        raise
    await asyncio.to_thread(clients.stop)
    used = {name: after[name] - before[name] for name in before}
    return Round(messages, max(lasts) - go, used, machine_after - machine_before)


async def measure(
    found: Brokers, cases: Sequence[Case], paths: Sequence[str], options: argparse.Namespace
) -> dict[tuple[str, str], Figures]:
    """Every case on every path, ``options.rounds`` times, alternating."""
    figures = {(path, case.key): Figures() for path in paths for case in cases}
    with tempfile.TemporaryDirectory() as directory:
        for round_number in range(options.rounds):
            shift = round_number % len(cases)
            for case in [*cases[shift:], *cases[:shift]]:
                for path in paths if round_number % 2 == 0 else paths[::-1]:
                    logs = Path(directory) / f"{round_number}-{case.key}-{path}"
                    logs.mkdir()
                    measured = await run_case(
                        path, case, found, options.messages, options.window, logs
                    )
                    figures[(path, case.key)].keep(measured, os.cpu_count() or 1)
                    print(
                        f"round {round_number + 1} {path:8} {case.label:34} "
                        f"{measured.messages / measured.elapsed:8.0f} msg/s",
                        file=sys.stderr,
                    )
    return figures


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=8_000, help="messages per case")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=int, default=1000, help="raw publisher's unconfirmed")
    parser.add_argument(
        "--paths", default=",".join(PATHS), help="comma-separated: raw, fast-app, or both"
    )
    parser.add_argument("--cases", default="abcd", help="which of the cases a to d, e.g. ad")
    options = parser.parse_args()
    options.paths = [path for path in options.paths.split(",") if path]
    if not set(options.paths) <= set(PATHS) or not options.paths:
        parser.error(f"--paths: choose among {', '.join(PATHS)}")
    options.cases = sorted(set(options.cases))
    if not set(options.cases) <= set("abcd") or not options.cases:
        parser.error("--cases: letters among a, b, c, d")
    if options.messages < PAIRS or options.rounds < 1:
        parser.error(f"--messages must be at least {PAIRS}, --rounds at least 1")
    return options


def _stop_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the with-blocks stop the nodes and clients, as on Ctrl-C


def main() -> None:
    options = parse_options()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    started = time.monotonic()
    with brokers() as found:
        every_case, where = asyncio.run(declare_queues(found))
        cases = [case for case in every_case if case.key in options.cases]
        print("\n".join(["leaders:", *where]), file=sys.stderr)
        figures = asyncio.run(measure(found, cases, options.paths, options))
        leaders_after = {
            name: index
            for name, index in leaders(found.cluster).items()
            if any(lane.queue == name for case in every_case[:3] for lane in case.lanes)
        }
        header = [
            f"\ncluster_capacity — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
            f"{version(found.single)}, {os.cpu_count()} cores (shared with other work), "
            f"{options.messages:,} messages per case, median of {options.rounds} rounds, "
            f"{PAIRS} publishers + {PAIRS} consumers per case (prefetch {PREFETCH}, "
            f"confirms; raw window {options.window})",
            "queues (3 replicas in the cluster, 1 on the single node):",
            *where,
            "leaders after the run: "
            + ", ".join(
                f"{n.split('.')[1]} node {i + 1}" for n, i in sorted(leaders_after.items())
            ),
            "",
        ]
    cases_shown = [(case.key, case.label) for case in cases]
    report(cases_shown, options.paths, figures, header, os.cpu_count() or 1)
    print(f"(run took {time.monotonic() - started:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted: nodes and clients stopped", file=sys.stderr)
        sys.exit(130)
