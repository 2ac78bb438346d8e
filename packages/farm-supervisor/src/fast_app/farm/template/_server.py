"""The worker template process: imports once, then forks workers on request.

The first template is forked from the supervisor before its event loop starts
(``_prefork``); a restarted one is a fresh interpreter (``python -m
fast_app.farm.template --control-fd N --imports app.jobs``). Either runs in a session
of its own, with its stdin on ``/dev/null`` and the supervisor's stdout and stderr (or
a pipe the supervisor reads), and then does the same (``run_template``): it imports the
worker's runtime and what it pulls in, then the application's modules; freezes the
garbage collector's view of all that, so that the children's collections do not write
to (and copy) the pages they share; and serves spawn requests. It has no event loop, no
thread and no socket but its control socket: forking it is safe. Each child becomes a
worker exactly as ``fast-app worker`` would, its settings read from the environment it
is given.

It reaps its children and reports each exit. It exits when its control socket closes
(the supervisor is gone); its children then keep running until their own link to the
supervisor closes too.
"""

from __future__ import annotations

import argparse
import array
import atexit
import contextlib
import gc
import importlib
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import NoReturn

import msgspec

from fast_app.farm.printable import printable
from fast_app.farm.template.messages import (
    REQUEST_MAX_BYTES,
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
    decode_spawn_request,
    encode,
)

__all__ = ["FRAMEWORK_MODULES", "finalize", "main", "run_template"]

#: What every worker imports before its first job: the runtime and its dependencies.
FRAMEWORK_MODULES = (
    "fast_app.farm.cli",
    "fast_app.farm.cli.worker",
    "fast_app.farm._logging",
    "fast_app.farm.worker",
    "fast_app.farm.worker.runtime",
    "fast_app.core.queue",
    "fast_app.core.queue.amqp",
    "aio_pika",
    "aiormq",
    "pydantic",
    "pydantic_settings",
    "msgspec",
    "opentelemetry.trace",
    "opentelemetry.context",
    "opentelemetry.propagate",
)

_LINE_WIDTH = 2_000
_MAX_FDS = 2  # the link socket, the output pipe
_EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the template; the exit code (0: the supervisor closed the control socket)."""
    parser = argparse.ArgumentParser(prog="python -m fast_app.farm.template")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--imports", default="")
    options = parser.parse_args(argv)
    try:
        control = socket.socket(fileno=options.control_fd)
    except OSError as error:
        print(f"fast-app worker template: no control socket: {error}", file=sys.stderr)
        return _EXIT_USAGE
    imports = [name.strip() for name in options.imports.split(",") if name.strip()]
    return run_template(control, imports)


def run_template(control: socket.socket, imports: Sequence[str]) -> int:
    """Import, check, freeze, then serve spawn requests on ``control``; the exit code.

    What the template does once it has its control socket, whether it was started as
    ``python -m fast_app.farm.template`` or forked from the supervisor.

    Args:
        control: the template's end of its control socket.
        imports: the application's modules (``FARM_IMPORTS``).
    """
    started = time.monotonic()
    for module in FRAMEWORK_MODULES:
        importlib.import_module(module)  # ours: a failure is a bug, its traceback says it
    failed = _import_application(imports)
    if failed is not None:
        return _say_and_exit(control, failed, TEMPLATE_EXIT_IMPORT_FAILED)
    if threading.active_count() > 1:
        names = [printable(t.name)[:100] for t in threading.enumerate()]
        threads = ThreadsRunning(count=threading.active_count(), names=names[:16])
        return _say_and_exit(control, threads, TEMPLATE_EXIT_THREADS)
    import_s = time.monotonic() - started
    # Everything imported so far lives as long as the process: out of the collector's
    # reach, a child's collections never touch (and so never copy) these shared pages.
    gc.collect()
    gc.freeze()
    return _Server(control).serve(
        Ready(pid=os.getpid(), import_s=import_s, modules=len(sys.modules))
    )


def _import_application(modules: Sequence[str]) -> ImportFailed | None:
    """Import the application's modules as a worker would; what failed, if one did."""
    from fast_app.farm.worker._app import load_application

    for module in modules:
        try:
            load_application((module,))
        except BaseException as error:  # an application's import may raise anything
            said = printable(f"{type(error).__name__}: {error}")[:_LINE_WIDTH]
            return ImportFailed(module=printable(module)[:_LINE_WIDTH], error=said)
    return None


def _say_and_exit(control: socket.socket, message: TemplateMessage, code: int) -> int:
    with contextlib.suppress(OSError):
        control.send(encode(message))
    return code


