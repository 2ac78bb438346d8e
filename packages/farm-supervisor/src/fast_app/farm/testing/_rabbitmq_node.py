"""Private, throwaway RabbitMQ nodes built from the installed ``rabbitmq-server``.

Each node gets its own temporary directory (data, logs, config, cookie, pid
file), its own free AMQP / Erlang-distribution / epmd ports and a unique node
name, so it never touches a system broker or another test node. Only the
standard library is used, so this module can be imported before any AMQP
client is installed.
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
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Final

# The Debian /usr/sbin/rabbitmq-server is a wrapper that su's to the
# "rabbitmq" user and cd's to /var/lib/rabbitmq, so the real script (the one
# next to rabbitmq-env) must be used instead.
_SCRIPT_DIRS: Final = ("/usr/lib/rabbitmq/bin", "/usr/local/lib/rabbitmq/bin", "/opt/rabbitmq/sbin")
_INSTALL_HINT: Final = (
    "RabbitMQ is not installed. Install it with `apt-get install -y rabbitmq-server` "
    "(or set RABBITMQ_URL to use an existing broker)."
)
_HOST: Final = "127.0.0.1"
_AMQP_HEADER: Final = b"AMQP\x00\x00\x09\x01"
_CONNECTION_START: Final = b"\x00\x0a\x00\x0a"  # class 10 (connection), method 10 (start)
_POLL_INTERVAL: Final = 0.05
_LOG_TAIL_LINES: Final = 40


class RabbitMQNotInstalledError(RuntimeError):
    """Raised when the ``rabbitmq-server`` scripts or ``epmd`` cannot be found."""


class RabbitMQStartError(RuntimeError):
    """Raised when a node does not start or accept AMQP connections in time."""


def _find_executables() -> tuple[Path, Path]:
    """Return the real ``rabbitmq-server`` script dir and the ``epmd`` binary."""
    candidates = [Path(d) for d in _SCRIPT_DIRS]
    if found := shutil.which("rabbitmq-server"):
        candidates.append(Path(found).resolve().parent)
    script_dir = next((d for d in candidates if (d / "rabbitmq-env").is_file()), None)
    epmd = shutil.which("epmd")
    if script_dir is None or epmd is None:
        raise RabbitMQNotInstalledError(_INSTALL_HINT)
    return script_dir, Path(epmd)


def _free_port(preferred: int | None = None) -> int:
    """Return ``preferred`` if it can be bound on loopback, else a kernel-chosen free port."""
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((_HOST, port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise OSError(
        "no free TCP port on 127.0.0.1"
    )  # pragma: no cover - bind(0) failing is fatal anyway


def _accepts_tcp(port: int) -> bool:
    try:
        with socket.create_connection((_HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


def _speaks_amqp(port: int) -> bool:
    """Return True if the port answers the AMQP 0-9-1 header with Connection.Start."""
    data = b""
    try:
        with socket.create_connection((_HOST, port), timeout=1.0) as sock:
            sock.sendall(_AMQP_HEADER)
            while len(data) < 11:
                chunk = sock.recv(11 - len(data))
                if not chunk:
                    return False
                data += chunk
    except OSError:
        return False
    return data[0] == 1 and data[7:11] == _CONNECTION_START


class RabbitMQNode:
    """One private RabbitMQ node whose broker can be stopped and restarted.

    The class is mutable rather than a frozen dataclass because it owns live
    processes: ``start_broker()``/``stop_broker()`` may be called repeatedly and
    always reuse the same ports, node name and data directory, so durable
    queues and persistent messages survive a restart and clients can reconnect
    to the same URL. ``close()`` stops everything and deletes all files. The
    identity attributes (``url``, ``amqp_port``, ``node_name``, ``base_dir``,
    ``dist_port``, ``epmd_port``) never change. Not thread-safe.

    Attributes:
        url: AMQP URL with the default ``guest`` user, e.g. ``amqp://guest:guest@127.0.0.1:PORT/``.
        amqp_port: AMQP listener port on 127.0.0.1.
        node_name: Erlang node name, e.g. ``fastapp-1a2b3c4d@localhost``.
        base_dir: Temporary directory holding every file of this node.
        dist_port: Erlang distribution port (used by ``rabbitmqctl``).
        epmd_port: Port of the private epmd owned by this node.
    """

    def __init__(
        self,
        *,
        amqp_port: int | None = None,
        consumer_timeout_ms: int | None = None,
        extra_config: Mapping[str, str] | None = None,
    ) -> None:
        """Prepare (but do not start) a node.

        Args:
            amqp_port: AMQP port to listen on; a free port when None.
            consumer_timeout_ms: Broker ``consumer_timeout`` (ms) if given.
            extra_config: Extra ``rabbitmq.conf`` keys; they override the defaults.

        Raises:
            RabbitMQNotInstalledError: ``rabbitmq-server`` or ``epmd`` is missing.
        """
        self._script_dir, self._epmd_bin = _find_executables()
        self.amqp_port: Final = amqp_port if amqp_port is not None else _free_port()
        self.dist_port: Final = _free_port()
        self.epmd_port: Final = _free_port()
        # Short names with the literal host "localhost" avoid depending on the
        # container's hostname being resolvable.
        self.node_name: Final = f"fastapp-{secrets.token_hex(4)}@localhost"
        self.url: Final = f"amqp://guest:guest@{_HOST}:{self.amqp_port}/"
        self.base_dir: Final = Path(tempfile.mkdtemp(prefix="fastapp-rabbitmq-"))
        self._server: subprocess.Popen[bytes] | None = None
        self._epmd: subprocess.Popen[bytes] | None = None
        self._closed = False
        atexit.register(self.close)  # a forgotten close() must not leak an Erlang VM
        try:
            self._write_files(consumer_timeout_ms, extra_config or {})
        except BaseException:
            self.close()
            raise

    def _write_files(self, consumer_timeout_ms: int | None, extra: Mapping[str, str]) -> None:
        base = self.base_dir
        for sub in ("home", "mnesia", "log"):
            (base / sub).mkdir()
        # Pre-creating the cookie avoids a race between the throwaway
        # "epmd-starter" VM rabbit spawns and the node itself creating it.
        cookie = base / "home" / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16).upper())
        cookie.chmod(0o400)  # Erlang refuses cookies readable by others
        (base / "enabled_plugins").write_text("[].\n")
        (base / "rabbitmq-env.conf").write_text("")
        config = {
            "listeners.tcp.default": f"{_HOST}:{self.amqp_port}",
            # Small CI disks would otherwise raise a disk alarm that blocks publishers.
            "disk_free_limit.absolute": "1MB",
            "log.console": "false",  # stdout is captured anyway; avoid writing logs twice
            "log.file.level": "info",
        }
        if consumer_timeout_ms is not None:
            config["consumer_timeout"] = str(int(consumer_timeout_ms))
        config.update(extra)
        (base / "rabbitmq.conf").write_text("".join(f"{k} = {v}\n" for k, v in config.items()))

    def _env(self) -> dict[str, str]:
        base = self.base_dir
        # Inherited RABBITMQ_*/ERL_* variables (e.g. ERL_FLAGS, RABBITMQ_NODENAME)
        # would silently reconfigure the node, so they are dropped.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            HOME=str(base / "home"),
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS=_HOST,
            RABBITMQ_NODENAME=self.node_name,
            RABBITMQ_USE_LONGNAME="false",
            RABBITMQ_NODE_IP_ADDRESS=_HOST,
            RABBITMQ_NODE_PORT=str(self.amqp_port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
            RABBITMQ_LOG_BASE=str(base / "log"),
            RABBITMQ_PID_FILE=str(base / "rabbitmq.pid"),
            RABBITMQ_CONFIG_FILE=str(base / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
            # Point the remaining /etc/rabbitmq defaults at (empty or missing)
            # private files so a host-wide configuration is never picked up.
            RABBITMQ_CONF_ENV_FILE=str(base / "rabbitmq-env.conf"),
            RABBITMQ_CONFIG_FILES=str(base / "conf.d" / "*.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(base / "advanced.config"),
            # Keep distribution off external interfaces.
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        return env

    @property
    def is_running(self) -> bool:
        """Whether the broker process is currently alive."""
        return self._server is not None and self._server.poll() is None

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """Return the last ``lines`` lines of every log file of this node."""
        files = [self.base_dir / "stdout.log"] + sorted((self.base_dir / "log").glob("*.log"))
        parts = []
        for path in files:
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"==> {path} <==\n" + "\n".join(text))
        return "\n".join(parts) or "(no log output)"

    def _fail(self, reason: str) -> RabbitMQStartError:
        tail = self.log_tail()  # read before stop_broker() so nothing is lost
        self.stop_broker(timeout=5.0)
        return RabbitMQStartError(f"RabbitMQ node {self.node_name}: {reason}\n{tail}")

    def _start_epmd(self, deadline: float) -> None:
        # Our own foreground epmd (instead of the "epmd -daemon" Erlang would
        # spawn) can be killed reliably: the daemon re-parents itself to init.
        if self._epmd is not None and self._epmd.poll() is None:
            return
        with open(self.base_dir / "epmd.log", "ab") as out:
            self._epmd = subprocess.Popen(
                [str(self._epmd_bin), "-port", str(self.epmd_port), "-address", _HOST],
                env=self._env(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        while not _accepts_tcp(self.epmd_port):
            if self._epmd.poll() is not None or time.monotonic() > deadline:
                raise self._fail(f"epmd did not listen on port {self.epmd_port}")
            time.sleep(_POLL_INTERVAL)

    def start_broker(self, timeout: float = 60.0) -> None:
        """Start the broker (again) and wait until it speaks AMQP.

        A no-op if it is already running. Restarts reuse the same ports, node
        name and data, so durable state survives.

        Args:
            timeout: Seconds to wait for the broker to accept AMQP connections.

        Raises:
            RabbitMQStartError: The node exited or was not ready in time; the
                message includes the tail of its logs.
        """
        if self._closed:
            raise RuntimeError("RabbitMQNode is closed")
        if self.is_running:
            return
        deadline = time.monotonic() + timeout
        self._start_epmd(deadline)
        with open(self.base_dir / "stdout.log", "ab") as out:
            self._server = subprocess.Popen(
                [str(self._script_dir / "rabbitmq-server")],
                cwd=self.base_dir, env=self._env(), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,  # own group: killpg reaches beam
            )  # fmt: skip
        while not _speaks_amqp(self.amqp_port):
            if self._server.poll() is not None:
                raise self._fail(f"exited early with status {self._server.returncode}")
            if time.monotonic() > deadline:
                raise self._fail(
                    f"not accepting AMQP connections on port {self.amqp_port} after {timeout}s"
                )
            time.sleep(_POLL_INTERVAL)

    def stop_broker(self, timeout: float = 15.0, *, graceful: bool = True) -> None:
        """Stop the broker but keep its data; idempotent.

        Args:
            timeout: Seconds to wait for a graceful shutdown before SIGKILL.
            graceful: False kills the broker immediately (simulates a crash).
        """
        proc, self._server = self._server, None
        if proc is None:
            return
        if graceful and proc.poll() is None:
            # rabbitmq-server traps SIGTERM and rabbit handles it like
            # `rabbitmqctl stop`, without booting a second Erlang VM for the CLI.
            _signal_group(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        # Sweeps beam.smp even if the wrapper shell already exited; the helper
        # processes beam started in their own sessions exit when its pipes close.
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()

    def rabbitmqctl(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run ``rabbitmqctl`` against this node (e.g. ``list_queues``).

        Args:
            *args: Command-line arguments after ``rabbitmqctl``.
            timeout: Seconds before the command is killed.

        Returns:
            The completed process with text stdout/stderr; the exit status is not checked.
        """
        env = self._env()
        # A fresh free port per call keeps concurrent CLIs from fighting over
        # the default 35672-35682 range.
        port = str(_free_port())
        env.update(RABBITMQ_CTL_DIST_PORT_MIN=port, RABBITMQ_CTL_DIST_PORT_MAX=port)
        cmd = [str(self._script_dir / "rabbitmqctl"), "-n", self.node_name, *args]
        return subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def close(self) -> None:
        """Stop the broker and epmd and delete every file of the node; idempotent."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        self.stop_broker()
        if self._epmd is not None:
            self._epmd.kill()
            self._epmd.wait()
            self._epmd = None
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running" if self.is_running else "stopped"
        return f"<RabbitMQNode {self.node_name} {self.url} {state}>"


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


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
        extra_config: Extra ``rabbitmq.conf`` keys (new-style format).

    Yields:
        The running node; it is stopped and its files removed on exit, even
        if the block raised.

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


def main(argv: Sequence[str] | None = None) -> int:
    """Run a node in the foreground until SIGINT/SIGTERM (``fast-app broker``).

    The AMQP URL is printed on stdout; details go to stderr.

    Args:
        argv: Command-line arguments; ``sys.argv[1:]`` when None.

    Returns:
        0 after a clean shutdown, 1 if the node failed to start or died.
    """
    parser = argparse.ArgumentParser(
        prog="fast-app broker", description="Run a private RabbitMQ node."
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="AMQP port (default: 5672 if free, else any free port)",
    )
    parser.add_argument(
        "--startup-timeout", type=float, default=60.0, help="seconds to wait for startup"
    )
    args = parser.parse_args(argv)

    stop = threading.Event()

    def _request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        node = RabbitMQNode(amqp_port=args.port if args.port is not None else _free_port(5672))
        try:
            node.start_broker(args.startup_timeout)
            print(f"RabbitMQ node {node.node_name} ready (data: {node.base_dir})", file=sys.stderr)
            print(node.url, flush=True)
            while not stop.wait(0.5):
                if not node.is_running:
                    print(f"RabbitMQ node died unexpectedly\n{node.log_tail()}", file=sys.stderr)
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
