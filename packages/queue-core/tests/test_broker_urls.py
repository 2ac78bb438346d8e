"""``RABBITMQ_URL`` as a list of a cluster's nodes: split, validated, every password hidden."""

from __future__ import annotations

import socket

import pytest
import queue_core_jobs as jobs

from fast_app.core.queue import QueueConfigurationError, QueueUnavailableError, configure, queue
from fast_app.core.queue import close as close_queue
from fast_app.core.queue.broker_urls import (
    MAX_BROKER_URLS,
    broker_passwords,
    redact_url,
    scrub_passwords,
    split_broker_urls,
)
from fast_app.core.queue.settings import QueueSettings

TWO_NODES = "amqp://bob:pw1@h1:5672/,amqp://bob:pw2@h2:5672/"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("value", "urls"),
    [
        ("amqp://a:b@h/", ["amqp://a:b@h/"]),
        (TWO_NODES, ["amqp://bob:pw1@h1:5672/", "amqp://bob:pw2@h2:5672/"]),
        (" amqp://h1/ , AMQPS://h2/ ", ["amqp://h1/", "AMQPS://h2/"]),
        # A comma may stand in a password: only one before another URL separates
        ("amqp://u:p,q@h/", ["amqp://u:p,q@h/"]),
        ("amqp://u:p,q@h1/,amqp://u:r,s@h2/", ["amqp://u:p,q@h1/", "amqp://u:r,s@h2/"]),
    ],
)
def test_a_value_is_split_before_each_url_only(value: str, urls: list[str]) -> None:
    assert split_broker_urls(value) == urls


def test_every_password_of_a_list_is_hidden() -> None:
    # The case of the issue: the second password was printed in clear
    assert redact_url(TWO_NODES) == "amqp://bob:***@h1:5672/,amqp://bob:***@h2:5672/"
    assert QueueSettings(rabbitmq_url=TWO_NODES).redacted_rabbitmq_url == redact_url(TWO_NODES)
    passwords = broker_passwords("amqp://u:p%40ss@h1/,amqp://u:longer@h2/")
    assert sorted(passwords) == ["longer", "p%40ss", "p@ss"]
    assert [len(p) for p in passwords] == sorted(map(len, passwords), reverse=True)
    text = "refused for u:p@ss and u:longer"
    assert scrub_passwords(text, "amqp://u:p%40ss@h1/,amqp://u:longer@h2/") == (
        "refused for u:*** and u:***"
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("amqp://h1/,amqp://", "URL 2 of 2 has no host"),
        ("amqp://h1/,amqp://h2:99999/", "URL 2 of 2 has an invalid port"),
    ],
)
def test_each_url_of_a_list_is_checked_and_named_by_position(value: str, problem: str) -> None:
    with pytest.raises(QueueConfigurationError) as raised:
        configure(rabbitmq_url=value)
    assert "RABBITMQ_URL" in str(raised.value)
    assert problem in str(raised.value)


def test_a_list_longer_than_a_cluster_is_refused() -> None:
    value = ",".join(f"amqp://h{n}/" for n in range(MAX_BROKER_URLS + 1))
    with pytest.raises(QueueConfigurationError, match=f"at most {MAX_BROKER_URLS}"):
        configure(rabbitmq_url=value)


async def test_no_node_reachable_raises_within_the_bound_without_any_password() -> None:
    # Given two nodes, both down
    first, second = _closed_port(), _closed_port()
    configure(
        driver="async_farm",
        rabbitmq_url=(
            f"amqp://bob:secret-one@127.0.0.1:{first}/,amqp://bob:secret-two@127.0.0.1:{second}/"
        ),
        connect_timeout_s=2,
    )
    try:
        # When a job is queued, then it fails, naming both nodes, hiding both passwords
        with pytest.raises(QueueUnavailableError) as raised:
            await queue(jobs.record, "never")
    finally:
        await close_queue()
    message = str(raised.value)
    assert f"amqp://bob:***@127.0.0.1:{first}/,amqp://bob:***@127.0.0.1:{second}/" in message
    assert "secret" not in message
