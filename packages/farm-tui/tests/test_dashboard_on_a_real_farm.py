"""The dashboard driven by its keys against real farms on the session's private broker.

``fast-app work --tui`` (the supervisor in this process) and ``fast-app top`` (a
supervisor in another process, reached through the broker).
"""

from __future__ import annotations

import time
from pathlib import Path

import farm_jobs
import pytest
from farm_testkit import Farm, pid_alive, start_supervisor, wait_until

from fast_app.core.queue import queue
from fast_app.core.queue.settings import QueueSettings
from fast_app.farm_tui import EmbeddedFarm, FarmApp, RemoteFarm
from fast_app.farm_tui.screens import DeadLettersScreen

SIZE = (140, 40)


def workers(app: FarmApp, *, draining: bool = True) -> list[str]:
    """Ids of the workers the dashboard shows (``draining=False``: those staying)."""
    return [
        worker.worker_id
        for worker, _ in app.model.view(time.time()).workers
        if draining or worker.state != "draining"
    ]


@pytest.mark.farm(min_workers=1, max_workers=2)
async def test_changing_min_and_max_scales_the_pool(embedded_farm: EmbeddedFarm) -> None:
    app = FarmApp(embedded_farm, refresh_s=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: len(workers(app)) == 1, message="the first worker")

        # When: max up by one, min up by two (the second press builds on the first).
        await pilot.press("greater_than_sign", "plus", "plus")

        # Then the pool grows to 3, and the snapshots say why.
        await wait_until(lambda: len(workers(app)) == 3, message="3 workers")
        supervisor = app.model.view(time.time()).supervisors[0]
        assert (supervisor.min_workers, supervisor.max_workers) == (3, 3)

        # When: max down by two (min follows it down).
        await pilot.press("less_than_sign", "less_than_sign")

        # Then the pool shrinks to 1 at once: idle workers drain and exit.
        await wait_until(lambda: len(workers(app)) == 1, timeout=20, message="back to 1")
        await wait_until(
            lambda: app.model.view(time.time()).supervisors[0].max_workers == 1,
            message="max 1 in a snapshot",
        )
        assert embedded_farm.supervisor.min_workers == 1


@pytest.mark.farm(queues="{queue}.emails=1..1,{queue}.reports=0..2", max_workers=3)
async def test_a_queue_s_limits_change_its_pool_on_a_supervisor_of_two_queues(
    embedded_farm: EmbeddedFarm, queue_settings: QueueSettings
) -> None:
    emails, reports = f"{queue_settings.name}.emails", f"{queue_settings.name}.reports"
    app = FarmApp(embedded_farm, refresh_s=0.1)

    def pools() -> dict[str, tuple[int, int, int]]:
        return {
            queue.name: (queue.workers, queue.min_workers, queue.max_workers)
            for queue in app.model.view(time.time()).queues
        }

    def worker_queues() -> list[str]:
        return sorted(worker.queue for worker, _ in app.model.view(time.time()).workers)

    async with app.run_test(size=SIZE) as pilot:
        # Given emails' one worker and an idle reports pool of none.
        await wait_until(
            lambda: pools() == {emails: (1, 1, 1), reports: (0, 0, 2)},
            message="a row per queue",
        )
        assert worker_queues() == [emails]

        # When reports' minimum is raised from its row of the queues table.
        await pilot.press("shift+tab", "down", "plus")

        # Then its pool gets a worker of its own; the overall minimum is the new sum.
        await wait_until(lambda: pools()[reports] == (1, 1, 2), message="reports 1..2")
        await wait_until(lambda: worker_queues() == [emails, reports], message="2 pools")
        supervisor = app.model.view(time.time()).supervisors[0]
        assert (supervisor.min_workers, supervisor.max_workers) == (2, 3)


