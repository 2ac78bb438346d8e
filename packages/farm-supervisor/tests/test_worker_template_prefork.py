"""The first worker template, forked from the supervisor before its event loop starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from farm_templates import command_line, parent_of, run_jobs, start_forked_farm, template_pids
from farm_testkit import SUPPORT, Farm, pid_alive, start_supervisor, wait_until


def descriptors(pid: int) -> list[str]:
    """What its open descriptors are: paths, or ``socket`` / ``pipe`` (without inodes)."""
    targets = [os.readlink(entry) for entry in Path(f"/proc/{pid}/fd").iterdir()]
    return sorted(target.split(":[", 1)[0] for target in targets)


def marked_processes(marker: str) -> list[int]:
    """The live processes started with ``FAST_APP_TEST_MARKER=<marker>`` in their
    environment (``/proc/<pid>/environ`` is what the process was started with)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environment = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"FAST_APP_TEST_MARKER={marker}".encode() in environment and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


async def test_the_first_template_is_forked_from_the_supervisor(farm: Farm) -> None:
    # Given a supervisor with the default worker start
    # When its template is ready and its workers started
    supervisor, template = await start_forked_farm(farm)

    # Then the template is the supervisor's child with the supervisor's command line: a
    # fork of it, not an interpreter of its own
    assert parent_of(template) == supervisor.pid
    assert command_line(template) == command_line(supervisor.pid)
    assert "forked from the supervisor" in supervisor.log()
    # And it holds nothing of the supervisor's but its stdout and stderr: stdin on
    # /dev/null, its control socket and its own wake-up pipe
    log = str(supervisor.log_path)
    assert descriptors(template) == sorted(["/dev/null", log, log, "socket", "pipe", "pipe"]), (
        descriptors(template)
    )
    # And the workers are forked from it, and run jobs
    workers = set(supervisor.live_worker_pids().values())
    assert {parent_of(pid) for pid in workers} == {template}
    assert await run_jobs(farm, "a", "b") <= workers

    # When the supervisor is SIGKILLed
    supervisor.process.kill()
    supervisor.process.wait(10)

    # Then the template sees its control socket close and exits
    await wait_until(lambda: not pid_alive(template), timeout=10, message="the template's end")


async def test_threads_in_the_supervisor_before_the_fork_get_an_exec_d_template(
    farm: Farm,
) -> None:
    # Given a supervisor in which a thread runs from its start (a sitecustomize starts
    # one, and takes its variable out of the environment its children get)
    startup = farm.tmp_path / "startup"
    startup.mkdir()
    (startup / "sitecustomize.py").write_text(
        textwrap.dedent(
            """
            import os, threading
            if os.environ.pop("START_A_THREAD", None):
                threading.Thread(target=threading.Event().wait, name="early", daemon=True).start()
            """
        )
    )
    supervisor = await start_supervisor(
        farm,
        "--min-workers",
        "1",
        "--max-workers",
        "1",
        START_A_THREAD="1",
        PYTHONPATH=os.pathsep.join([str(startup), str(SUPPORT), os.environ.get("PYTHONPATH", "")]),
    )

    # When its template is ready and its worker started
    await wait_until(lambda: template_pids(supervisor), timeout=30, message="a template")
    await wait_until(lambda: supervisor.live_worker_pids(), timeout=30, message="a worker")

    # Then it said once why it did not fork, and its template is a fresh interpreter
    log = supervisor.log()
    assert log.count("threads already run in the supervisor (MainThread, early)") == 1, log
    [template] = template_pids(supervisor)
    assert parent_of(template) == supervisor.pid
    assert command_line(template)[1:3] == ["-m", "fast_app.farm.template"]
    assert "a fresh interpreter" in log
    # And its worker is forked from that template, and runs jobs
    [worker] = supervisor.live_worker_pids().values()
    assert parent_of(worker) == template
    assert await run_jobs(farm, "early") == {worker}


