"""``fast-app work --tui`` as operators run it: a process, signals, a log file."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from farm_testkit import SUPPORT, pid_alive, wait_until

from fast_app.core.queue.settings import QueueSettings


async def test_sigterm_drains_the_farm_of_work_tui_and_its_log_goes_to_the_file(
    queue_settings: QueueSettings, rabbitmq_url: str, tmp_path: Path
) -> None:
    log_file = tmp_path / "farm.log"
    screen = tmp_path / "screen.out"
    (tmp_path / "noisy_app.py").write_text("print('noisy_app imported', flush=True)\n")
    environment = {
        **os.environ,
        "RABBITMQ_URL": rabbitmq_url,
        "QUEUE_NAME": queue_settings.name,
        "FARM_HEARTBEAT_INTERVAL_S": "0.2",
        "FARM_IMPORTS": "noisy_app",
        "PYTHONPATH": os.pathsep.join([str(SUPPORT), os.environ.get("PYTHONPATH", "")]),
    }
    command = ["work", "--tui", "--min-workers", "1", "--log-file", str(log_file)]
    with open(screen, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "fast_app.farm", *command],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            cwd=tmp_path,
        )
    try:
        # Given a farm whose worker consumes: its own output reached the log file too.
        def log() -> str:
            return log_file.read_text() if log_file.exists() else ""

        await wait_until(lambda: "consuming" in log(), timeout=30, message="a consuming worker")
        [worker_pid] = [int(pid) for pid in re.findall(r"started \(pid (\d+)\)", log())]
        assert re.search(r"\[\S+-w1\] .*consuming", log()), log()
        # And its template was forked from the supervisor, its output read through a pipe
        assert "forked from the supervisor" in log()
        await wait_until(
            lambda: "[template] noisy_app imported" in log(), message="the template's output"
        )

        # When the process gets SIGTERM.
        process.send_signal(signal.SIGTERM)

        # Then it drains and exits 0, its worker gone, and says where the log is.
        assert process.wait(30) == 0
        assert not pid_alive(worker_pid)
        assert "stopped" in log()
        assert f"the log is in {log_file}" in screen.read_text(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
