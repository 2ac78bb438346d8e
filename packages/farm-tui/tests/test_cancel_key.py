"""The Jobs screen's ``c``: cancel the selected running job, after confirming (issue 14)."""

from __future__ import annotations

from typing import Any

from farm_testkit import wait_until

from fast_app.farm_tui import FarmApp, StaticFarm
from fast_app.farm_tui.sample import sample_snapshot
from fast_app.farm_tui.screens import JobsScreen

NOW = 1_700_000_000.0
SIZE = (140, 40)


def cancels_sent(link: StaticFarm) -> list[tuple[str, dict[str, Any]]]:
    return [(to, command) for to, command in link.commands if command["command"] == "cancel_job"]


async def _selected_job(app: FarmApp) -> Any:
    await wait_until(
        lambda: (
            isinstance(app.screen, JobsScreen) and app.screen.selected_running_job() is not None
        ),
        message="a running job under the cursor",
    )
    assert isinstance(app.screen, JobsScreen)
    return app.screen.selected_running_job()


async def test_c_then_y_sends_cancel_job_for_the_selected_job_to_its_supervisor() -> None:
    link = StaticFarm([sample_snapshot(NOW)])
    app = FarmApp(link, clock=lambda: NOW, refresh_s=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        job = await _selected_job(app)
        await pilot.press("c")
        await pilot.press("y")
        await wait_until(lambda: bool(cancels_sent(link)), message="the cancel")

    assert cancels_sent(link) == [
        (job.supervisor_id, {"command": "cancel_job", "job_id": job.job_id})
    ]
    assert job.supervisor_id == "web-1-4242"


async def test_c_then_n_sends_nothing() -> None:
    link = StaticFarm([sample_snapshot(NOW)])
    app = FarmApp(link, clock=lambda: NOW, refresh_s=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await _selected_job(app)
        await pilot.press("c", "n")
        await pilot.pause()

    assert cancels_sent(link) == []


async def test_a_job_in_a_thread_is_refused_without_asking() -> None:
    snapshot = sample_snapshot(NOW)
    for worker in snapshot["workers"]:
        for job in worker["in_flight"]:
            job["in_thread"] = True
    link = StaticFarm([snapshot])
    app = FarmApp(link, clock=lambda: NOW, refresh_s=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await _selected_job(app)
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, JobsScreen)  # no confirmation asked
        shown = [note.message for note in app._notifications]
        await pilot.press("y")

    assert cancels_sent(link) == []
    assert any("threads cannot be stopped" in message for message in shown), shown


async def test_c_then_y_on_a_waiting_job_sends_cancel_job_naming_it() -> None:
    # Given a worker holding two deliveries waiting for a slot, the last one selected
    snapshot = sample_snapshot(NOW, waiting=(2,))
    last_waiting = snapshot["waiting_jobs"][-1]
    link = StaticFarm([snapshot])
    app = FarmApp(link, clock=lambda: NOW, refresh_s=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await _selected_job(app)
        await pilot.press("end")
        await wait_until(
            lambda: (
                isinstance(app.screen, JobsScreen) and app.screen.selected_waiting_job() is not None
            ),
            message="a waiting job under the cursor",
        )
        assert isinstance(app.screen, JobsScreen)
        job = app.screen.selected_waiting_job()
        assert app.screen.selected_running_job() is None

        # When c is pressed, then y
        await pilot.press("c")
        await pilot.press("y")
        await wait_until(lambda: bool(cancels_sent(link)), message="the cancel")

    # Then the same cancel_job as for a running job goes to its supervisor, naming it
    assert job is not None and job.job_id == last_waiting["id"]
    assert cancels_sent(link) == [
        ("web-1-4242", {"command": "cancel_job", "job_id": last_waiting["id"]})
    ]
