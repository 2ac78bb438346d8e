"""The preloaded worker template: workers forked from it, and what happens when it fails."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from farm_templates import command_line, parent_of, run_jobs, start_forked_farm, template_pids
from farm_testkit import Farm, pid_alive, start_supervisor, wait_until

from fast_app.farm.messages import Refusals
from fast_app.farm.template import TemplateLink, restart_delay
from fast_app.farm.template.messages import (
    TEMPLATE_MESSAGE_MAX_BYTES,
    Exited,
    Ready,
    SpawnFailed,
    SpawnRequest,
    TemplateMessage,
    decode_template_message,
    encode,
)

# -- forked workers ---------------------------------------------------------------------


async def test_workers_are_forked_from_the_template_and_run_jobs(farm: Farm) -> None:
    # Given a supervisor with the default worker start
    # When its template is ready and its workers started
    supervisor, template = await start_forked_farm(farm)

    # Then each worker is a child of the template, not of the supervisor
    workers = set(supervisor.live_worker_pids().values())
    assert {parent_of(pid) for pid in workers} == {template}
    assert parent_of(template) == supervisor.pid
    # And they run jobs
    assert await run_jobs(farm, "a", "b", "c") <= workers
    assert "died" not in supervisor.log()


async def test_workers_outlive_a_killed_template_which_is_restarted(farm: Farm) -> None:
    # Given a supervisor with two workers forked from its template, itself forked from
    # the supervisor
    supervisor, template = await start_forked_farm(farm)
    assert command_line(template) == command_line(supervisor.pid)
    workers = set(supervisor.live_worker_pids().values())

    # When the template is SIGKILLed
    os.kill(template, signal.SIGKILL)

    # Then the supervisor says so once, and a new template starts
    await wait_until(
        lambda: len(template_pids(supervisor)) == 2, timeout=30, message="a new template"
    )
    log = supervisor.log()
    assert log.count("worker template (pid") == 1
    assert f"worker template (pid {template}) died (killed by SIGKILL)" in log
    # And the new one is a fresh interpreter: the supervisor runs a loop now, not forked
    restarted = template_pids(supervisor)[1]
    assert parent_of(restarted) == supervisor.pid
    assert command_line(restarted)[1:3] == ["-m", "fast_app.farm.template"]
    assert "worker template restarted" in log
    # And the workers run on, adopted by the supervisor, and run jobs
    assert set(supervisor.live_worker_pids().values()) == workers
    assert {parent_of(pid) for pid in workers} == {supervisor.pid}
    assert await run_jobs(farm, "after-1", "after-2") <= workers

    # When one of them is SIGKILLed
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)

    # Then the supervisor sees how it died, and forks its replacement from the new template
    await wait_until(
        lambda: supervisor.replaced(victim, 2),
        timeout=30,
        message="a replacement",
    )
    assert re.search(r"died unexpectedly after [\d.]+s: killed by SIGKILL", supervisor.log())
    [replacement] = set(supervisor.live_worker_pids().values()) - workers
    assert parent_of(replacement) == template_pids(supervisor)[1]


async def test_a_mistyped_import_is_said_once_and_the_supervisor_gives_up(farm: Farm) -> None:
    # Given a mistyped --imports
    supervisor = await start_supervisor(
        farm,
        "--min-workers",
        "1",
        "--max-workers",
        "2",
        "--imports",
        "no_such_module",
        "--max-startup-failures",
        "3",
    )

    # Then the template's failure is said once, and it is not restarted
    assert await supervisor.wait_exit(45) == 3, supervisor.log()
    log = supervisor.log()
    assert log.count("the worker template cannot import") == 1, log
    assert (
        "the worker template cannot import the application's module no_such_module: "
        "ModuleNotFoundError: No module named 'no_such_module'"
    ) in log
    assert log.count("worker template") == 1, log
    # And the fresh workers failed as before: after 3 in a row, it gave up
    assert log.count("died unexpectedly") == 2
    assert "3 workers in a row could not start" in log
    assert "gives up" in log
    assert not any(pid_alive(pid) for pid in supervisor.worker_pids().values())


async def test_an_application_that_starts_a_thread_gets_fresh_workers(farm: Farm) -> None:
    # Given an application module that starts a thread at import
    (farm.tmp_path / "threaded_app.py").write_text(
        "import threading, time\n"
        "threading.Thread(target=time.sleep, args=(3600,), daemon=True, name='poller').start()\n"
    )
    supervisor = await start_supervisor(
        farm, "--min-workers", "1", "--max-workers", "1", "--imports", "threaded_app"
    )

    # When its worker starts
    await wait_until(lambda: "consuming" in supervisor.log(), timeout=30, message="a worker")

    # Then the supervisor says once why it does not fork, and the worker is fresh
    log = supervisor.log()
    assert log.count("threads running after importing the application") == 1, log
    assert "poller" in log
    [worker] = supervisor.live_worker_pids().values()
    assert parent_of(worker) == supervisor.pid
    assert await run_jobs(farm, "threaded") == {worker}


async def test_fresh_worker_start_still_works(farm: Farm) -> None:
    # Given FARM_WORKER_START=fresh
    supervisor = await start_supervisor(
        farm, "--min-workers", "1", "--max-workers", "1", FARM_WORKER_START="fresh"
    )

    # When its worker starts
    await wait_until(lambda: "consuming" in supervisor.log(), timeout=30, message="a worker")

    # Then it is the supervisor's own child, and runs jobs
    [worker] = supervisor.live_worker_pids().values()
    assert parent_of(worker) == supervisor.pid
    assert await run_jobs(farm, "fresh") == {worker}
    assert "worker template" not in supervisor.log()


# -- the control socket's edges ---------------------------------------------------------


async def test_garbled_packets_from_the_template_are_refused_not_raised() -> None:
    # Given the supervisor's end of a template link
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    heard: list[TemplateMessage] = []
    closed = asyncio.Event()
    refusals = Refusals(logging.getLogger("test"))
    link = TemplateLink(ours, refusals=refusals)
    link.start(on_message=heard.append, on_closed=closed.set)

    # When the template sends garbage, oversized, ill-typed and out-of-bounds packets
    theirs.send(b"\xff\x00 not msgpack")
    theirs.send(b"\x00" * (TEMPLATE_MESSAGE_MAX_BYTES + 100))
    theirs.send(msgspec.msgpack.encode({"kind": "exited", "pid": "one"}))
    theirs.send(msgspec.msgpack.encode({"kind": "exited", "pid": 7, "returncode": 9999}))
    theirs.send(msgspec.msgpack.encode({"kind": "launch_missiles"}))
    theirs.send(encode(Exited(pid=7, returncode=-9)))
    theirs.close()

    # Then each bad one is counted, the good one heard, and the end of the socket seen
    await asyncio.wait_for(closed.wait(), 10)
    assert heard == [Exited(pid=7, returncode=-9)]
    assert refusals.as_dict() == {"template_malformed": 4, "template_oversized": 1}
    assert link.closed


def test_the_template_refuses_garbled_requests_and_goes_on_serving(tmp_path: Path) -> None:
    # Given a template process on a control socket
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    template = subprocess.Popen(
        [sys.executable, "-m", "fast_app.farm.template", "--control-fd", str(theirs.fileno())],
        pass_fds=(theirs.fileno(),),
        stdin=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    theirs.close()
    ours.settimeout(30)
    try:
        assert isinstance(decode_template_message(ours.recv(65536)), Ready)

        # When it gets garbage, a request without its descriptors, and a bad environment
        ours.send(b"garbage")
        ours.send(encode(SpawnRequest(worker_id="w1", environment={})))
        link_ours, link_theirs = socket.socketpair()
        socket.send_fds(
            ours,
            [encode(SpawnRequest(worker_id="w2", environment={b"A=B": b"x"}))],
            [link_theirs.fileno()],
        )

        # Then it refuses each one, and is still there
        replies = [decode_template_message(ours.recv(65536)) for _ in range(3)]
        assert all(isinstance(r, SpawnFailed) and r.worker_id is None for r in replies)
        assert template.poll() is None

        # And when the supervisor's end closes, it exits
        ours.close()
        assert template.wait(10) == 0
        link_ours.close()
        link_theirs.close()
    finally:
        if template.poll() is None:
            template.kill()
            template.wait()


def test_restarts_wait_longer_after_each_quick_death() -> None:
    assert restart_delay(None, 0.5) == 1.0
    assert [restart_delay(d, 2.0) for d in (1.0, 2.0, 16.0, 30.0)] == [2.0, 4.0, 30.0, 30.0]
    # A template that ran for minutes did not die of a crash loop.
    assert restart_delay(16.0, 600.0) == 1.0


def test_the_setting_is_validated_naming_its_variable() -> None:
    from fast_app.farm.errors import FarmConfigurationError
    from fast_app.farm.settings import load_farm_settings

    assert load_farm_settings().worker_start == "template"
    assert load_farm_settings(worker_start="fresh").worker_start == "fresh"
    with pytest.raises(FarmConfigurationError, match="FARM_WORKER_START"):
        load_farm_settings(worker_start="zygote")
