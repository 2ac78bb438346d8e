"""A private, throwaway RabbitMQ cluster for tests: several nodes of one host, clustered.

Each node is a ``RabbitMQNode`` (its own directory, AMQP and distribution ports, node name
``fastapp-<random>-<n>@localhost``); they share one Erlang cookie and one private epmd,
through which nodes of one host find each other. Node 1 boots a fresh cluster; the others
boot at the same time and join it by peer discovery (``classic_config``, retrying until
node 1 answers). The cluster is ready once every node is a running member and a probe
quorum queue has a replica on each node. As with one node, every process is ended and
every file deleted on close, and also when the owning process dies without closing (each
node's guard process ends it). Install the server with ``apt-get install -y
rabbitmq-server``.

::

    from fast_app.core.queue.testing.rabbitmq_cluster import rabbitmq_cluster

    with rabbitmq_cluster(nodes=3) as cluster:
        cluster.url  # "amqp://...:P1/,amqp://...:P2/,amqp://...:P3/" for RABBITMQ_URL
        cluster.kill(0)  # SIGKILL node 1's VM: quorum queues elect another leader
        cluster.start(0)  # back, and a running member again
        cluster.rabbitmqctl(1, "list_queues", "name", "leader")

Indexes are 0-based, as in ``urls``: node ``i`` is named ``...-{i + 1}@localhost``.
``main`` runs a cluster in the foreground: it is ``fast-app broker --nodes N``.
"""

from __future__ import annotations

__all__ = ["RabbitMQCluster", "main", "rabbitmq_cluster"]

import argparse
import asyncio
import contextlib
import json
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import Any, Final

from ._node_network import HOST
from .rabbitmq import RabbitMQNode, RabbitMQNotInstalledError, RabbitMQStartError

_POLL_INTERVAL: Final = 0.25
#: Nodes that boot with node 1 may ask it to join before it listens: they retry.
_JOIN_RETRY_INTERVAL_MS: Final = 500
_MAX_NODES: Final = 9


