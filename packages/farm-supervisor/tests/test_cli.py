"""The fast-app command: the configuration reference, the dev broker."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from fast_app.core.queue.settings import QueueSettings
from fast_app.farm.config_reference import render_reference
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
    assert "| `QUEUE_NAME` | `--queue` | `--queue` |" in reference
