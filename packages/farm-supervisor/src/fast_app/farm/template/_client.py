"""The supervisor's side of the worker template: start it, fork workers, restart it.

``WorkerTemplate`` starts the template process, asks it to fork each worker, and hands
back a ``ForkedWorker`` (or ``None``: the caller then starts a fresh interpreter, as it
does whenever the template is not ready, so that scale-up never waits for it). Only the
first spawns wait, for the first template's imports, which a fresh interpreter would
have to do too.

The first template is the one ``fast-app work`` forked from the supervisor before its
event loop started (``_prefork``), when there is one: it shares the supervisor's
imported pages. Otherwise, and for every restart, the template is a fresh interpreter
(``python -m fast_app.farm.template``), which does not share them: by then the
supervisor runs an event loop and threads, and forking it would be unsafe.

A template that dies is restarted after a delay (``restart_delay``), said once per
episode; its workers keep running and are watched to their end (``_orphans``). One whose
application modules cannot be imported, or that finds threads running after its
imports, is not restarted: said once, and workers start fresh from then on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from fast_app.farm.messages import Refusals
from fast_app.farm.template._link import TemplateLink
from fast_app.farm.template._orphans import (
    become_subreaper,
    reap_strays,
    stop_being_subreaper,
    wait_for_orphan,
)
from fast_app.farm.template._prefork import PreforkedTemplate, take_preforked
from fast_app.farm.template._process import ForkedTemplate, TemplateProcess
from fast_app.farm.template.handle import ForkedWorker
from fast_app.farm.template.messages import (
    TEMPLATE_EXIT_IMPORT_FAILED,
    TEMPLATE_EXIT_THREADS,
    Exited,
    ImportFailed,
    Ready,
    Spawned,
    SpawnFailed,
    SpawnRequest,
    TemplateMessage,
    ThreadsRunning,
)

__all__ = ["EventRecorder", "TemplateState", "WorkerTemplate", "restart_delay"]

logger = logging.getLogger("fast_app.farm.supervisor")

#: ``starting`` (importing), ``ready``, ``down`` (waiting to restart), ``unusable`` (it
#: cannot import the application or finds threads: never restarted), ``closed``.
TemplateState = Literal["starting", "ready", "down", "unusable", "closed"]

_FIRST_RESTART_S = 1.0
_MAX_RESTART_S = 30.0
_STABLE_S = 60.0  # a template that ran this long did not die of a crash loop
_REPLY_TIMEOUT_S = 5.0
_STOP_TIMEOUT_S = 5.0
_STRAYS_EVERY_S = 5.0


def restart_delay(previous_s: float | None, ran_s: float) -> float:
    """How long to wait before restarting a template that died after ``ran_s``.

    Args:
        previous_s: the delay before the previous restart (``None``: none yet).
        ran_s: how long the template that died ran.
    """
    if previous_s is None or ran_s >= _STABLE_S:
        return _FIRST_RESTART_S
    return min(_MAX_RESTART_S, previous_s * 2)


class EventRecorder(Protocol):
    """Where the template's lifecycle is told (the supervisor's ``EventLog``)."""

    def record(self, level: int, kind: str, message: str, *args: object) -> None:
        """Log ``message % args`` at ``level``, as an event of ``kind``."""
        ...


@dataclass(eq=False)
class _Pending:
    reply: asyncio.Future[ForkedWorker | None]
    stdout: asyncio.StreamReader | None
    transport: asyncio.BaseTransport | None


@dataclass(eq=False)
class _Generation:
    """One template process, and the workers it forked."""

    process: TemplateProcess
    link: TemplateLink
    started_at: float
    forked_from_supervisor: bool = False
    output: asyncio.BaseTransport | None = None  # its output pipe's, when it is ours
    ready: bool = False
    unusable: bool = False
    pending: dict[str, _Pending] = field(default_factory=dict[str, _Pending])
    forked: dict[int, ForkedWorker] = field(default_factory=dict[int, ForkedWorker])


class WorkerTemplate:
    """The preloaded process that workers are forked from (``FARM_WORKER_START=template``).

    Args:
        imports: the application's modules (``FARM_IMPORTS``).
        environment: the template's environment (a worker's, without its own ids).
        events: where its start, death and failures are told.
        refusals: where its packets that do not decode are counted.
        output: receives its output lines as ``("template", line)``; ``None``: it writes
            to the supervisor's stdout and stderr.
        first_wait_s: how long the first spawns wait for the first template.
    """

    def __init__(
        self,
        *,
        imports: Sequence[str],
        environment: Callable[[], dict[str, str]],
        events: EventRecorder,
        refusals: Refusals,
        output: Callable[[str, str], None] | None = None,
        first_wait_s: float = 15.0,
    ) -> None:
        self._imports = tuple(imports)
        self._environment = environment
        self._events = events
        self._refusals = refusals
        self._output = output
        self._first_wait_s = first_wait_s
        self.state: TemplateState = "starting"
        self._generation: _Generation | None = None
        self._settled = asyncio.Event()  # the first template is ready or failed
        self._first_wait_until = 0.0  # the first spawns wait for it until then
        self._restart_s: float | None = None
        self._down_since: float | None = None  # an episode of deaths, said once
        self._subreaper = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._adopted: dict[int, ForkedWorker] = {}
        self._strays: set[int] = set()

    @property
    def pid(self) -> int | None:
        """The running template's process id."""
        generation = self._generation
        return None if generation is None else generation.process.pid

    async def start(self) -> None:
        """Start the template (it imports in the background; ``spawn`` uses it once ready)."""
        if sys.platform != "linux":
            self._unusable(
                logging.WARNING,
                "the worker template needs Linux; workers start as fresh interpreters "
                "(FARM_WORKER_START=fresh says so)",
            )
            return
        self._first_wait_until = time.monotonic() + self._first_wait_s
        self._subreaper = become_subreaper()
        if self._subreaper:
            self._keep(self._reap_strays())
        preforked = take_preforked(imports=self._imports, captured=self._output is not None)
        try:
            if preforked is not None:
                await self._adopt_preforked(preforked)
            else:
                await self._launch()
        except OSError as error:
            self._unusable(
                logging.ERROR,
                "the worker template could not be started (%s): workers start as fresh "
                "interpreters",
                error,
            )

    async def spawn(
        self, worker_id: str, environment: dict[str, str], link_fd: int, *, captured: bool
    ) -> ForkedWorker | None:
        """Fork a worker; ``None`` when the template cannot (start a fresh one then).

        Args:
            worker_id: its name.
            environment: its environment, without ``FARM_WORKER_ID`` and
                ``FARM_SUPERVISOR_FD`` (the child sets them).
            link_fd: its end of its link socket (the template gets a copy).
            captured: pipe its stdout and stderr to ``ForkedWorker.stdout``.
        """
        wait_s = self._first_wait_until - time.monotonic()
        if not self._settled.is_set() and wait_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), wait_s)
        generation = self._generation
        if self.state != "ready" or generation is None or worker_id in generation.pending:
            return None
        loop = asyncio.get_running_loop()
        stdout, transport, output_write = None, None, None
        if captured:
            output_read, output_write = os.pipe()
            stdout = asyncio.StreamReader(loop=loop)
            transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(stdout), os.fdopen(output_read, "rb", 0)
            )
        pending = _Pending(loop.create_future(), stdout, transport)
        request = SpawnRequest(
            worker_id=worker_id,
            environment={os.fsencode(k): os.fsencode(v) for k, v in environment.items()},
            captured=captured,
        )
        fds = [link_fd] if output_write is None else [link_fd, output_write]
        try:
            generation.link.send_spawn(request, fds)
        except (OSError, ValueError) as error:
            logger.warning("the worker template could not take a spawn request: %s", error)
            if transport is not None:
                transport.close()
            return None
        finally:
            if output_write is not None:
                os.close(output_write)  # the template has its copy
        generation.pending[worker_id] = pending
        try:
            worker = await asyncio.wait_for(asyncio.shield(pending.reply), _REPLY_TIMEOUT_S)
        except TimeoutError:
            logger.warning("the worker template did not answer in %gs", _REPLY_TIMEOUT_S)
            worker = None
        finally:
            generation.pending.pop(worker_id, None)
        if worker is None and transport is not None:
            transport.close()
        return worker

    async def close(self) -> None:
        """Stop the template (its children, if any, run on) and stop watching."""
        self.state = "closed"
        self._settled.set()
        generation = self._generation
        if generation is not None:
            generation.link.close()  # the template exits at the end of its socket
            try:
                await asyncio.wait_for(asyncio.shield(generation.process.wait()), _STOP_TIMEOUT_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    generation.process.kill()
                await generation.process.wait()
            if generation.output is not None:
                generation.output.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=1)
        if self._subreaper:
            stop_being_subreaper()
            self._subreaper = False

    # -- the template process ------------------------------------------------------

    async def _launch(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        piped = asyncio.subprocess.PIPE if self._output is not None else None
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "fast_app.farm.template",
                "--control-fd",
                str(theirs.fileno()),
                "--imports",
                ",".join(self._imports),
                env=self._environment(),
                pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=piped,
                stderr=asyncio.subprocess.STDOUT if piped is not None else None,
                # Like a worker: a Ctrl-C on the terminal is the supervisor's alone.
                start_new_session=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        generation = _Generation(
            process, TemplateLink(ours, refusals=self._refusals), time.monotonic()
        )
        self._begin(generation)
        if self._output is not None and process.stdout is not None:
            self._keep(self._forward(process.stdout, self._output))

    async def _adopt_preforked(self, preforked: PreforkedTemplate) -> None:
        """Make the template forked before the loop started the first generation."""
        generation = _Generation(
            ForkedTemplate(preforked.pid),
            TemplateLink(preforked.control, refusals=self._refusals),
            preforked.forked_at,
            forked_from_supervisor=True,
        )
        self._begin(generation)
        if preforked.output is not None:
            loop = asyncio.get_running_loop()
            stdout = asyncio.StreamReader(loop=loop)
            generation.output, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(stdout), os.fdopen(preforked.output, "rb", 0)
            )
            if self._output is not None:
                self._keep(self._forward(stdout, self._output))

    def _begin(self, generation: _Generation) -> None:
        """Listen to a new template and watch it: the current generation."""
        self.state = "starting"
        generation.link.start(
            on_message=lambda message: self._heard(generation, message),
            on_closed=lambda: self._link_closed(generation),
        )
        self._generation = generation
        self._keep(self._watch(generation))

    def _heard(self, generation: _Generation, message: TemplateMessage) -> None:
        match message:
            case Spawned(worker_id=worker_id, pid=pid):
                pending = generation.pending.pop(worker_id, None)
                if pending is None or pending.reply.done():
                    # Asked for, then given up on (too slow): its link is closed already,
                    # but it must not run unwatched.
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    return
                worker = ForkedWorker(pid, pending.stdout, pending.transport)
                generation.forked[pid] = worker
                pending.reply.set_result(worker)
            case Exited(pid=pid, returncode=code):
                ended = generation.forked.pop(pid, None)
                if ended is not None:
                    ended.exited(code)
            case SpawnFailed(worker_id=worker_id, error=error):
                logger.warning("the worker template could not fork %s: %s", worker_id, error)
                pending = None if worker_id is None else generation.pending.pop(worker_id, None)
                if pending is not None and not pending.reply.done():
                    pending.reply.set_result(None)
            case Ready(pid=pid, import_s=import_s, modules=modules):
                if generation is not self._generation or generation.ready:
                    return
                generation.ready = True
                self.state = "ready"
                self._settled.set()
                if self._down_since is None:
                    # A log line, not an event: the routine start, not news for a dashboard.
                    logger.info(
                        "worker template ready (pid %d, %s, %d modules imported in %.2fs): "
                        "workers are forked from it",
                        pid,
                        "forked from the supervisor"
                        if generation.forked_from_supervisor
                        else "a fresh interpreter",
                        modules,
                        import_s,
                    )
                else:
                    self._events.record(
                        logging.INFO,
                        "template_ready",
                        "worker template restarted (pid %d) after %.1fs down: workers are "
                        "forked from it again",
                        pid,
                        time.monotonic() - self._down_since,
                    )
                    self._down_since = None
            case ImportFailed(module=module, error=error):
                generation.unusable = True
                self._unusable(
                    logging.ERROR,
                    "the worker template cannot import the application's module %s: %s; "
                    "workers start as fresh interpreters",
                    module,
                    error,
                )
            case ThreadsRunning(count=count, names=names):
                generation.unusable = True
                self._unusable(
                    logging.WARNING,
                    "the worker template found %d threads running after importing the "
                    "application (%s): forking it is unsafe, so workers start as fresh "
                    "interpreters (FARM_WORKER_START=fresh skips the template)",
                    count,
                    ", ".join(names),
                )

    def _link_closed(self, generation: _Generation) -> None:
        # The template is exiting: no more requests. Its workers are adopted once it has
        # been reaped (only then are they re-parented to this process).
        if self._generation is generation and self.state in ("starting", "ready"):
            self.state = "down"
        for pending in generation.pending.values():
            if not pending.reply.done():
                pending.reply.set_result(None)

    async def _watch(self, generation: _Generation) -> None:
        code = await generation.process.wait()
        generation.link.close()
        self._link_closed(generation)
        for pid, worker in generation.forked.items():
            self._adopt(pid, worker)
        generation.forked.clear()
        if self.state in ("closed", "unusable") or generation is not self._generation:
            return
        if generation.unusable or code in (TEMPLATE_EXIT_IMPORT_FAILED, TEMPLATE_EXIT_THREADS):
            self._unusable(
                logging.ERROR,
                "the worker template could not start (%s): workers start as fresh interpreters",
                _described(code),
            )
            return
        ran_s = time.monotonic() - generation.started_at
        self._restart_s = restart_delay(self._restart_s, ran_s)
        self._settled.set()  # no spawn waits for a restart
        if self._down_since is None:
            self._down_since = time.monotonic()
            self._events.record(
                logging.ERROR,
                "template_died",
                "worker template (pid %d) died (%s); its workers keep running; restarting it "
                "in %.1fs, fresh interpreters meanwhile",
                generation.process.pid,
                _described(code),
                self._restart_s,
            )
        else:
            logger.debug("worker template died again (%s)", _described(code))
        self._generation = None
        self.state = "down"
        await asyncio.sleep(self._restart_s)
        if self.state == "down":
            try:
                await self._launch()
            except Exception:
                logger.exception("restarting the worker template failed; workers start fresh")
                self.state = "unusable"

    def _adopt(self, pid: int, worker: ForkedWorker) -> None:
        if worker.returncode is not None:
            return
        self._adopted[pid] = worker

        async def watch() -> None:
            try:
                worker.exited(await wait_for_orphan(pid))
            finally:
                del self._adopted[pid]

        self._keep(watch())

    def _unusable(self, level: int, message: str, *args: object) -> None:
        """Give up on the template for good, saying why once."""
        if self.state in ("unusable", "closed"):
            return
        self.state = "unusable"
        self._settled.set()
        self._events.record(level, "template_unusable", message, *args)

    # -- housekeeping --------------------------------------------------------------

    async def _reap_strays(self) -> None:
        while True:
            await asyncio.sleep(_STRAYS_EVERY_S)
            known = set(self._adopted)
            if self._generation is not None:
                known.add(self._generation.process.pid)
            self._strays = reap_strays(self._strays, known)

    async def _forward(
        self, stream: asyncio.StreamReader, output: Callable[[str, str], None]
    ) -> None:
        while True:
            try:
                line = await stream.readline()
            except ValueError:
                continue
            except ConnectionError:
                return
            if not line:
                return
            with contextlib.suppress(Exception):  # the sink is the dashboard's
                output("template", line.decode("utf-8", "replace").rstrip())

    def _keep(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _described(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
