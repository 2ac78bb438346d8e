"""Named queues on a real farm: routed jobs stay on their queue through retries, delays and
dead-lettering; one supervisor balances its pools between a flooded queue and a quiet one."""

from __future__ import annotations

import asyncio
import collections
import statistics
import time

import farm_jobs
import pytest
from farm_testkit import Farm, start_supervisor, wait_until

from fast_app.core.queue import configure, queue
from fast_app.core.queue.settings import get_settings
from fast_app.farm.dead_letters import list_dead_letters, requeue_dead_letters
from fast_app.farm.listener import FarmListener


async def test_a_routed_job_stays_on_its_queue_through_delays_retries_and_its_dead_letter(
    farm: Farm,
) -> None:
    # Given a producer routing one function to a named queue, and a supervisor serving it
    reports = f"{farm.queue_name}.reports"
    configure(
        driver="async_farm",
        rabbitmq_url=farm.url,
        name=farm.queue_name,
        connect_timeout_s=10,
        routes=f"farm_jobs.fail_on_queue={reports}",
    )
    await start_supervisor(farm, "--queues", f"{farm.queue_name}=1..1,{reports}=1..1")

    # When the job, delayed, fails on every attempt of its two retries
    enqueued_at = time.time()
    job = await queue(
        farm_jobs.fail_on_queue, str(farm.results), "routed", __retries=2, __delay_s=0.5
    )
    await wait_until(lambda: len(farm.events("ran")) == 3, timeout=30, message="3 attempts")

    # Then each attempt ran from the named queue, the first after its delay
    runs = farm.events("ran")
    assert job.queue == reports
    assert [(run["queue"], run["attempt"]) for run in runs] == [(reports, n) for n in (1, 2, 3)]
    assert runs[0]["at"] - enqueued_at >= 0.5
    # And its dead letter is in the named queue's dead-letter queue, not the default one
    await wait_for_depth(farm, f"{reports}.dead", 1)
    assert await farm.queue_depth(f"{farm.queue_name}.dead") == 0
    assert await farm.queue_depth(reports) == 0
    [letter] = await list_dead_letters(get_settings(), queues=[farm.queue_name, reports])
    assert (letter.job_id, letter.queue) == (job.id, reports)

    # When it is requeued from there
    report = await requeue_dead_letters(get_settings(), [job.id], queues=[farm.queue_name, reports])

    # Then it runs again from its own queue (and fails into its own dead letters again)
    assert dict(report.requeued_to) == {job.id: reports}
    await wait_until(lambda: len(farm.events("ran")) >= 4, timeout=30, message="a 4th run")
    assert farm.events("ran")[3]["queue"] == reports


