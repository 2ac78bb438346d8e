"""Private, throwaway RabbitMQ nodes for tests, run from the installed ``rabbitmq-server``.

Each node has its own temporary directory (data, logs, config, Erlang cookie), its own
free loopback ports (AMQP, Erlang distribution, epmd) and node name, so it never touches
a system broker or another test node. Its processes are ended and its files deleted when
it is closed, and also when the process that owns it dies without closing it (even by
SIGKILL). Only the server's scripts and ``epmd`` are used, never the system service;
install them with ``apt-get install -y rabbitmq-server`` (Debian, Ubuntu). Standard
library only.

In tests, the ``fast_app_queue`` pytest plugin (registered when this package is
installed) provides ``rabbitmq_url``: one node for the whole test session, or the broker
of ``RABBITMQ_URL`` when that variable is set; ``rabbitmq_node_session`` is that node
(``None`` with ``RABBITMQ_URL``), for ``rabbitmqctl``. With neither the server nor the
variable, the tests using them fail (they never skip), saying how to install it. Mark
such tests ``rabbitmq`` so that ``pytest -m "not rabbitmq"`` can leave them out::

    @pytest.mark.rabbitmq
    async def test_publish(rabbitmq_url: str) -> None:
        connection = await aio_pika.connect(rabbitmq_url)
        ...

A node of a test's own, to stop and restart (durable queues and persistent messages
survive, clients reconnect to the same URL) or to run ``rabbitmqctl`` against::

    from fast_app.core.queue.testing.rabbitmq import rabbitmq_node

    with rabbitmq_node() as node:
        node.stop_broker(graceful=False)  # a crash
        node.start_broker()
        node.rabbitmqctl("list_queues", "name", "messages")

``node.memory_alarm()`` raises the broker's memory alarm for the length of a ``with`` or
``async with`` block: it blocks every connection that publishes, holding what they sent
unconfirmed::

    async with rabbitmq_node_session.memory_alarm():
        ...  # publishes wait for their confirms until the block is left

``main`` runs a node in the foreground until interrupted and prints its URL: it is the
farm's ``fast-app broker`` command.
"""

from __future__ import annotations

__all__ = [
    "RabbitMQNode",
    "RabbitMQNotInstalledError",
    "RabbitMQStartError",
    "main",
    "rabbitmq_node",
]

import argparse
import atexit
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Final

from ._memory_alarm import MemoryAlarm
from ._node_guard import NodeGuard
from ._node_network import HOST, accepts_tcp, free_ports, speaks_amqp

# Debian's /usr/sbin/rabbitmq-server is a wrapper that su's to the "rabbitmq"
# user and cd's to /var/lib/rabbitmq, so the real script (the one living next
# to rabbitmq-env) is used instead.
_SCRIPT_DIRS: Final = ("/usr/lib/rabbitmq/bin", "/usr/local/lib/rabbitmq/bin")
_INSTALL_HINT: Final = (
    "RabbitMQ is not installed: run `apt-get install -y rabbitmq-server` "
    "(or set RABBITMQ_URL to use an existing broker)."
)
_POLL_INTERVAL: Final = 0.05
_LOG_TAIL_LINES: Final = 40


class RabbitMQNotInstalledError(RuntimeError):
    """Raised when the ``rabbitmq-server`` scripts or ``epmd`` cannot be found."""


class RabbitMQStartError(RuntimeError):
    """Raised when a node does not start or accept AMQP connections in time."""