async def test_a_supervisor_that_cannot_start_leaves_no_template_behind(farm: Farm) -> None:
    # Given a supervisor whose broker is unreachable (it forks its template first)
    marker = uuid.uuid4().hex
    supervisor = await start_supervisor(
        farm, RABBITMQ_URL="amqp://guest:guest@127.0.0.1:1/", FAST_APP_TEST_MARKER=marker
    )

    # When it gives up
    assert await supervisor.wait_exit(30) == 2, supervisor.log()

    # Then its template was stopped and reaped before it exited
    assert "cannot reach the broker" in supervisor.log()
    assert marked_processes(marker) == []


# -- the handoff, in a process of its own (pytest's may run threads) ---------------------

_HANDOFF = """
import json, os, sys
from fast_app.farm.template._prefork import (
    discard_preforked, prefork_template, take_preforked,
)
from fast_app.farm.template.messages import Ready, decode_template_message

case = sys.argv[1]
template = prefork_template(imports=(), environment=dict(os.environ), captured=False)
said = {"forked": template is not None}
said["forked_again"] = (
    prefork_template(imports=(), environment=dict(os.environ), captured=False) is not None
)
if case == "take":
    said["first_take"] = take_preforked(imports=(), captured=False) is template
    said["second_take"] = take_preforked(imports=(), captured=False) is not None
    template.control.settimeout(30)
    message = decode_template_message(template.control.recv(65536))
    said["ready"] = isinstance(message, Ready) and message.pid == template.pid
    template.stop(grace_s=30)
elif case == "misfit":
    said["taken"] = take_preforked(imports=("other",), captured=False) is not None
    said["after_misfit"] = take_preforked(imports=(), captured=False) is not None
elif case == "discard":
    discard_preforked()
    said["after_discard"] = take_preforked(imports=(), captured=False) is not None
try:
    os.waitpid(template.pid, os.WNOHANG)  # (0, 0) while it runs; else it was not reaped
    said["reaped"] = False
except ChildProcessError:
    said["reaped"] = True
print(json.dumps(said))
"""


def run_handoff(case: str, tmp_path: Path) -> dict[str, bool]:
    finished = subprocess.run(
        [sys.executable, "-c", _HANDOFF, case],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=tmp_path,
    )
    assert finished.returncode == 0, finished.stderr
    said: dict[str, bool] = json.loads(finished.stdout.splitlines()[-1])
    return said


def test_the_pre_forked_template_is_taken_once(tmp_path: Path) -> None:
    # Given a process that forked its template (and tried a second one)
    # When it takes it twice
    said = run_handoff("take", tmp_path)

    # Then one template was forked, the first take got it and the second nothing; it
    # served (said it was ready) and was reaped when stopped
    assert said == {
        "forked": True,
        "forked_again": False,
        "first_take": True,
        "second_take": False,
        "ready": True,
        "reaped": True,
    }


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param("misfit", {"taken": False, "after_misfit": False}, id="misfit"),
        pytest.param("discard", {"after_discard": False}, id="discard"),
    ],
)
def test_a_template_nobody_takes_is_stopped_and_reaped(
    case: str, expected: dict[str, bool], tmp_path: Path
) -> None:
    # Given a process that forked its template
    # When a taker it does not fit asks for it, or the process discards it untaken
    said = run_handoff(case, tmp_path)

    # Then it is not handed over (then or later), and it was stopped and reaped
    assert said == {"forked": True, "forked_again": False, **expected, "reaped": True}


def test_discarding_a_template_reaped_elsewhere_returns_at_once(tmp_path: Path) -> None:
    # Given a process whose pre-forked template was killed and reaped by someone else
    # (a subreaper's stray reaping)
    script = textwrap.dedent(
        """
        import os, signal
        from fast_app.farm.template._prefork import discard_preforked, prefork_template
        template = prefork_template(imports=(), environment=dict(os.environ), captured=True)
        os.kill(template.pid, signal.SIGKILL)
        os.waitpid(template.pid, 0)
        discard_preforked()
        print("done")
        """
    )

    # When it discards it
    finished = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=tmp_path,
    )

    # Then it returns without error (no wait for a process that is not there)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "done"