async def wait_for_depth(farm: Farm, name: str, expected: int, timeout: float = 20) -> None:
    """Poll queue ``name`` until it holds ``expected`` messages; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while (depth := await farm.queue_depth(name)) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} holds {depth} messages, not {expected}")
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_a_flood_on_one_queue_leaves_the_other_s_jobs_waiting_under_a_second(
    farm: Farm,
) -> None:
    # Given one supervisor serving emails (1..3 workers) and reports (1..5), at most 6
    emails, reports = f"{farm.queue_name}.emails", f"{farm.queue_name}.reports"
    supervisor = await start_supervisor(
        farm,
        "--queues",
        f"{emails}=1..3,{reports}=1..5",
        "--max-workers",
        "6",
        FARM_CONCURRENCY="4",
        FARM_SCALE_COOLDOWN_S="2",
    )
    pools: dict[str, list[int]] = collections.defaultdict(list)  # workers seen per queue
    waits: dict[str, list[float]] = collections.defaultdict(list)  # snapshot wait figures

    def keep(snapshot: dict[str, object]) -> None:
        for entry in snapshot.get("queues", []):  # type: ignore[attr-defined]
            pools[entry["name"]].append(entry["workers"])
            if entry["wait_max_s"] is not None:
                waits[entry["name"]].append(entry["wait_max_s"])

    listener = FarmListener(get_settings(), keep, connection_name="flood test")
    await listener.start()
    try:
        await wait_until(
            lambda: pools[emails][-1:] == [1] and pools[reports][-1:] == [1],
            timeout=30,
            message="one worker per queue",
        )

        # When 2,000 reports of 200 ms flood their queue while emails arrive at 20 per second
        results = str(farm.results)
        report_ids = [
            (await queue(farm_jobs.sleep_on_queue, results, f"r{n}", 0.2, __queue=reports)).id
            for n in range(2000)
        ]
        sent_at: dict[str, float] = {}
        flood_started = time.monotonic()
        number = 0
        while number < 200 or len(farm.tags("ran")) < 2000 + number:
            if time.monotonic() - flood_started > 120:
                raise AssertionError("the flood did not drain in 120 s")
            tag = f"e{number}"
            sent_at[tag] = time.time()
            await queue(farm_jobs.record_queue, results, tag, __queue=emails)
            number += 1
            await asyncio.sleep(0.05)
        await wait_until(lambda: len(farm.tags("ran")) == 2000 + number, message="every job")

        # Then the emails waited under a second at p95 while reports flooded
        ran = {event["tag"]: event for event in farm.events("ran")}
        email_waits = sorted(ran[tag]["at"] - sent for tag, sent in sent_at.items())
        p95 = email_waits[int(len(email_waits) * 0.95)]
        print(
            f"\nemails: {len(email_waits)} jobs, wait p50 {statistics.median(email_waits):.3f}s "
            f"p95 {p95:.3f}s max {email_waits[-1]:.3f}s; reports: {len(report_ids)} jobs in "
            f"{time.monotonic() - flood_started:.1f}s; pools seen: emails max "
            f"{max(pools[emails])}, reports max {max(pools[reports])}; supervisor wait max "
            f"figures: emails {max(waits[emails], default=0):.2f}s, reports "
            f"{max(waits[reports], default=0):.2f}s"
        )
        assert p95 < 1.0
        # And the reports' pool grew to its share of the six workers, within its maximum
        assert 4 <= max(pools[reports]) <= 5
        assert all(e + r <= 6 for e, r in zip(pools[emails], pools[reports], strict=False))
        # And every job ran exactly once, each from its own queue
        counts = collections.Counter(event["tag"] for event in farm.events("ran"))
        assert set(counts.values()) == {1}
        assert {ran[f"r{n}"]["queue"] for n in range(2000)} == {reports}
        assert {ran[tag]["queue"] for tag in sent_at} == {emails}
        # And once the flood is over, both pools return to their minimums
        await wait_until(
            lambda: pools[emails][-1:] == [1] and pools[reports][-1:] == [1],
            timeout=60,
            message="both pools back to one worker",
        )
    finally:
        await listener.close()
        supervisor.send(2)  # SIGINT: drain


async def test_an_idle_queue_with_minimum_zero_gets_a_worker_within_a_check_interval(
    farm: Farm,
) -> None:
    # Given a supervisor whose second queue may have no worker at all (checks every 0.5 s)
    rare = f"{farm.queue_name}.rare"
    await start_supervisor(farm, "--queues", f"{farm.queue_name}=1..2,{rare}=0..2")
    wanted: list[tuple[float, int]] = []

    def keep(snapshot: dict[str, object]) -> None:
        for entry in snapshot.get("queues", []):  # type: ignore[attr-defined]
            if entry["name"] == rare:
                wanted.append((time.monotonic(), entry["desired_workers"]))

    listener = FarmListener(get_settings(), keep, connection_name="min 0 test")
    await listener.start()
    try:
        await wait_until(lambda: wanted[-1:] and wanted[-1][1] == 0, message="no worker on rare")
        # When a job arrives on it
        sent = time.monotonic()
        await queue(farm_jobs.record_queue, str(farm.results), "first", __queue=rare)

        # Then the pool wants a worker within one check interval (plus a snapshot's)
        await wait_until(lambda: wanted[-1][1] == 1, timeout=10, message="a worker wanted")
        first = next(at for at, desired in wanted if at >= sent and desired == 1)
        assert first - sent < 0.5 + 0.2 + 0.5  # interval, snapshot interval, slack
        # And the job runs there
        await wait_until(lambda: farm.tags("ran") == ["first"], timeout=20, message="the job")
        assert farm.events("ran")[0]["queue"] == rare
    finally:
        await listener.close()
