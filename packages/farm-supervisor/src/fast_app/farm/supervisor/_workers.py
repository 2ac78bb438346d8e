"""Worker processes as the supervisor sees them: environment, spawn, heartbeats, commands, ends."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import msgspec

from fast_app.core.queue.settings import QueueSettings
from fast_app.farm.messages import (
    HEARTBEAT_MAX_BYTES,
    Drain,
    EndedJob,
    Heartbeat,
    InFlightEntry,
    Refusals,
    WaitingEntry,
    WorkerCommand,
    decode_heartbeat,
    encode_line,
)
from fast_app.farm.messages.job_figures import OTHER_FUNCTIONS
from fast_app.farm.run_tallies import RunTally
from fast_app.farm.settings import FarmSettings
from fast_app.farm.template import EXIT_UNKNOWN, WorkerHandle, WorkerTemplate

__all__ = [
    "OutputSink",
    "WorkerProcess",
    "describe_exit",
    "template_environment",
    "worker_environment",
]

#: Receives each line a worker writes to stdout or stderr: ``(worker_id, line)``.
OutputSink = Callable[[str, str], None]

_ENDED_KEPT = 32  # jobs ended, between two snapshots (the supervisor takes them)
_WAITS_KEPT = 4096  # queue waits between two ticks (the supervisor takes them)
_FUNCTIONS_KEPT = 1024  # functions with runs between two ticks (likewise)

logger = logging.getLogger("fast_app.farm.supervisor")

_EXIT_REASONS = {
    0: "stopped",
    2: "invalid settings",
    3: "ended itself at a job's hard timeout",
    4: "the application failed to import or start",
}


def describe_exit(code: int) -> str:
    """Exit code or signal, in words."""
    if code == EXIT_UNKNOWN:
        return "exit status unknown (its worker template died before reporting it)"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exit code {code} ({_EXIT_REASONS.get(code, 'crashed')})"


_NOT_PASSED_ON = frozenset(
    {"worker_id", "supervisor_fd", "supervisor_id", "tombstones", "queues", "worker_queue"}
)


def worker_environment(
    farm: FarmSettings,
    queue: QueueSettings,
    tombstones: Iterable[str],
    worker_queue: str | None = None,
) -> dict[str, str]:
    """The environment a new worker starts with: this one, plus the supervisor's settings.

    Args:
        farm: the supervisor's farm settings, passed on as ``FARM_*`` variables.
        queue: its queue settings (queue name, broker).
        tombstones: jobs killed at their hard timeout, as ``job_id@worker_id``.
        worker_queue: the queue the worker consumes (``None``: ``QUEUE_NAME``).
    """
    environment = dict(os.environ)
    environment.pop("FARM_QUEUES", None)
    environment.pop("FARM_WORKER_QUEUE", None)
    for name, value in farm.model_dump().items():
        if name in _NOT_PASSED_ON or value is None:
            continue
        text = (
            ",".join(value)
            if isinstance(value, tuple)
            else str(value).lower()
            if isinstance(value, bool)
            else str(value)
        )
        environment[f"FARM_{name.upper()}"] = text
    environment["QUEUE_NAME"] = queue.name
    # The broker this supervisor was given, even when not through the environment
    # (a supervisor started in code, as the dashboard's tests do).
    environment["RABBITMQ_URL"] = queue.rabbitmq_url.get_secret_value()
    environment["FARM_TOMBSTONES"] = ",".join(tombstones)
    if worker_queue is not None:
        environment["FARM_WORKER_QUEUE"] = worker_queue
    return environment


def template_environment(farm: FarmSettings, queue: QueueSettings) -> dict[str, str]:
    """The worker template's environment: a worker's, without its own ids and queue.

    Args:
        farm: the supervisor's farm settings.
        queue: its queue settings.
    """
    return worker_environment(farm, queue, ())


@dataclass(eq=False)
class WorkerProcess:
    """One worker process of this supervisor.

    Attributes:
        worker_id: its name (``<supervisor>-w<N>``).
        process: the process: a fresh interpreter (asyncio's ``Process``) or a child of
            the worker template (``ForkedWorker``).
        spawned_at: monotonic time of the spawn.
        heartbeat: its latest heartbeat, ``None`` until the first one.
        last_seen: monotonic time of its latest line on the link (or of the spawn): a
            heartbeat that does not decode still proves that it is alive.
        draining: the supervisor asked it to drain (its exit is expected).
        kill_reason: why the supervisor killed it, if it did.
        ended: jobs it reported ended (described), not yet taken by the supervisor.
        waits: queue waits of the jobs it reported started, not yet taken.
        function_runs: each function's runs it reported ended, not yet taken.
        queue: the queue it consumes.
    """

    worker_id: str
    process: WorkerHandle
    spawned_at: float
    _socket: socket.socket
    heartbeat: Heartbeat | None = None
    last_seen: float = 0.0
    draining: bool = False
    drain_deadline: float | None = None
    kill_reason: str | None = None
    exit_code: int | None = None
    ended: collections.deque[EndedJob] = field(
        default_factory=lambda: collections.deque(maxlen=_ENDED_KEPT)
    )
    refusals: Refusals = field(default_factory=lambda: Refusals(logger))
    waits: list[float] = field(default_factory=list)
    function_runs: dict[str, RunTally] = field(default_factory=dict)
    queue: str | None = None
    _writer: asyncio.StreamWriter | None = None
    _reader_task: asyncio.Task[None] | None = None
    _output_task: asyncio.Task[None] | None = None
    _completed_marks: list[tuple[float, int]] = field(default_factory=list)

    @classmethod
    async def spawn(
        cls,
        worker_id: str,
        environment: dict[str, str],
        output: OutputSink | None = None,
        refusals: Refusals | None = None,
        template: WorkerTemplate | None = None,
    ) -> WorkerProcess:
        """Start ``fast-app worker``, linked by a socket pair: forked from ``template``
        when it is ready, else as a fresh interpreter.

        Args:
            worker_id: its name.
            environment: its environment variables (settings).
            output: receives its stdout and stderr line by line; ``None``: it writes to
                the supervisor's own (a dashboard owns the terminal, so it passes one).
            refusals: where heartbeats that do not decode are counted.
            template: the worker template to fork it from (``None``: always fresh).
        """
        started = None
        if template is not None:
            started = await _fork(template, worker_id, environment, captured=output is not None)
        if started is None:
            started = await _start_fresh(worker_id, environment, captured=output is not None)
        process, ours = started
        now = time.monotonic()
        worker = cls(worker_id, process, now, ours, last_seen=now)
        if refusals is not None:
            worker.refusals = refusals
        reader, worker._writer = await asyncio.open_unix_connection(
            sock=ours, limit=HEARTBEAT_MAX_BYTES
        )
        worker._reader_task = asyncio.create_task(worker._read_heartbeats(reader))
        if output is not None and process.stdout is not None:
            worker._output_task = asyncio.create_task(
                _forward_output(worker_id, process.stdout, output)
            )
        return worker

    @property
    def pid(self) -> int:
        """Process id."""
        return self.process.pid

    @property
    def alive(self) -> bool:
        """Whether the process has not exited yet."""
        return self.process.returncode is None

    @property
    def state(self) -> str:
        """The state it last reported (``starting`` before its first heartbeat)."""
        if self.draining and self.alive:
            return "draining"
        return "starting" if self.heartbeat is None else self.heartbeat.state

    @property
    def in_flight(self) -> list[InFlightEntry]:
        """Jobs it last reported in flight (those it listed: see ``in_flight_count``)."""
        return [] if self.heartbeat is None else self.heartbeat.in_flight

    @property
    def in_flight_count(self) -> int:
        """How many jobs it last reported in flight."""
        return 0 if self.heartbeat is None else self.heartbeat.in_flight_count

    @property
    def waiting(self) -> int:
        """How many deliveries it last reported waiting for a slot (not in flight)."""
        return 0 if self.heartbeat is None else self.heartbeat.waiting

    @property
    def waiting_jobs(self) -> list[WaitingEntry]:
        """The first of those in line, as it listed them (see ``waiting``)."""
        return [] if self.heartbeat is None else self.heartbeat.waiting_jobs

    def completed(self) -> int:
        """Jobs it ended so far (succeeded, failed, dead-lettered), from its counters."""
        if self.heartbeat is None:
            return 0
        counters = self.heartbeat.counters
        return counters.succeeded + counters.failed

    def rate(self, window_s: float = 10.0) -> float | None:
        """Jobs per second it completed over the last ``window_s``, from heartbeats."""
        marks = self._completed_marks
        if len(marks) < 2:
            return None
        (first_at, first), (last_at, last) = marks[0], marks[-1]
        if last_at - first_at <= 0:
            return None
        return (last - first) / (last_at - first_at)

    async def _read_heartbeats(self, reader: asyncio.StreamReader) -> None:
        # The link is an edge too: a worker's heartbeat carries what its jobs hold.
        # Nothing here may end the reader but the end of the link (its silence would
        # make the worker look hung, and it would be killed).
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # over the limit: asyncio dropped it; the stream goes on
                self.last_seen = time.monotonic()
                self.refusals.refuse(
                    "heartbeat",
                    "oversized",
                    f"worker {self.worker_id}: over {HEARTBEAT_MAX_BYTES} bytes",
                )
                continue
            except ConnectionError:
                return
            if not line:
                return
            self.last_seen = time.monotonic()
            try:
                beat = decode_heartbeat(line)
            except msgspec.DecodeError as error:
                self.refusals.refuse("heartbeat", "malformed", f"worker {self.worker_id}: {error}")
                continue
            self.ended.extend(beat.ended)
            if len(self.waits) < _WAITS_KEPT:
                self.waits.extend(beat.waits)
            for runs in beat.functions:
                name = runs.function
                if name not in self.function_runs and len(self.function_runs) >= _FUNCTIONS_KEPT:
                    name = OTHER_FUNCTIONS  # taken every tick: only a flood comes here
                tally = self.function_runs.get(name)
                if tally is None:
                    tally = self.function_runs[name] = RunTally()
                tally.merge(runs)
            self.heartbeat = beat
            self._completed_marks.append((self.last_seen, self.completed()))
            cutoff = self.last_seen - 10.0
            while len(self._completed_marks) > 2 and self._completed_marks[0][0] < cutoff:
                self._completed_marks.pop(0)

    async def send(self, command: WorkerCommand) -> None:
        """Send a command (drain, pause, resume, tombstone); ignored if the worker is gone."""
        writer = self._writer
        if writer is None or writer.is_closing() or not self.alive:
            return
        writer.write(encode_line(command))
        with contextlib.suppress(ConnectionError):
            await writer.drain()

    async def drain(self, grace_s: float) -> None:
        """Ask it to finish its jobs and exit; it is killed if still alive after ``grace_s``."""
        if self.draining:
            return
        self.draining = True
        self.drain_deadline = time.monotonic() + grace_s
        await self.send(Drain())

    def signal(self, signum: int) -> None:
        """Send a signal, if it still runs."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def kill(self, reason: str) -> None:
        """SIGKILL it, remembering why."""
        if self.alive:
            self.kill_reason = reason
            self.signal(signal.SIGKILL)

    async def wait(self) -> int:
        """Wait for the exit; close the link."""
        code = await self.process.wait()
        self.exit_code = code
        if self._reader_task is not None:
            # Its last heartbeat (with its last error) may still be unread: the reader
            # ends by itself at the end of the socket, which the exit has closed.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._reader_task), 1.0)
            self._reader_task.cancel()
        if self._output_task is not None:
            # Its last lines (why it exited) are worth the wait; its pipe closed with it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._output_task), 1.0)
            self._output_task.cancel()
        if self._writer is not None:
            self._writer.close()
        return code

    def take_function_runs(self) -> dict[str, RunTally]:
        """Each function's runs it reported ended since the last call."""
        runs, self.function_runs = self.function_runs, {}
        return runs

    def take_waits(self) -> list[float]:
        """The queue waits it reported since the last call."""
        waits, self.waits = self.waits, []
        return waits

    def take_ended(self) -> list[EndedJob]:
        """The jobs it reported ended since the last call, oldest first."""
        ended = list(self.ended)
        self.ended.clear()
        return ended


async def _fork(
    template: WorkerTemplate, worker_id: str, environment: dict[str, str], *, captured: bool
) -> tuple[WorkerHandle, socket.socket] | None:
    """A worker forked by the template, and our end of its link; ``None`` if it cannot."""
    ours, theirs = socket.socketpair()
    try:
        forked = await template.spawn(worker_id, environment, theirs.fileno(), captured=captured)
    finally:
        theirs.close()  # the template got its copy, and the child has it
    if forked is None:
        ours.close()
        return None
    return forked, ours


async def _start_fresh(
    worker_id: str, environment: dict[str, str], *, captured: bool
) -> tuple[WorkerHandle, socket.socket]:
    """A worker started as a fresh interpreter, and our end of its link."""
    ours, theirs = socket.socketpair()
    piped = asyncio.subprocess.PIPE if captured else None
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fast_app.farm",
            "worker",
            env={
                **environment,
                "FARM_WORKER_ID": worker_id,
                "FARM_SUPERVISOR_FD": str(theirs.fileno()),
            },
            pass_fds=(theirs.fileno(),),
            # Captured, it must not touch the terminal either: a dashboard reads it.
            stdin=asyncio.subprocess.DEVNULL if captured else None,
            stdout=piped,
            stderr=asyncio.subprocess.STDOUT if captured else None,
            # Its own session: a Ctrl-C on the terminal reaches the supervisor only,
            # which drains it (a second Ctrl-C: kills it). Were it in the terminal's
            # process group, it would hear the first Ctrl-C itself and then the
            # supervisor's drain as a second stop request, abandoning its jobs. It
            # still ends with its supervisor: it watches the link.
            start_new_session=True,
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()  # the child has its copy; ours must close for EOF to work
    return process, ours


async def _forward_output(worker_id: str, stream: asyncio.StreamReader, output: OutputSink) -> None:
    while True:
        try:
            line = await stream.readline()
        except ValueError:  # a line beyond the stream's limit: what it holds is lost
            continue
        except ConnectionError:
            return
        if not line:
            return
        try:
            output(worker_id, line.decode("utf-8", "replace").rstrip())
        except Exception:  # the sink is the dashboard's: never let it stop the reading
            logger.debug("the output sink failed", exc_info=True)
