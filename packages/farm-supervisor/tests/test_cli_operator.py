"""What an operator meets on the command line: Ctrl-C in a terminal, workers that cannot
start, a paused farm with a backlog, help texts, an unreachable broker, the supervisor's
exit codes (issue 14, point 5)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import farm_jobs
import pytest
from farm_testkit import SUPPORT, Farm, pid_alive, start_supervisor, wait_until

from fast_app.core.queue import get_settings, queue
from fast_app.core.queue.settings import QueueSettings
from fast_app.farm.cli._common import broker_unreachable
from fast_app.farm.supervisor._broker import SupervisorBroker

_FAST = {
    "FARM_ALLOWED_MODULES": "farm_jobs",
    "FARM_HEARTBEAT_INTERVAL_S": "0.2",
    "FARM_SCALE_CHECK_INTERVAL_S": "0.5",
}


class _Terminal:
    """``fast-app work`` in the foreground of a pseudo-terminal of its own, as in a shell."""

    def __init__(self, farm: Farm, *flags: str) -> None:
        self._master, slave = os.openpty()
        self.output = bytearray()
        environment = {
            **os.environ,
            **_FAST,
            "RABBITMQ_URL": farm.url,
            "QUEUE_NAME": farm.queue_name,
            "PYTHONPATH": os.pathsep.join([str(SUPPORT), os.environ.get("PYTHONPATH", "")]),
        }

        def take_the_terminal() -> None:
            # A session leader taking its terminal becomes its foreground process group:
            # what the terminal's Ctrl-C reaches.
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.process = subprocess.Popen(
            [sys.executable, "-m", "fast_app.farm", "work", *flags],
            env=environment,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=farm.tmp_path,
            start_new_session=True,
            preexec_fn=take_the_terminal,  # before any of its threads start
        )
        os.close(slave)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._master, 4096)
            except OSError:  # the terminal closed: every process using it ended
                return
            if not chunk:
                return
            self.output.extend(chunk)

    def log(self) -> str:
        return self.output.decode("utf-8", "replace")

    def press_ctrl_c(self) -> None:
        os.write(self._master, b"\x03")  # the line discipline sends SIGINT

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        with contextlib.suppress(OSError):
            os.close(self._master)


@pytest.fixture
def terminal(farm: Farm) -> Iterator[Callable[..., _Terminal]]:
    opened: list[_Terminal] = []

    def open_terminal(*flags: str) -> _Terminal:
        opened.append(_Terminal(farm, *flags))
        return opened[-1]

    yield open_terminal
    for each in opened:
        each.close()
        for pid in _worker_pids(each.log()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _worker_pids(log: str) -> list[int]:
    import re

    return [int(pid) for pid in re.findall(r"worker \S+ started \(pid (\d+)\)", log)]


async def _exit_code(process: subprocess.Popen[bytes], timeout: float, log: object) -> int:
    deadline = time.monotonic() + timeout
    while (code := process.poll()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"still running after {timeout}s:\n{log}")
        await asyncio.sleep(0.05)
    return code


# -- 1. Ctrl-C in a terminal -----------------------------------------------------------


async def test_one_ctrl_c_in_a_terminal_drains_the_job_in_flight(
    farm: Farm, terminal: Callable[..., _Terminal]
) -> None:
    # Given a supervisor in the foreground of a terminal, one job in flight
    shell = terminal("--min-workers", "1", "--max-workers", "1")
    await wait_until(lambda: "consuming" in shell.log(), message="a consuming worker")
    await queue(farm_jobs.sleep_then_record, str(farm.results), "in-flight", 2)
    await wait_until(lambda: farm.tags("started") == ["in-flight"], message="the job to start")

    # When the operator presses Ctrl-C once
    shell.press_ctrl_c()

    # Then the job finishes, nothing is abandoned, and the supervisor exits 0
    assert await _exit_code(shell.process, 30, shell.log()) == 0, shell.log()
    assert farm.tags("finished") == ["in-flight"]
    assert farm.tags("cancelled") == []
    assert "abandoning" not in shell.log()
    assert "draining" in shell.log()


async def test_a_second_ctrl_c_kills_the_workers_through_the_supervisor(
    farm: Farm, terminal: Callable[..., _Terminal]
) -> None:
    # Given a supervisor draining a long job after a first Ctrl-C
    shell = terminal("--min-workers", "1", "--max-workers", "1")
    await wait_until(lambda: "consuming" in shell.log(), message="a consuming worker")
    [worker] = _worker_pids(shell.log())
    await queue(farm_jobs.sleep_then_record, str(farm.results), "long", 60)
    await wait_until(lambda: farm.tags("started") == ["long"], message="the job to start")
    shell.press_ctrl_c()
    await wait_until(lambda: "draining" in shell.log(), message="the drain")

    # When the operator presses Ctrl-C again
    shell.press_ctrl_c()

    # Then the supervisor kills its worker and exits 1 (the job returns to the queue)
    assert await _exit_code(shell.process, 15, shell.log()) == 1, shell.log()
    assert "second stop request, killing workers" in shell.log()
    assert not pid_alive(worker)
    assert "finished" not in [e["event"] for e in farm.events()]


# -- 2. workers that cannot start ------------------------------------------------------


async def test_a_supervisor_whose_workers_cannot_start_gives_up_with_exit_code_3(
    farm: Farm,
) -> None:
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

    # Then after 3 workers in a row could not start, it stops with exit code 3
    assert await supervisor.wait_exit(45) == 3, supervisor.log()
    log = supervisor.log()
    assert log.count("died unexpectedly") == 2  # the first two were replaced
    assert "3 workers in a row could not start" in log
    assert "ModuleNotFoundError: No module named 'no_such_module'" in log
    assert "gives up" in log
    assert not any(pid_alive(pid) for pid in supervisor.worker_pids().values())


# -- 3. a paused farm ------------------------------------------------------------------


async def test_a_paused_farm_with_a_backlog_does_not_scale_up(farm: Farm) -> None:
    # Given a paused supervisor, one worker of at most 4
    supervisor = await start_supervisor(
        farm,
        "--min-workers",
        "1",
        "--max-workers",
        "4",
        "--target-drain",
        "0.5",
        "--supervisor-id",
        "paused-sup",
    )
    await wait_until(lambda: "consuming" in supervisor.log(), message="a consuming worker")
    sender = SupervisorBroker(get_settings(), "test-sender", lambda _command: None)
    try:
        await sender.send_command("paused-sup", {"command": "pause"})
    finally:
        await sender.close()
    await wait_until(lambda: "pauses consumption" in supervisor.log(), message="the pause")

    # When a backlog arrives
    await asyncio.gather(
        *(queue(farm_jobs.record, str(farm.results), f"job-{n}") for n in range(300))
    )

    # Then it holds its worker and says why
    await wait_until(
        lambda: "paused: holding at 1, not scaling 1→" in supervisor.log(),
        timeout=15,
        message="the hold",
    )
    await asyncio.sleep(1.5)  # three more scaling checks
    assert "scaling: scale up" not in supervisor.log(), supervisor.log()
    assert len(supervisor.worker_pids()) == 1, "no worker started after the first"
    assert farm.tags("ran") == []


# -- 7. exit code when jobs outlive the grace period -----------------------------------


async def test_a_job_still_running_when_the_grace_period_ends_makes_the_exit_code_1(
    farm: Farm,
) -> None:
    # Given a job longer than the grace period
    supervisor = await start_supervisor(
        farm, "--min-workers", "1", "--max-workers", "1", "--grace-period", "1"
    )
    await wait_until(lambda: "consuming" in supervisor.log(), message="a consuming worker")
    await queue(farm_jobs.sleep_then_record, str(farm.results), "long", 30)
    await wait_until(lambda: farm.tags("started") == ["long"], message="the job to start")

    # When the supervisor is told to stop
    supervisor.send(signal.SIGTERM)

    # Then the job returns to the queue and the exit code says so (docs/supervisor.md)
    assert await supervisor.wait_exit(20) == 1, supervisor.log()
    assert "1 job still running when the 1s grace period ended" in supervisor.log()
    assert farm.tags("finished") == []


# -- 4, 5, 8. help texts, the unreachable broker ---------------------------------------


def _help(*command: str) -> str:
    finished = subprocess.run(
        [sys.executable, "-m", "fast_app.farm", *command, "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    return " ".join(finished.stdout.split())  # argparse's line breaks and padding aside


def test_work_help_gives_each_flag_s_meaning_variable_and_default() -> None:
    text = _help("work")

    assert "--max-workers N most workers a supervisor runs (FARM_MAX_WORKERS, default 4)" in text
    assert "jobs one worker runs at once (FARM_CONCURRENCY, default 16)" in text
    assert "(FARM_GRACE_PERIOD_S, default 30)" in text
    assert "(FARM_MAX_STARTUP_FAILURES, default 5)" in text
    assert "(FARM_JSON_LOGS, default off)" in text
    assert "3 workers could not start" in text


def test_worker_help_gives_each_flag_s_meaning_variable_and_default() -> None:
    text = _help("worker")

    assert "jobs one worker runs at once (FARM_CONCURRENCY, default 16)" in text
    assert "--grace-period SECONDS" in text
    assert "(FARM_GRACE_PERIOD_S, default 30)" in text
    assert "modules each worker imports at start (your job modules) (FARM_IMPORTS)" in text


def test_dlq_help_names_its_verbs() -> None:
    text = _help()

    assert "inspect, requeue and purge dead-lettered jobs" in text
    assert "replay" not in _help("dlq")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_an_unreachable_local_broker_suggests_fast_app_broker(
    host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = QueueSettings(rabbitmq_url=f"amqp://guest:guest@{host}:1/")

    assert broker_unreachable("work", settings, ConnectionRefusedError()) == 2

    error = capsys.readouterr().err
    assert "cannot reach the broker" in error
    assert "run `fast-app broker`" in error


def test_an_unreachable_remote_broker_does_not_suggest_fast_app_broker(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = QueueSettings(rabbitmq_url="amqp://app:secret@rabbit.example.com:5672/")

    broker_unreachable("work", settings, ConnectionRefusedError())

    error = capsys.readouterr().err
    assert "cannot reach the broker" in error
    assert "fast-app broker" not in error
    assert "secret" not in error


def test_fast_app_work_on_an_unreachable_local_broker_suggests_fast_app_broker(
    tmp_path: Path,
) -> None:
    environment = {
        name: text
        for name, text in os.environ.items()
        if not name.startswith(("QUEUE_", "FARM_", "RABBITMQ_", "ASYNC_FARM_"))
    }
    environment["RABBITMQ_URL"] = "amqp://guest:guest@127.0.0.1:1/"
    environment["QUEUE_CONNECT_TIMEOUT_S"] = "2"

    finished = subprocess.run(
        [sys.executable, "-m", "fast_app.farm", "work"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )

    assert finished.returncode == 2
    assert "run `fast-app broker`" in finished.stderr
