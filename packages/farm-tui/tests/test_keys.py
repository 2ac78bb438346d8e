"""Keys and what they send, against fixed data (no broker): the Textual pilot."""

from __future__ import annotations

from typing import Any

from farm_testkit import wait_until

from fast_app.farm_tui import FarmApp, StaticFarm
from fast_app.farm_tui.sample import sample_dead_letters, sample_history, sample_snapshot
from fast_app.farm_tui.screens import DeadLettersScreen
from fast_app.farm_tui.table import LiveTable

NOW = 1_700_000_000.0
SIZE = (140, 40)
TWO_QUEUES = ("emails", "reports")


def farm(*snapshots: dict[str, Any], owns_farm: bool = True, letters: int = 3) -> StaticFarm:
    return StaticFarm(
        snapshots or [sample_snapshot(NOW)],
        owns_farm=owns_farm,
        dead_letters=sample_dead_letters(NOW, count=letters),
    )


def limits_sent(link: StaticFarm) -> list[tuple[str, int, int]]:
    return [
        (supervisor, command["min_workers"], command["max_workers"])
        for supervisor, command in link.commands
        if command["command"] == "set_limits"
    ]


async def test_min_and_max_keys_build_on_each_other_until_the_snapshot_catches_up() -> None:
    link = farm()  # min 1, max 8
    app = FarmApp(link, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("plus", "plus", "greater_than_sign", "less_than_sign")

    assert limits_sent(link) == [
        ("web-1-4242", 2, 8),
        ("web-1-4242", 3, 8),
        ("web-1-4242", 3, 9),
        ("web-1-4242", 3, 8),
    ]


async def test_min_never_goes_below_zero_nor_max_below_min() -> None:
    link = farm()  # min 1, max 8
    app = FarmApp(link, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("minus", "minus")  # 0, then refused: already 0
        await pilot.press(*["less_than_sign"] * 8)  # max 7 .. 1, then refused: max >= 1
        await pilot.press("plus", "plus")  # min 1, then 2 carries max along

    assert limits_sent(link) == [
        ("web-1-4242", 0, 8),
        *[("web-1-4242", 0, high) for high in range(7, 0, -1)],
        ("web-1-4242", 1, 1),
        ("web-1-4242", 2, 2),
    ]


async def test_limits_go_to_the_supervisor_under_the_cursor() -> None:
    link = farm(
        sample_snapshot(NOW, supervisor_id="web-1-4242"),
        sample_snapshot(NOW, supervisor_id="web-2-777"),
    )
    app = FarmApp(link, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        # From the workers table, past the queues table, to the supervisors table.
        await pilot.press("shift+tab", "shift+tab")
        await pilot.press("down", "plus")

    assert limits_sent(link) == [("web-2-777", 2, 8)]


def commands_of(link: StaticFarm, name: str) -> list[dict[str, Any]]:
    return [command for _, command in link.commands if command["command"] == name]


async def test_limit_keys_in_the_queues_table_change_that_queue_s_pool() -> None:
    link = farm(sample_snapshot(NOW, queues=TWO_QUEUES))  # emails 1..4, reports 0..8
    app = FarmApp(link, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        # When: from the workers table to the queues table, down to reports, max and min up.
        await pilot.press("shift+tab", "down", "greater_than_sign", "plus")

        # Then the commands name the queue, building on each other.
        assert commands_of(link, "set_limits") == [
            {"command": "set_limits", "queue": "reports", "min_workers": 0, "max_workers": 9},
            {"command": "set_limits", "queue": "reports", "min_workers": 1, "max_workers": 9},
        ]
        # And the row shows what was asked for until a snapshot does.
        [emails, reports] = app.model.view(NOW).queues
        assert (reports.min_workers, reports.max_workers, reports.limits_pending) == (1, 9, True)
        assert not emails.limits_pending


async def test_elsewhere_the_keys_change_only_the_overall_max_of_several_queues() -> None:
    link = farm(sample_snapshot(NOW, queues=TWO_QUEUES))  # overall 1..8 (min: 1 + 0)
    app = FarmApp(link, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("plus")  # refused: minimums are per queue
        await pilot.press("greater_than_sign")
        await pilot.press(*["less_than_sign"] * 9)  # down to 1, then refused: 1 is min's sum

    assert commands_of(link, "set_limits") == [
        {"command": "set_limits", "max_workers": high} for high in [9, *range(8, 0, -1)]
    ]


async def test_a_queue_s_minimum_never_takes_the_minimums_past_the_overall_max() -> None:
    link = farm(sample_snapshot(NOW, queues=TWO_QUEUES))  # emails min 1, overall max 8
    app = FarmApp(link, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("shift+tab", "down", *["plus"] * 8)

    assert [command["min_workers"] for command in commands_of(link, "set_limits")] == [*range(1, 8)]


async def test_a_single_queue_farm_gets_its_limits_as_before_from_the_queues_table() -> None:
    link = farm()  # one queue: a command without a queue, which any supervisor takes
    app = FarmApp(link, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("shift+tab", "plus")

    assert commands_of(link, "set_limits") == [
        {"command": "set_limits", "min_workers": 2, "max_workers": 8}
    ]


async def test_limits_of_a_queue_the_selected_supervisor_does_not_serve_are_refused() -> None:
    link = farm(
        sample_snapshot(NOW, supervisor_id="web-1-4242", queues=TWO_QUEUES),
        sample_snapshot(NOW, supervisor_id="web-2-777", queues=("emails", "bulk")),
    )
    app = FarmApp(link, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("shift+tab", "down", "down", "plus")  # bulk, on web-1: refused
        await pilot.press("shift+tab", "down", "tab", "plus")  # web-2 selected: sent

    assert [(supervisor, command.get("queue")) for supervisor, command in link.commands] == [
        ("web-2-777", "bulk")
    ]


async def test_80_by_24_still_shows_every_queue_row_whole() -> None:
    link = StaticFarm(sample_history(NOW, queues=TWO_QUEUES, workers=4))
    app = FarmApp(link, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        table = app.screen.query_one("#queues", LiveTable)

        assert table.row_count == 2
        assert table.content_region.height == 1 + 2  # the header and both rows
        assert table.region.bottom <= 24 - 1  # above the footer
        assert table.virtual_size.width <= table.content_region.width  # nothing cut off
        assert not app.screen.query_one("#bottom").display  # decisions, events: aside


async def test_drain_and_restart_go_to_the_worker_under_the_cursor() -> None:
    link = farm()
    app = FarmApp(link, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("d", "down", "r")

    assert link.commands == [
        ("web-1-4242", {"command": "drain_worker", "worker_id": "web-1-4242-w1"}),
        ("web-1-4242", {"command": "restart_worker", "worker_id": "web-1-4242-w2"}),
    ]


async def test_pause_pauses_every_supervisor_and_resumes_once_all_are_paused() -> None:
    first, second = (
        sample_snapshot(NOW, supervisor_id=name) for name in ("web-1-4242", "web-2-777")
    )
    link = farm(first, second)
    app = FarmApp(link, clock=lambda: NOW, refresh_s=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        link.push(*({**snapshot, "at": NOW + 0.1, "paused": True} for snapshot in (first, second)))
        await wait_until(lambda: app.model.view(NOW).paused, message="paused in the snapshots")
        await pilot.press("p")

    assert [command["command"] for _, command in link.commands] == [
        "pause",
        "pause",
        "resume",
        "resume",
    ]


async def test_quit_with_an_owned_farm_stops_it_and_exits_when_it_stopped() -> None:
    link = farm(owns_farm=True)
    app = FarmApp(link, clock=lambda: NOW, refresh_s=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("S")  # shutting the farm down is top's key: not here
        await pilot.press("q")
        await wait_until(lambda: app.return_code is not None, message="the exit")

    assert link.stop_requests == 1
    assert link.commands == []
    assert app.return_code == 0


async def test_quit_from_top_detaches_without_stopping_the_farm() -> None:
    link = farm(owns_farm=False)
    app = FarmApp(link, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        await wait_until(lambda: app.return_code is not None, message="the exit")

    assert link.stop_requests == 0
    assert link.commands == []


async def test_a_refresh_that_fires_while_the_app_exits_finds_no_screen_and_passes() -> None:
    # Textual takes the screens down before it stops the app's timers: one more tick
    # can come with an empty screen stack (seen in CI as ScreenStackError).
    app = FarmApp(farm(), clock=lambda: NOW, refresh_s=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
    assert app.screen_stack == []

    app.refresh_screen()


async def test_dead_letters_requeue_one_then_all_and_purge_only_once_confirmed() -> None:
    link = farm(letters=4)
    second = link.dead_letters[1].job_id
    app = FarmApp(link, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        screen = app.screen
        assert isinstance(screen, DeadLettersScreen)
        await wait_until(lambda: len(screen.letters) == 4, message="the list")

        await pilot.press("down", "r")
        await wait_until(lambda: len(screen.letters) == 3, message="one requeued")
        assert link.requeued == [second]

        await pilot.press("x", "n")
        await pilot.pause()
        assert len(link.dead_letters) == 3

        await pilot.press("x", "y")
        await wait_until(lambda: screen.letters == [], message="purged")
        assert link.requeued == [second]


async def test_requeue_all_requeues_every_dead_letter() -> None:
    link = farm(letters=2)
    every = [letter.job_id for letter in link.dead_letters]
    app = FarmApp(link, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3", "a")
        await wait_until(lambda: link.dead_letters == [], message="all requeued")

    assert link.requeued == every