class _Server:
    """Serves spawn requests and reports exits until the control socket closes."""

    def __init__(self, control: socket.socket) -> None:
        self._control = control
        self._wakeup_read, self._wakeup_write = os.pipe()
        os.set_blocking(self._wakeup_read, False)
        os.set_blocking(self._wakeup_write, False)
        self._refused = 0

    def serve(self, ready: Ready) -> int:
        # A Python handler, only for the wakeup fd: the byte it writes wakes the poll.
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.set_wakeup_fd(self._wakeup_write)
        if not self._send(ready):
            return 0
        poll = select.poll()  # not epoll: no descriptor of its own for the children
        poll.register(self._control.fileno(), select.POLLIN)
        poll.register(self._wakeup_read, select.POLLIN)
        while True:
            for fd, _ in poll.poll():
                if fd == self._wakeup_read:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wakeup_read, 4096)
                elif not self._handle_request():
                    return 0
            if not self._reap():
                return 0

    def _handle_request(self) -> bool:
        """Serve one packet; ``False`` when the control socket closed."""
        fds = array.array("i")
        try:
            packet, ancillary, flags, _ = self._control.recvmsg(
                REQUEST_MAX_BYTES + 1, socket.CMSG_SPACE(_MAX_FDS * fds.itemsize)
            )
        except InterruptedError:
            return True
        except OSError:
            return False
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
        if not packet and not ancillary:
            return False
        try:
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                raise ValueError("oversized request")
            request = decode_spawn_request(packet)
            expected = 2 if request.captured else 1
            if len(fds) != expected:
                raise ValueError(f"{len(fds)} descriptors attached, {expected} expected")
            _check_environment(request)
        except (msgspec.DecodeError, ValueError) as error:
            self._refused += 1
            for fd in fds:
                os.close(fd)
            detail = printable(f"{type(error).__name__}: {error}")[:_LINE_WIDTH]
            return self._send(SpawnFailed(worker_id=None, error=f"refused a request: {detail}"))
        return self._spawn(request, fds[0], fds[1] if request.captured else None)

    def _spawn(self, request: SpawnRequest, link_fd: int, output_fd: int | None) -> bool:
        # Buffered output would be written twice, by the template and by the child.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        try:
            pid = os.fork()
        except OSError as error:
            reply: TemplateMessage = SpawnFailed(
                worker_id=request.worker_id, error=printable(str(error))[:_LINE_WIDTH]
            )
        else:
            if pid == 0:
                self._become_worker(request, link_fd, output_fd)
            reply = Spawned(worker_id=request.worker_id, pid=pid)
        os.close(link_fd)
        if output_fd is not None:
            os.close(output_fd)
        return self._send(reply)

    def _become_worker(
        self, request: SpawnRequest, link_fd: int, output_fd: int | None
    ) -> NoReturn:
        """In the child: become ``fast-app worker``; never returns."""
        code = 1
        try:
            # Its own session, as a fresh worker: a Ctrl-C on a terminal never reaches it.
            os.setsid()
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.close(self._wakeup_read)
            os.close(self._wakeup_write)
            self._control.close()
            devnull = os.open(os.devnull, os.O_RDWR)
            os.dup2(devnull, 0)
            if output_fd is not None:
                os.dup2(output_fd, 1)
                os.dup2(output_fd, 2)
                os.close(output_fd)
            if devnull > 2:
                os.close(devnull)
            # Its settings are read from here when the worker starts, as in a fresh one.
            os.environb.clear()
            os.environb.update(request.environment)
            os.environ["FARM_WORKER_ID"] = request.worker_id
            os.environ["FARM_SUPERVISOR_FD"] = str(link_fd)
            sys.argv = ["fast-app", "worker"]
            from fast_app.farm.cli.worker import worker_main

            code = worker_main()
        except SystemExit as leaving:
            code = (
                leaving.code if isinstance(leaving.code, int) else 0 if leaving.code is None else 1
            )
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            finalize()
            os._exit(code)  # never unwind into the template's own frames

    def _reap(self) -> bool:
        """Report every child that ended; ``False`` when the supervisor is gone."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return True
            if pid == 0:
                return True
            if not self._send(Exited(pid=pid, returncode=os.waitstatus_to_exitcode(status))):
                return False

    def _send(self, message: TemplateMessage) -> bool:
        try:
            self._control.send(encode(message))
        except OSError:
            return False
        return True


def finalize() -> None:
    """What the interpreter does at exit and ``os._exit`` skips: wait for the non-daemon
    threads (a job's, as a fresh worker would), run the atexit handlers (an OpenTelemetry
    SDK flushes its last spans there), flush stdio."""
    # Private to CPython, and what its own finalization calls: looked up, not imported.
    shutdown_threads: Callable[[], None] | None = getattr(threading, "_shutdown", None)
    run_exit_handlers: Callable[[], None] | None = getattr(atexit, "_run_exitfuncs", None)
    for step in (shutdown_threads, run_exit_handlers):
        if step is not None:
            with contextlib.suppress(BaseException):
                step()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _check_environment(request: SpawnRequest) -> None:
    for name, value in request.environment.items():
        if b"=" in name or b"\0" in name or b"\0" in value:
            raise ValueError("an environment variable's name or value is invalid")
