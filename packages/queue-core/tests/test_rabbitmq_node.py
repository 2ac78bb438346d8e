"""The private RabbitMQ node of the test kit: a clear error when the server is missing, no leak."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fast_app.core.queue.testing import rabbitmq
from fast_app.core.queue.testing.rabbitmq import RabbitMQNode, RabbitMQNotInstalledError


def test_a_missing_rabbitmq_server_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rabbitmq, "_SCRIPT_DIRS", ("/nonexistent/rabbitmq/bin",))
    monkeypatch.setenv("PATH", "/nonexistent")

    with pytest.raises(
        RabbitMQNotInstalledError, match=r"apt-get install -y rabbitmq-server.*RABBITMQ_URL"
    ):
        RabbitMQNode()


def test_the_test_kit_package_exports_the_node() -> None:
    from fast_app.core.queue import testing

    assert testing.RabbitMQNode is RabbitMQNode
    assert testing.rabbitmq_node is rabbitmq.rabbitmq_node


OWNER = """
import sys, time
from fast_app.core.queue.testing.rabbitmq import RabbitMQNode
node = RabbitMQNode()
node.start_broker(60)
print(node.base_dir, node._server.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.slow
@pytest.mark.rabbitmq
def test_a_node_whose_owner_is_sigkilled_does_not_outlive_it() -> None:
    # Given a node started by a process that then dies without a chance to clean up.
    with subprocess.Popen(
        [sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True
    ) as owner:
        try:
            assert owner.stdout is not None
            base_dir, server_pid = owner.stdout.readline().split()
            group = int(server_pid)
            assert _group_alive(group)

            owner.kill()
            owner.wait(10)

            # Then its guard ends the broker's processes and deletes its files.
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and (_group_alive(group) or Path(base_dir).exists()):
                time.sleep(0.1)
            assert not _group_alive(group), "the broker outlived its owner"
            assert not Path(base_dir).exists()
        finally:
            owner.kill()


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
