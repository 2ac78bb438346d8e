"""The private RabbitMQ node helper: a clear error when the server is missing."""

from __future__ import annotations

import pytest

from fast_app.farm.testing import RabbitMQNode, RabbitMQNotInstalledError, _rabbitmq_node


def test_a_missing_rabbitmq_server_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_rabbitmq_node, "_SCRIPT_DIRS", ("/nonexistent/rabbitmq/bin",))
    monkeypatch.setenv("PATH", "/nonexistent")

    with pytest.raises(
        RabbitMQNotInstalledError, match=r"apt-get install -y rabbitmq-server.*RABBITMQ_URL"
    ):
        RabbitMQNode()