def _find_executables() -> tuple[Path, Path]:
    """Return the directory of the real ``rabbitmq-server`` script and ``epmd``."""
    candidates = [Path(d) for d in _SCRIPT_DIRS]
    if found := shutil.which("rabbitmq-server"):
        candidates.append(Path(found).resolve().parent)
    script_dir = next((d for d in candidates if (d / "rabbitmq-env").is_file()), None)
    epmd = shutil.which("epmd")
    if script_dir is None or epmd is None:
        raise RabbitMQNotInstalledError(_INSTALL_HINT)
    return script_dir, Path(epmd)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class RabbitMQNode:
    """A private RabbitMQ node whose broker can be stopped and restarted.

    Mutable (not a frozen dataclass) because it owns live processes.
    ``stop_broker()`` / ``start_broker()`` keep the ports, node name and data,
    so durable queues and persistent messages survive and clients reconnect to
    the same URL. ``close()`` stops everything and deletes all files. The public
    attributes never change. Not thread-safe.

    Attributes:
        url: ``amqp://guest:guest@127.0.0.1:PORT/`` (default user and vhost).
        amqp_port: AMQP listener port on 127.0.0.1.
        node_name: Erlang node name, e.g. ``fastapp-1a2b3c4d@localhost``.
        base_dir: Temporary directory holding every file of the node.
        dist_port: Erlang distribution port (used by ``rabbitmqctl``).
        epmd_port: Port of the node's private epmd (or of the one it shares).
        data_dir: Directory keeping its data beyond ``close()``, if one was given.
    """

    def __init__(
        self,
        *,
        amqp_port: int | None = None,
        consumer_timeout_ms: int | None = None,
        extra_config: Mapping[str, str] | None = None,
        data_dir: Path | None = None,
        node_name: str | None = None,
        cookie: str | None = None,
        shared_epmd_port: int | None = None,
    ) -> None:
        """Prepare the node's files without starting it.

        Args:
            amqp_port: AMQP port to listen on; a free port when None.
            consumer_timeout_ms: Broker ``consumer_timeout`` in milliseconds, if any.
            extra_config: Extra ``rabbitmq.conf`` settings; they override the defaults.
            data_dir: Keep the node's data (queues, messages, users) in this directory,
                created if missing, and never delete it: a node started later on the
                same directory finds it all again. None: a temporary directory, deleted
                on ``close()``.
            node_name: Erlang node name (``NAME@localhost``); by default the data
                directory's, or a random one.
            cookie: Erlang cookie, for nodes that must talk to each other (a cluster);
                a random one when None.
            shared_epmd_port: Register with the epmd another node owns on this port
                (nodes of one host only find each other through one epmd); it must be
                running whenever this node starts. None: start an epmd of its own.

        Raises:
            RabbitMQNotInstalledError: ``rabbitmq-server`` or ``epmd`` is missing.
        """
        self._script_dir, self._epmd_bin = _find_executables()
        amqp, dist, epmd = free_ports(3)
        self.amqp_port: Final = amqp if amqp_port is None else amqp_port
        self.dist_port: Final = dist
        self._owns_epmd: Final = shared_epmd_port is None
        self.epmd_port: Final = epmd if shared_epmd_port is None else shared_epmd_port
        # Short name on the literal host "localhost": it resolves everywhere,
        # unlike a container's generated hostname.
        self.data_dir: Final = None if data_dir is None else Path(data_dir).resolve()
        # RabbitMQ keeps its data under the node's name: a kept directory keeps its name.
        self.node_name: Final = (
            node_name or self._kept_node_name() or f"fastapp-{secrets.token_hex(4)}@localhost"
        )
        self.url: Final = f"amqp://guest:guest@{HOST}:{self.amqp_port}/"
        self.base_dir: Final = Path(tempfile.mkdtemp(prefix="fastapp-rabbitmq-"))
        self._server: subprocess.Popen[bytes] | None = None
        self._epmd: subprocess.Popen[bytes] | None = None
        self._closed = False
        atexit.register(self.close)  # a forgotten close() must not leak an Erlang VM
        self._guard = NodeGuard(self.base_dir)  # nor a SIGKILLed owner
        try:
            self._write_files(consumer_timeout_ms, extra_config or {}, cookie)
        except BaseException:
            self.close()
            raise

    def _kept_node_name(self) -> str | None:
        """The node name of the data directory, chosen at its first use; None without one."""
        if self.data_dir is None:
            return None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        name_file = self.data_dir / "node-name"
        if not name_file.is_file():
            name_file.write_text(f"fastapp-{secrets.token_hex(4)}@localhost\n")
        return name_file.read_text().strip()

    @property
    def _mnesia_base(self) -> Path:
        return self.base_dir / "mnesia" if self.data_dir is None else self.data_dir / "mnesia"

    def _write_files(
        self, consumer_timeout_ms: int | None, extra: Mapping[str, str], cookie_value: str | None
    ) -> None:
        base = self.base_dir
        for sub in ("home", "log"):
            (base / sub).mkdir()
        self._mnesia_base.mkdir(parents=True, exist_ok=True)
        # A private $HOME keeps the cookie private; writing it up front avoids
        # the node and rabbit's "epmd-starter" helper VM racing to create it.
        cookie = base / "home" / ".erlang.cookie"
        cookie.write_text(cookie_value or secrets.token_hex(16).upper())
        cookie.chmod(0o400)  # Erlang rejects cookies readable by others
        (base / "enabled_plugins").write_text("[].\n")
        (base / "rabbitmq-env.conf").write_text("")
        config = {
            "listeners.tcp.default": f"{HOST}:{self.amqp_port}",
            # Small CI disks would otherwise trip the disk alarm and block publishers.
            "disk_free_limit.absolute": "1MB",
            "log.console": "false",  # stdout is only a startup-failure fallback
            "log.file.level": "info",
        }
        if consumer_timeout_ms is not None:
            config["consumer_timeout"] = str(int(consumer_timeout_ms))
            # Channels check the timeout on their tick, every 60 s by default; a short
            # timeout (in tests) is only enforced promptly with a short tick.
            tick_ms = max(100, min(1000, int(consumer_timeout_ms) // 2))
            (base / "advanced.config").write_text(
                f"[{{rabbit, [{{channel_tick_interval, {tick_ms}}}]}}].\n"
            )
        config.update(extra)
        lines = (f"{key} = {value}\n" for key, value in config.items())
        (base / "rabbitmq.conf").write_text("".join(lines))

    def _env(self) -> dict[str, str]:
        base = self.base_dir
        # Inherited RABBITMQ_* / ERL_* variables (ERL_FLAGS, RABBITMQ_NODENAME, ...)
        # would silently reconfigure the node.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            HOME=str(base / "home"),
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS=HOST,
            RABBITMQ_NODENAME=self.node_name,
            RABBITMQ_USE_LONGNAME="false",
            RABBITMQ_NODE_IP_ADDRESS=HOST,
            RABBITMQ_NODE_PORT=str(self.amqp_port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self._mnesia_base),
            RABBITMQ_LOG_BASE=str(base / "log"),
            RABBITMQ_PID_FILE=str(base / "rabbitmq.pid"),
            RABBITMQ_CONFIG_FILE=str(base / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
            # The remaining defaults point into /etc/rabbitmq; redirect them to
            # empty or missing private files so host configuration never leaks in.
            RABBITMQ_CONF_ENV_FILE=str(base / "rabbitmq-env.conf"),
            RABBITMQ_CONFIG_FILES=str(base / "conf.d" / "*.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(base / "advanced.config"),
            # Otherwise Erlang distribution listens on all interfaces.
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        return env

    @property
    def is_running(self) -> bool:
        """Whether the broker process is alive."""
        return self._server is not None and self._server.poll() is None

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """Return the last ``lines`` lines of each non-empty log file of the node."""
        parts = []
        for path in [self.base_dir / "stdout.log", *sorted(self.base_dir.glob("log/*.log"))]:
            with contextlib.suppress(OSError):
                if tail := path.read_text(errors="replace").splitlines()[-lines:]:
                    parts.append(f"==> {path} <==\n" + "\n".join(tail))
        return "\n".join(parts) or "(no log output)"

    def _fail(self, reason: str) -> RabbitMQStartError:
        tail = self.log_tail()
        self.stop_broker(timeout=5.0)
        return RabbitMQStartError(f"RabbitMQ node {self.node_name}: {reason}\n{tail}")

    def _popen(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        with (self.base_dir / log_name).open("ab") as log:
            process = subprocess.Popen(
                args,
                cwd=self.base_dir,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group, so killpg() reaches beam.smp
            )
        self._guard.watch(process.pid)
        return process

    def _start_epmd(self, deadline: float) -> None:
        # Erlang would otherwise spawn "epmd -daemon", which detaches to init
        # and outlives the node; a foreground epmd is ours to kill.
        if self._epmd is not None and self._epmd.poll() is None:
            return
        cmd = [str(self._epmd_bin), "-port", str(self.epmd_port), "-address", HOST]
        self._epmd = self._popen(cmd, "epmd.log")
        # Waiting matters: if erl found no epmd yet, it would start its own daemon.
        while not accepts_tcp(self.epmd_port):
            if self._epmd.poll() is not None or time.monotonic() > deadline:
                raise self._fail(f"epmd did not listen on port {self.epmd_port}")
            time.sleep(_POLL_INTERVAL)

    def start_broker(self, timeout: float = 60.0) -> None:
        """Start the broker (again) and wait until it answers AMQP; no-op if running.

        Args:
            timeout: Seconds to wait for the broker to accept AMQP connections.

        Raises:
            RabbitMQStartError: It exited or was not ready in time (message has log tails).
        """
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        if self.is_running:
            return
        deadline = time.monotonic() + timeout
        if self._owns_epmd:
            self._start_epmd(deadline)
        server = self._popen([str(self._script_dir / "rabbitmq-server")], "stdout.log")
        self._server = server
        while not speaks_amqp(self.amqp_port):
            if server.poll() is not None:
                raise self._fail(f"exited during startup (status {server.returncode})")
            if time.monotonic() > deadline:
                raise self._fail(f"no AMQP on port {self.amqp_port} after {timeout}s")
            time.sleep(_POLL_INTERVAL)

    def stop_broker(self, timeout: float = 15.0, *, graceful: bool = True) -> None:
        """Stop the broker, keeping its data; idempotent.

        Args:
            timeout: Seconds to wait for a graceful shutdown before SIGKILL.
            graceful: False SIGKILLs the broker at once (simulates a crash).
        """
        proc, self._server = self._server, None
        if proc is None:
            return
        try:
            if graceful and proc.poll() is None:
                # rabbit treats SIGTERM like `rabbitmqctl stop`, minus the
                # second Erlang VM the CLI would boot.
                _signal_group(proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout)
        finally:
            # Reaches beam.smp even if the wrapper shell is gone; the helpers
            # beam spawned in their own sessions exit once its pipes close.
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
            self._guard.forget(proc.pid)

    def rabbitmqctl(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run ``rabbitmqctl`` against this node, e.g. ``rabbitmqctl("list_queues")``.

        Args:
            *args: Command-line arguments.
            timeout: Seconds before the command is killed.

        Returns:
            The completed process with text output; its exit status is not checked.
        """
        env = self._env()
        # The CLI is an Erlang node too; a private port keeps concurrent calls
        # from competing for the default 35672-35682 range.
        port = str(free_ports(1)[0])
        env.update(RABBITMQ_CTL_DIST_PORT_MIN=port, RABBITMQ_CTL_DIST_PORT_MAX=port)
        cmd = [str(self._script_dir / "rabbitmqctl"), "-n", self.node_name, *args]
        return subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def memory_alarm(self, timeout: float = 30.0) -> MemoryAlarm:
        """Raise the broker's memory alarm for the length of a ``with`` or ``async with``
        block.

        On entry the memory high watermark is set to 1 byte, and the block starts once the
        node reports its memory alarm: from then on the broker blocks every connection that
        publishes (cluster-wide, in a cluster), holding what it sent unconfirmed. On exit,
        even when the block raised, the previous watermark is restored and the exit waits
        until the alarm is cleared (nothing to do if the broker was stopped in the block:
        it starts again with the watermark of its configuration). ``async with`` runs
        ``rabbitmqctl`` in a thread, leaving the event loop free; ``with`` blocks. Not
        reentrant: an alarm raised inside another would restore a watermark of 1 byte.

        Args:
            timeout: Seconds to wait for the alarm to be reported, then to be cleared.

        Returns:
            The alarm, raised when its block is entered.

        Raises:
            RuntimeError: A ``rabbitmqctl`` call failed (the broker is not running).
            TimeoutError: The alarm was not reported, or not cleared, within ``timeout``.
        """
        return MemoryAlarm(self, timeout)

    def close(self) -> None:
        """Stop the broker and epmd and delete the node's files (not a ``data_dir``);
        idempotent."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        try:
            self.stop_broker()
        finally:
            if self._epmd is not None:
                self._epmd.kill()
                self._epmd.wait()
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self._guard.release()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running" if self.is_running else "stopped"
        return f"<RabbitMQNode {self.node_name} {self.url} {state}>"


@contextlib.contextmanager
def rabbitmq_node(
    *,
    startup_timeout: float = 60.0,
    consumer_timeout_ms: int | None = None,
    extra_config: Mapping[str, str] | None = None,
) -> Iterator[RabbitMQNode]:
    """Run a private RabbitMQ node for the duration of a ``with`` block.

    Args:
        startup_timeout: Seconds to wait until the node accepts AMQP connections.
        consumer_timeout_ms: Broker ``consumer_timeout`` in milliseconds, if any.
        extra_config: Extra ``rabbitmq.conf`` settings (new-style ``key = value``).

    Yields:
        The running node; on exit it is closed (stopped, files removed), even on error.

    Raises:
        RabbitMQNotInstalledError: ``rabbitmq-server`` is not installed.
        RabbitMQStartError: The node did not come up in time.
    """
    node = RabbitMQNode(consumer_timeout_ms=consumer_timeout_ms, extra_config=extra_config)
    try:
        node.start_broker(startup_timeout)
        yield node
    finally:
        node.close()


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run a node in the foreground until SIGINT/SIGTERM; prints its AMQP URL on stdout.

    Args:
        argv: Command-line arguments (``--port``, ``--data-dir``, ``--startup-timeout``);
            ``sys.argv[1:]`` when None.
        prog: Program name shown in usage and errors; by default, from ``sys.argv[0]``.

    Returns:
        0 after a clean shutdown, 1 if the node failed to start or died.
    """
    parser = argparse.ArgumentParser(prog=prog, description="Run a RabbitMQ node.")
    parser.add_argument(
        "--port", type=int, help="AMQP port (default: 5672 if free, else random; 0: random)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help=(
            "keep the node's queues and messages in DIR across restarts (default: a "
            "temporary directory, deleted when the node stops)"
        ),
    )
    parser.add_argument("--startup-timeout", type=float, default=60.0, metavar="SECONDS")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def _request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    # The broker has its own session, so Ctrl-C reaches only us and we stop it in order.
    previous = {sig: signal.signal(sig, _request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if args.port is None:
            port = free_ports(1, preferred=5672)[0]
        else:
            port = args.port or free_ports(1)[0]
        node = RabbitMQNode(amqp_port=port, data_dir=args.data_dir)
        try:
            node.start_broker(args.startup_timeout)
            print(f"RabbitMQ node {node.node_name} ready in {node.base_dir}", file=sys.stderr)
            if node.data_dir is None:
                print(
                    "Its data (queued jobs, dead letters) is thrown away when it stops; "
                    "keep it with --data-dir DIR.",
                    file=sys.stderr,
                )
            else:
                print(f"Its data is kept in {node.data_dir}.", file=sys.stderr)
            print(node.url, flush=True)
            while not stop.wait(0.5):
                if not node.is_running:
                    print(f"RabbitMQ node died\n{node.log_tail()}", file=sys.stderr)
                    return 1
        finally:
            node.close()
    except (RabbitMQNotInstalledError, RabbitMQStartError) as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