class RabbitMQCluster:
    """Several private RabbitMQ nodes of this host, clustered; nodes can be stopped,
    killed and restarted one at a time.

    Mutable because it owns live processes; not thread-safe. Its public attributes never
    change: a restarted node keeps its ports, name and data.

    Attributes:
        nodes: The nodes, in order; node 0 boots the cluster and owns the shared epmd.
        node_names: Erlang node names, e.g. ``fastapp-1a2b3c4d-1@localhost``.
        urls: Each node's AMQP URL (``amqp://guest:guest@127.0.0.1:PORT/``).
        url: The URLs joined by commas: a ``RABBITMQ_URL`` naming the whole cluster.
    """

    def __init__(
        self,
        nodes: int = 3,
        *,
        first_port: int | None = None,
        extra_config: Mapping[str, str] | None = None,
    ) -> None:
        """Prepare the nodes' files without starting them (``start_all`` does).

        Args:
            nodes: How many nodes, 1 to 9.
            first_port: AMQP ports ``first_port``, ``first_port + 1``, ... for the nodes,
                each one that is taken replaced by a free port; all free ports when None.
            extra_config: Extra ``rabbitmq.conf`` settings for every node.

        Raises:
            ValueError: ``nodes`` is out of range.
            RabbitMQNotInstalledError: ``rabbitmq-server`` or ``epmd`` is missing.
        """
        if not 1 <= nodes <= _MAX_NODES:
            raise ValueError(f"a cluster has 1 to {_MAX_NODES} nodes, not {nodes}")
        # Every node picks its free ports on its own: the ports already given to the
        # others are held bound meanwhile, so that no two picks coincide.
        self._reserved = _PortReservation()
        ports = [
            self._reserved.pick(None if first_port is None else first_port + offset)
            for offset in range(nodes)
        ]
        prefix = f"fastapp-{secrets.token_hex(4)}"
        cookie = secrets.token_hex(16).upper()
        extra = dict(extra_config or {})
        made: list[RabbitMQNode] = []
        try:
            seed = RabbitMQNode(
                amqp_port=ports[0],
                node_name=f"{prefix}-1@localhost",
                cookie=cookie,
                extra_config=extra,
            )
            made.append(seed)
            self._reserved.hold(seed.dist_port, seed.epmd_port)
            joining = {
                # Read only on a node's first boot (an empty database); a restarted
                # node rejoins the cluster it already belongs to.
                "cluster_formation.peer_discovery_backend": "classic_config",
                "cluster_formation.classic_config.nodes.1": seed.node_name,
                # Node 1 boots alongside: retry for up to a minute until it answers.
                "cluster_formation.discovery_retry_limit": "120",
                "cluster_formation.discovery_retry_interval": str(_JOIN_RETRY_INTERVAL_MS),
                **extra,
            }
            for number, port in enumerate(ports[1:], start=2):
                node = RabbitMQNode(
                    amqp_port=port,
                    node_name=f"{prefix}-{number}@localhost",
                    cookie=cookie,
                    shared_epmd_port=seed.epmd_port,
                    extra_config=joining,
                )
                made.append(node)
                self._reserved.hold(node.dist_port)
        except BaseException:
            self._reserved.release()
            _close_nodes(made)
            raise
        self.nodes: Final = tuple(made)
        self.node_names: Final = tuple(node.node_name for node in made)
        self.urls: Final = tuple(node.url for node in made)
        self.url: Final = ",".join(self.urls)
        self._closed = False

    def start_all(self, timeout: float = 90.0) -> None:
        """Start every node and wait until the cluster is formed.

        Formed: every node is a running member (``rabbitmqctl cluster_status``), and a
        quorum queue declared with a replica per node has them all online (the probe
        queue is deleted afterwards).

        Args:
            timeout: Seconds for the whole start.

        Raises:
            RabbitMQStartError: A node did not start, or the cluster did not form in time
                (the message has every node's log tail).
        """
        deadline = time.monotonic() + timeout
        self._reserved.release()
        # The seed boots alone first: a node that joins while the seed is still booting
        # may copy tables the seed's feature flags are about to migrate, and then fails
        # its own boot (schema_integrity_check_failed: table_attributes_mismatch), seen
        # on a loaded host. The others then boot at once.
        seed, *joining = self.nodes
        seed.start_broker(timeout)
        with ThreadPoolExecutor(max(1, len(joining))) as pool:
            starts = [
                pool.submit(node.start_broker, deadline - time.monotonic()) for node in joining
            ]
            for started in starts:
                started.result()
        self._await_members(0, self.node_names, deadline)
        self._await_quorum_replicas(deadline)

    def stop(self, index: int, timeout: float = 15.0) -> None:
        """Stop node ``index`` gracefully (SIGTERM; SIGKILL after ``timeout`` seconds)."""
        self.nodes[index].stop_broker(timeout)

    def kill(self, index: int) -> None:
        """SIGKILL node ``index``'s Erlang VM, as a crash would."""
        self.nodes[index].stop_broker(graceful=False)

    def start(self, index: int, timeout: float = 60.0) -> None:
        """Start node ``index`` again and wait until it is a running member once more.

        Args:
            index: The node (0-based).
            timeout: Seconds until it has rejoined the running nodes.

        Raises:
            RabbitMQStartError: It did not start or rejoin in time.
        """
        deadline = time.monotonic() + timeout
        self.nodes[index].start_broker(timeout)
        running = [node.node_name for node in self.nodes if node.is_running]
        self._await_members(index, running, deadline)

    def rabbitmqctl(
        self, index: int, *args: str, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``rabbitmqctl`` against node ``index``; its exit status is not checked."""
        return self.nodes[index].rabbitmqctl(*args, timeout=timeout)

    def running_members(self, index: int) -> list[str]:
        """The running cluster members as node ``index`` sees them; empty if it cannot say."""
        try:
            result = self.rabbitmqctl(index, "cluster_status", "--formatter", "json", timeout=30)
            status = json.loads(result.stdout) if result.returncode == 0 else {}
        except (subprocess.TimeoutExpired, ValueError):
            return []
        return [str(name) for name in status.get("running_nodes", [])]

    def index_of(self, node_name: str) -> int:
        """The index of the node named ``node_name`` (as ``rabbitmqctl`` prints it).

        Raises:
            ValueError: No node of this cluster has that name.
        """
        return self.node_names.index(node_name)

    def log_tail(self) -> str:
        """The last lines of every node's logs."""
        return "\n".join(node.log_tail() for node in self.nodes)

    def _await_members(self, index: int, expected: Sequence[str], deadline: float) -> None:
        while True:
            members = self.running_members(index)
            if set(expected) <= set(members):
                return
            if time.monotonic() > deadline:
                raise self._fail(
                    f"{self.node_names[index]} sees running members {members}, "
                    f"expected {list(expected)}"
                )
            time.sleep(_POLL_INTERVAL)

    def _await_quorum_replicas(self, deadline: float) -> None:
        # A formed cluster can still be short of a quorum queue replica on a node whose
        # Ra system is starting: the probe proves queues declared next get every node.
        probe = f"fastapp.cluster-probe.{secrets.token_hex(4)}"
        _run_coroutine(lambda: _probe_queue(self.urls[0], probe, replicas=len(self.nodes)))
        while True:
            online = self._online_replicas(probe)
            if len(online) == len(self.nodes):
                break
            if time.monotonic() > deadline:
                raise self._fail(f"probe quorum queue has replicas online on {online} only")
            time.sleep(_POLL_INTERVAL)
        _run_coroutine(lambda: _probe_queue(self.urls[0], probe, replicas=None))

    def _online_replicas(self, queue_name: str) -> list[str]:
        with contextlib.suppress(subprocess.TimeoutExpired, ValueError):
            listed = self.rabbitmqctl(0, "list_queues", "name", "online", "--formatter", "json")
            for row in json.loads(listed.stdout or "[]"):
                if row.get("name") == queue_name:
                    return [str(name) for name in row.get("online") or []]
        return []

    def _fail(self, reason: str) -> RabbitMQStartError:
        return RabbitMQStartError(f"RabbitMQ cluster: {reason}\n{self.log_tail()}")

    def close(self) -> None:
        """Stop every node and delete their files; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._reserved.release()
        _close_nodes(self.nodes)

    def __repr__(self) -> str:
        running = sum(node.is_running for node in self.nodes)
        state = "closed" if self._closed else f"{running}/{len(self.nodes)} running"
        return f"<RabbitMQCluster {self.node_names[0].split('-1@')[0]} {state}>"


class _PortReservation:
    """Loopback ports held bound until released, so that no other pick returns them."""

    def __init__(self) -> None:
        self._sockets = contextlib.ExitStack()

    def pick(self, preferred: int | None) -> int:
        """Hold ``preferred`` if it is free, else a free port; return the port held."""
        if preferred and self.hold(preferred):
            return preferred
        sock = self._sockets.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])

    def hold(self, *ports: int) -> bool:
        """Hold ``ports``; return whether all were free."""
        held = True
        for port in ports:
            sock = self._sockets.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            try:
                sock.bind((HOST, port))
            except OSError:
                held = False
        return held

    def release(self) -> None:
        """Let the ports go (just before the nodes bind them); idempotent."""
        self._sockets.close()


def _close_nodes(nodes: Sequence[RabbitMQNode]) -> None:
    """Stop ``nodes`` at once (a graceful stop takes a second each), then close them
    last to first: node 0 owns the epmd the others use."""
    with ThreadPoolExecutor(max(1, len(nodes))) as pool:
        for stopping in [pool.submit(node.stop_broker) for node in nodes]:
            with contextlib.suppress(Exception):  # close() below retries it
                stopping.result()
    for node in reversed(nodes):
        node.close()


def _run_coroutine(make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine to completion from synchronous code, even inside a running loop."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(make())).result()


async def _probe_queue(url: str, name: str, *, replicas: int | None) -> None:
    """Declare quorum queue ``name`` with ``replicas`` replicas; None: delete it."""
    import aio_pika  # only here: ``fast-app broker`` need not import it otherwise

    connection = await aio_pika.connect(
        url, client_properties={"connection_name": "fast-app cluster probe"}
    )
    async with connection:
        channel = await connection.channel()
        if replicas is None:
            await channel.queue_delete(name)
            return
        await channel.declare_queue(
            name,
            durable=True,
            arguments={"x-queue-type": "quorum", "x-quorum-initial-group-size": replicas},
        )


@contextlib.contextmanager
def rabbitmq_cluster(
    nodes: int = 3,
    *,
    startup_timeout: float = 90.0,
    extra_config: Mapping[str, str] | None = None,
) -> Iterator[RabbitMQCluster]:
    """Run a private RabbitMQ cluster for the duration of a ``with`` block.

    Args:
        nodes: How many nodes, 1 to 9.
        startup_timeout: Seconds until every node is a running member and quorum queues
            get a replica on each.
        extra_config: Extra ``rabbitmq.conf`` settings for every node.

    Yields:
        The formed cluster; on exit every node is stopped and its files removed, even on
        error.

    Raises:
        RabbitMQNotInstalledError: ``rabbitmq-server`` is not installed.
        RabbitMQStartError: The cluster did not form in time.
    """
    cluster = RabbitMQCluster(nodes, extra_config=extra_config)
    try:
        cluster.start_all(startup_timeout)
        yield cluster
    finally:
        cluster.close()


def _node_count(text: str) -> int:
    count = int(text)
    if not 1 <= count <= _MAX_NODES:
        raise argparse.ArgumentTypeError(f"must be 1 to {_MAX_NODES}, not {count}")
    return count


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run a cluster in the foreground until SIGINT/SIGTERM.

    Prints the comma-separated URL of its nodes (a ``RABBITMQ_URL``) on stdout; each
    node's name and URL on stderr.

    Args:
        argv: Command-line arguments (``--nodes``, ``--port``, ``--startup-timeout``);
            ``sys.argv[1:]`` when None.
        prog: Program name shown in usage and errors; by default, from ``sys.argv[0]``.

    Returns:
        0 after a clean shutdown, 1 if the cluster failed to start or a node died.
    """
    parser = argparse.ArgumentParser(prog=prog, description="Run a RabbitMQ cluster.")
    parser.add_argument("--nodes", type=_node_count, default=3, metavar="N")
    parser.add_argument(
        "--port",
        type=int,
        help="first node's AMQP port, the next nodes' follow (default: 5672, 5673, ... "
        "where free, else random; 0: random)",
    )
    parser.add_argument("--startup-timeout", type=float, default=90.0, metavar="SECONDS")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def _request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    # The nodes have their own sessions, so Ctrl-C reaches only us and we stop them.
    previous = {sig: signal.signal(sig, _request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        first_port = 5672 if args.port is None else args.port or None
        cluster = RabbitMQCluster(args.nodes, first_port=first_port)
        try:
            cluster.start_all(args.startup_timeout)
            print(f"RabbitMQ cluster of {args.nodes} nodes ready:", file=sys.stderr)
            for name, url in zip(cluster.node_names, cluster.urls, strict=True):
                print(f"  {name}  {url}", file=sys.stderr)
            print(
                "Its data is thrown away when it stops. Point the farm at it with:\n"
                f"  export RABBITMQ_URL={cluster.url}",
                file=sys.stderr,
            )
            print(cluster.url, flush=True)
            while not stop.wait(0.5):
                if dead := [n.node_name for n in cluster.nodes if not n.is_running]:
                    print(f"RabbitMQ node {', '.join(dead)} died", file=sys.stderr)
                    print(cluster.log_tail(), file=sys.stderr)
                    return 1
        finally:
            cluster.close()
    except (RabbitMQNotInstalledError, RabbitMQStartError) as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