@pytest.mark.farm(min_workers=1, max_workers=1)
async def test_requeue_from_the_dead_letter_screen_runs_the_job_again(
    embedded_farm: EmbeddedFarm, results: Path
) -> None:
    app = FarmApp(embedded_farm, refresh_s=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: len(workers(app)) == 1, message="a worker")
        # Given a job that fails its first run and has no retries: a dead letter.
        job = await queue(farm_jobs.flaky, str(results), "once", 1, __retries=0)
        await wait_until(
            lambda: any(
                ended.job_id == job.id and ended.outcome == "dead_lettered"
                for ended in app.model.view(time.time()).recent
            ),
            message="the failure on the dashboard",
        )

        # When it is requeued from the dead-letter screen.
        await pilot.press("3")
        screen = app.screen
        assert isinstance(screen, DeadLettersScreen)
        await wait_until(
            lambda: [letter.job_id for letter in screen.letters] == [job.id],
            message="the dead letter listed",
        )
        await pilot.press("r")

        # Then it runs again, succeeds, and leaves the dead-letter queue.
        await wait_until(
            lambda: (
                "once" in {e["tag"] for e in farm_jobs.read_events(results) if e["event"] == "ran"}
            ),
            message="the second run",
        )
        await wait_until(lambda: screen.letters == [], message="the list emptied")


@pytest.mark.farm(min_workers=2, max_workers=2)
async def test_quit_drains_the_workers_then_exits(
    embedded_farm: EmbeddedFarm, results: Path
) -> None:
    app = FarmApp(embedded_farm, refresh_s=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: len(workers(app)) == 2, message="2 workers")
        pids = [w.pid for w, _ in app.model.view(time.time()).workers if w.pid is not None]
        for number in range(4):
            await queue(farm_jobs.sleep_then_record, str(results), f"job-{number}", 1.5)
        await wait_until(
            lambda: (
                len([e for e in farm_jobs.read_events(results) if e["event"] == "started"]) == 4
            ),
            message="4 jobs in flight",
        )

        # When q is pressed.
        await pilot.press("q")

        # Then the dashboard says it drains, and exits once the supervisor stopped.
        await wait_until(lambda: app.return_code is not None, timeout=30, message="the exit")
    finished = sorted(e["tag"] for e in farm_jobs.read_events(results) if e["event"] == "finished")
    assert finished == [f"job-{number}" for number in range(4)]
    assert app.return_code == 0
    assert embedded_farm.status().exit_code == 0
    assert not any(pid_alive(pid) for pid in pids)


async def test_top_steers_a_farm_running_elsewhere_and_quitting_leaves_it_running(
    queue_settings: QueueSettings, rabbitmq_url: str, tmp_path: Path
) -> None:
    farm = Farm(rabbitmq_url, queue_settings.name, tmp_path / "results.jsonl", tmp_path)
    supervisor = await start_supervisor(
        farm, "--min-workers", "1", "--max-workers", "2", "--supervisor-id", "elsewhere"
    )
    link = RemoteFarm(queue_settings, connection_name="test top")
    try:
        link.connect()
        app = FarmApp(link, refresh_s=0.1)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: len(workers(app)) == 1, message="its worker, heard")

            # When min is raised from here.
            await pilot.press("plus")

            # Then the farm over there grows.
            await wait_until(lambda: len(supervisor.live_worker_pids()) == 2, message="2")
            await wait_until(lambda: len(workers(app)) == 2, message="2 workers on screen")

            # When q is pressed: the dashboard detaches, the farm runs on.
            await pilot.press("q")
            await wait_until(lambda: app.return_code is not None, message="the exit")
        assert supervisor.process.poll() is None
    finally:
        link.close()
        supervisor.send(15)
        assert await supervisor.wait_exit(30) == 0


async def test_top_shuts_a_farm_down_after_confirmation(
    queue_settings: QueueSettings, rabbitmq_url: str, tmp_path: Path
) -> None:
    farm = Farm(rabbitmq_url, queue_settings.name, tmp_path / "results.jsonl", tmp_path)
    supervisor = await start_supervisor(farm, "--min-workers", "1", "--supervisor-id", "sup-x")
    link = RemoteFarm(queue_settings, connection_name="test top")
    try:
        link.connect()
        app = FarmApp(link, refresh_s=0.1)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: len(workers(app)) == 1, message="its worker, heard")

            # When S is pressed, then n: nothing happens; S then y: it shuts down.
            await pilot.press("S", "n")
            await pilot.pause(0.3)
            assert supervisor.process.poll() is None
            await pilot.press("S", "y")

            # Then the supervisor drains and exits; its snapshot saying so removes it.
            assert await supervisor.wait_exit(30) == 0
            await wait_until(lambda: app.model.supervisor_ids == [], message="gone from view")
    finally:
        link.close()
        if supervisor.process.poll() is None:
            supervisor.process.kill()
