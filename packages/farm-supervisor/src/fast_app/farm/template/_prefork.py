"""The first worker template, forked from the supervisor before its event loop starts.

A template started as a fresh interpreter imports the same libraries the supervisor
already holds, into pages of its own: the supervisor's copy and the template's (shared
with its workers) are two. So ``fast-app work`` imports the worker's runtime
(``FRAMEWORK_MODULES``) in the supervisor, freezes it out of the garbage collector's
reach, and forks the first template from there, before it starts an event loop, a
thread or telemetry: the supervisor, the template and every worker forked from it then
share one copy of those pages (copy-on-write). The child becomes the template exactly
as ``python -m fast_app.farm.template`` does (``run_template``).

The handoff to the supervisor's ``WorkerTemplate`` is this module's one slot: filled
once by ``prefork_template``, emptied by the first ``take_preforked`` (never twice), and
``discard_preforked`` stops a template nobody took (the supervisor never started:
the broker was unreachable). A template restarted later is a fresh interpreter: by then
the supervisor runs an event loop and threads, and forking it would be unsafe.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from fast_app.core.queue.settings import reset_settings
from fast_app.farm.template._server import FRAMEWORK_MODULES, finalize, run_template

__all__ = ["PreforkedTemplate", "discard_preforked", "prefork_template", "take_preforked"]

logger = logging.getLogger("fast_app.farm.supervisor")

#: How long an untaken template gets to see its socket close and exit before it is killed.
_DISCARD_GRACE_S = 1.0


@dataclass(eq=False)
class PreforkedTemplate:
    """A template forked from this process, until the supervisor adopts it.

    Attributes:
        pid: its process id (a child of this process).
        control: this process's end of its control socket.
        output: the read end of the pipe its stdout and stderr go to; ``None``: it
            writes to this process's own.
        imports: the application's modules it imports.
        forked_at: when it was forked (``time.monotonic()``).
    """

    pid: int
    control: socket.socket
    output: int | None
    imports: tuple[str, ...]
    forked_at: float

    @property
    def captured(self) -> bool:
        """Whether its output goes to a pipe this process reads."""
        return self.output is not None

    def stop(self, grace_s: float) -> None:
        """Close its socket, give it ``grace_s`` to exit, kill it after that; reap it.

        Only for a template nobody adopted: it never forked a worker, so killing it
        loses nothing. Blocks for at most ``grace_s`` (and the kill).
        """
        self.control.close()  # our end: the template exits when it sees it close
        if self.output is not None:
            os.close(self.output)
        try:
            pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:  # reaped already (by a subreaper's stray reaping)
            return
        except OSError:  # no pidfd here: do not wait
            pidfd = None
        if pidfd is not None:
            try:
                select.select([pidfd], [], [], grace_s)  # readable once it exited
            finally:
                os.close(pidfd)
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(self.pid, os.WNOHANG)[0] != 0:
                return
            os.kill(self.pid, signal.SIGKILL)  # a zombie until reaped: its pid is ours
            os.waitpid(self.pid, 0)


_lock = threading.Lock()  # the dashboard's supervisor takes it on a thread of its own
_slot: PreforkedTemplate | None = None
_tried = False  # one per process: the first template only


def prefork_template(
    *, imports: Sequence[str], environment: Mapping[str, str], captured: bool
) -> PreforkedTemplate | None:
    """Fork the first worker template from this process, for ``take_preforked``.

    Call it before this process starts an event loop, a thread or anything that may
    start one (an OpenTelemetry SDK): it imports ``FRAMEWORK_MODULES`` here, freezes the
    garbage collector's view of everything imported so far, and forks. ``None`` when it
    did not fork (workers then come from a template started as a fresh interpreter):
    not Linux, not the only thread, called before in this process, or the fork failed.

    Args:
        imports: the application's modules (``FARM_IMPORTS``); the template imports
            them, this process does not (they may start threads or open sockets).
        environment: the template's environment (``WorkerTemplate``'s).
        captured: send its stdout and stderr to a pipe (``PreforkedTemplate.output``)
            rather than this process's own, for a ``WorkerTemplate`` given ``output``.
    """
    global _slot, _tried
    if sys.platform != "linux":
        return None
    with _lock:
        if _tried:
            return None
        _tried = True
    for module in FRAMEWORK_MODULES:
        importlib.import_module(module)  # ours: a failure is a bug, its traceback says it
    running = _threads_running()
    if running:
        logger.info(
            "threads already run in the supervisor (%s): the worker template is started as "
            "a fresh interpreter, not forked from it (its imports are not shared)",
            ", ".join(running),
        )
        return None
    try:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    except OSError as error:
        return _not_forked(error)
    try:
        output_read, output_write = os.pipe() if captured else (None, None)
    except OSError as error:
        ours.close()
        theirs.close()
        return _not_forked(error)
    # What was imported lives as long as the process. Frozen, it is out of reach of the
    # collections of this process and of its children, which would otherwise write to
    # (and so copy) the pages they all share. The price: a cycle among these objects
    # that becomes garbage later is never collected (import-time objects seldom do).
    gc.collect()
    gc.freeze()
    for stream in (sys.stdout, sys.stderr):  # else both processes would write it
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        pid = os.fork()
    except OSError as error:
        for end in (output_read, output_write):
            if end is not None:
                os.close(end)
        ours.close()
        theirs.close()
        return _not_forked(error)
    if pid == 0:
        _become_template(theirs, ours, output_read, output_write, imports, environment)
    theirs.close()
    if output_write is not None:
        os.close(output_write)
    template = PreforkedTemplate(pid, ours, output_read, tuple(imports), time.monotonic())
    with _lock:
        _slot = template
    return template


def take_preforked(*, imports: Sequence[str], captured: bool) -> PreforkedTemplate | None:
    """The pre-forked template, once: ``None`` to every later call, or if there is none.

    One that does not fit (other imports, its output not where the caller wants it) is
    stopped rather than handed over; the caller starts a fresh interpreter then.

    Args:
        imports: the application's modules the caller's template must import.
        captured: whether the caller reads the template's output from a pipe.
    """
    global _slot
    with _lock:
        template, _slot = _slot, None
    if template is None:
        return None
    if template.imports != tuple(imports) or template.captured != captured:
        logger.debug("the pre-forked worker template does not fit this supervisor: stopped")
        template.stop(grace_s=0)
        return None
    return template


def discard_preforked() -> None:
    """Stop the pre-forked template if nobody took it (waits at most about a second)."""
    global _slot
    with _lock:
        template, _slot = _slot, None
    if template is not None:
        template.stop(_DISCARD_GRACE_S)


def _not_forked(error: OSError) -> PreforkedTemplate | None:
    """Say why the template is not forked; ``None``."""
    logger.warning(
        "the worker template could not be forked from the supervisor (%s): it is started "
        "as a fresh interpreter",
        error,
    )
    return None


def _threads_running() -> list[str]:
    """The threads running besides this one (names, or a count); empty if none."""
    if threading.active_count() > 1 or threading.current_thread() is not threading.main_thread():
        return [thread.name for thread in threading.enumerate()][:16]
    # Threads a C library started are not Python's to list, but the kernel's.
    with contextlib.suppress(OSError):
        tasks = len(list(Path("/proc/self/task").iterdir()))
        if tasks > 1:
            return [f"{tasks - 1} threads not started by Python"]
    return []


def _become_template(
    control: socket.socket,
    parents: socket.socket,
    output_read: int | None,
    output_write: int | None,
    imports: Sequence[str],
    environment: Mapping[str, str],
) -> NoReturn:
    """In the child: become the template, set up as ``WorkerTemplate`` starts one."""
    code = 1
    try:
        # The supervisor's exit handlers are not the template's to run; those its imports
        # register are, at its end, as at an exec'd template's. Private to CPython.
        clear_exit_handlers: Callable[[], None] | None = getattr(atexit, "_clear", None)
        if clear_exit_handlers is not None:
            clear_exit_handlers()
        # Its own session, as an exec'd template: a Ctrl-C on a terminal never reaches it.
        os.setsid()
        parents.close()  # open here, the supervisor's end would never close with it
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        if devnull > 2:
            os.close(devnull)
        if output_read is not None and output_write is not None:
            os.close(output_read)
            os.dup2(output_write, 1)
            os.dup2(output_write, 2)
            os.close(output_write)
        os.environ.clear()
        os.environ.update(environment)
        # The supervisor's queue settings, read before the fork: a worker reads its own
        # from the environment it is given, as in a template that never had any.
        reset_settings()
        code = run_template(control, imports)
    except SystemExit as leaving:
        code = leaving.code if isinstance(leaving.code, int) else 0 if leaving.code is None else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        finalize()  # what an exec'd template's interpreter does at exit
        os._exit(code)  # never unwind into the supervisor's frames
