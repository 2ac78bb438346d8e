"""Pure parts of the AMQP plumbing: delay levels, queue arguments, signatures, settings."""

from __future__ import annotations

import pytest

from fast_app.core.queue.amqp import (
    DELAY_LEVELS_MS,
    Topology,
    delay_level_ms,
    sign,
    signature_matches,
)
from fast_app.farm import FarmConfigurationError, load_farm_settings


@pytest.mark.parametrize(
    ("remaining_s", "level_ms"),
    [
        (0.0, None),
        (0.05, None),
        (0.1, 100),
        (0.25, 200),
        (1.0, 800),
        (1.5, 800),
        (60, 51_200),
        (10**7, DELAY_LEVELS_MS[-1]),
    ],
)
def test_delay_level_is_the_largest_that_does_not_overshoot(
    remaining_s: float, level_ms: int | None
) -> None:
    assert delay_level_ms(remaining_s) == level_ms


def test_any_delay_is_reached_in_few_hops() -> None:
    remaining = 3600 * 5 + 0.123
    hops = 0
    while (level := delay_level_ms(remaining)) is not None:
        remaining -= level / 1000
        hops += 1
    assert remaining < 0.1
    assert hops <= 25


def test_quorum_topology_arguments() -> None:
    topology = Topology("jobs", "quorum", 7)

    assert topology.jobs_arguments() == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 7,
        "x-dead-letter-exchange": "jobs.dlx",
        "x-dead-letter-routing-key": "jobs",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    assert topology.delay_arguments(800)["x-message-ttl"] == 800
    assert topology.delay_arguments(800)["x-dead-letter-routing-key"] == "jobs"
    assert topology.delay_queue(800) == "jobs.delay.800ms"
    assert topology.dead == "jobs.dead"


def test_classic_topology_has_no_quorum_only_arguments() -> None:
    arguments = Topology("jobs", "classic", 7).jobs_arguments()

    assert arguments["x-queue-type"] == "classic"
    assert "x-delivery-limit" not in arguments
    assert "x-dead-letter-strategy" not in arguments


def test_signatures_match_only_for_the_same_body_and_key() -> None:
    signature = sign(b"body", b"key")

    assert signature_matches(b"body", signature, b"key")
    assert signature_matches(b"body", signature.encode(), b"key")
    assert not signature_matches(b"body!", signature, b"key")
    assert not signature_matches(b"body", signature, b"other")
    assert not signature_matches(b"body", None, b"key")


def test_farm_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARM_IMPORTS", "app.jobs, app.reports")
    monkeypatch.setenv("FARM_CONCURRENCY", "4")

    settings = load_farm_settings()

    assert settings.imports == ("app.jobs", "app.reports")
    assert settings.thread_pool_size == 4


@pytest.mark.parametrize(
    ("variable", "value"),
    [("FARM_CONCURRENCY", "0"), ("FARM_GRACE_PERIOD_S", "-1"), ("FARM_STARTUP", "app.hooks")],
)
def test_invalid_farm_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(FarmConfigurationError, match=variable):
        load_farm_settings()
