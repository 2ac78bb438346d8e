"""The fast-app command: the configuration reference, the dev broker."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fast_app.core.queue.settings import QueueSettings
from fast_app.farm.cli.config_reference import render_reference
from fast_app.farm.settings import FarmSettings

DOCS = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def test_the_committed_configuration_reference_matches_the_settings() -> None:
    assert DOCS.read_text(encoding="utf-8") == render_reference(), (
        "docs/configuration.md is stale: run `uv run fast-app config-reference > docs/configuration.md`"
    )


def test_every_setting_is_documented_with_its_variable() -> None:
    reference = render_reference()
    for settings in (QueueSettings, FarmSettings):
        for name, field in settings.model_fields.items():
            variable = (field.description or "").partition(": ")[0]
            assert variable.isupper(), (
                f"{settings.__name__}.{name} has no variable in its description"
            )
            assert f"| `{variable}` |" in reference


def test_fast_app_broker_runs_a_private_node_until_interrupted() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "fast_app.farm", "broker", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().decode().strip()
        assert url.startswith("amqp://guest:guest@127.0.0.1:")
        port = int(url.rsplit(":", 1)[1].strip("/"))
        assert port > 0
        process.send_signal(signal.SIGINT)
        started = time.monotonic()
        assert process.wait(30) == 0
        assert time.monotonic() - started < 30
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def test_the_reference_lists_each_command_s_flags_from_its_parser() -> None:
    reference = render_reference()

    assert "| `FARM_MAX_WORKERS` | `--max-workers` |  |" in reference
    assert "| `FARM_WORKER_ID` |  | `--worker-id` |" in reference
    assert "| `QUEUE_NAME` | `--queue` |  |" in reference
    assert "| `FARM_WORKER_QUEUE` |  | `--queue` |" in reference


_COMMANDS = [["work"], ["worker"], ["status", "--wait", "0.1"], ["dlq", "list"], ["top"]]
_BAD_SETTINGS = [
    pytest.param("RABBITMQ_URL", "amqp://app:hunter2@127.0.0.1:99999/", id="invalid-port"),
    pytest.param("RABBITMQ_URL", "http://app:hunter2@127.0.0.1/", id="http-url"),
    pytest.param("RABBITMQ_URL", "not a url", id="not-a-url"),
    pytest.param("ASYNC_FARM_SIGNING_KEY", "hunter2-is-too-short", id="short-signing-key"),
]


@pytest.mark.parametrize("command", _COMMANDS, ids=lambda command: " ".join(command[:2]))
@pytest.mark.parametrize(("variable", "value"), _BAD_SETTINGS)
def test_a_bad_broker_url_or_signing_key_stops_each_command_with_one_line(
    command: list[str], variable: str, value: str
) -> None:
    if command == ["top"] and importlib.util.find_spec("fast_app.farm_tui") is None:
        pytest.skip("fast-app top needs fast-app-farm-tui, not installed with this package")
    environment = {
        name: text
        for name, text in os.environ.items()
        if not name.startswith(("QUEUE_", "FARM_", "RABBITMQ_", "ASYNC_FARM_"))
    }
    environment[variable] = value

    finished = subprocess.run(
        [sys.executable, "-m", "fast_app.farm", *command],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert finished.returncode == 2, finished.stderr
    [line] = finished.stderr.splitlines()
    assert line.startswith(f"fast-app {command[0]}: ")
    assert f"{variable}=<hidden>" in line
    assert "hunter2" not in finished.stderr + finished.stdout
