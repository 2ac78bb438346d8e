"""The dead-letters screen's filter: ``/`` to type it, escape to clear it, and bulk
requeue and purge of the letters it shows (the Textual pilot, fixed data)."""

from __future__ import annotations

from farm_testkit import wait_until

from fast_app.farm.dead_letters import DeadLetter
from fast_app.farm_tui import FarmApp, StaticFarm
from fast_app.farm_tui.sample import sample_dead_letters, sample_snapshot
from fast_app.farm_tui.screens import DeadLettersScreen
from fast_app.farm_tui.screens.confirm import ConfirmScreen
from fast_app.farm_tui.table import LiveTable

NOW = 1_700_000_000.0
SIZE = (140, 40)


def farm(letters: int = 6) -> StaticFarm:
    return StaticFarm([sample_snapshot(NOW)], dead_letters=sample_dead_letters(NOW, count=letters))


def ids(letters: list[DeadLetter], reason: str | None = None) -> list[str | None]:
    return [letter.job_id for letter in letters if reason is None or letter.reason == reason]


async def open_screen(app: FarmApp, pilot: object, count: int) -> DeadLettersScreen:
    screen = app.screen
    assert isinstance(screen, DeadLettersScreen)
    await wait_until(lambda: len(screen.letters) == count, message="the list")
    return screen


async def test_slash_filters_the_list_and_escape_clears_it() -> None:
    link = farm()
    timeouts = ids(link.dead_letters, "soft_timeout")
    app = FarmApp(link, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        screen = await open_screen(app, pilot, 6)

        # When the operator types a filter
        await pilot.press("slash", *"reason:soft_timeout", "enter")
        await pilot.pause()

        # Then only the matches are listed, and the title says how many of how many
        assert ids(screen.shown) == timeouts
        table = screen.query_one("#letters", LiveTable)
        assert table.row_count == len(timeouts) == 3
        assert str(table.border_title).startswith("Dead letters: 3 of 6 match")
        assert screen.focused is table

        # Free text narrows it further, in any case
        await pilot.press("slash", "space", *"RAN PAST", "enter")
        await pilot.pause()
        assert screen.where.text == "RAN PAST"
        assert ids(screen.shown) == timeouts

        await pilot.press("slash", *" nothing-like-this")
        await pilot.pause()
        assert screen.shown == []

        # Escape clears it
        await pilot.press("escape")
        await pilot.pause()
        assert screen.where.is_empty
        assert table.row_count == 6


async def test_requeue_all_with_a_filter_requeues_only_the_shown_letters_once_confirmed() -> None:
    link = farm()
    failed = ids(link.dead_letters, "failed")
    app = FarmApp(link, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        screen = await open_screen(app, pilot, 6)
        await pilot.press("slash", *"reason:failed card declined", "enter", "a")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)

        await pilot.press("n")
        await pilot.pause()
        assert link.requeued == []

        await pilot.press("a", "y")
        await wait_until(lambda: len(screen.letters) == 3, message="requeued")

    assert link.requeued == failed
    assert ids(link.dead_letters) == ids(link.dead_letters, "soft_timeout")


async def test_purge_with_a_filter_deletes_only_the_shown_letters_once_confirmed() -> None:
    link = farm()
    timeouts = ids(link.dead_letters, "soft_timeout")
    app = FarmApp(link, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        screen = await open_screen(app, pilot, 6)
        await pilot.press("slash", *"reason:failed", "enter", "x")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert len(link.dead_letters) == 6

        await pilot.press("x", "y")
        await wait_until(lambda: len(screen.letters) == 3, message="purged")
        assert screen.shown == []

    assert ids(link.dead_letters) == timeouts
    assert link.requeued == []


async def test_a_since_not_understood_keeps_the_last_filter() -> None:
    link = farm()
    app = FarmApp(link, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        screen = await open_screen(app, pilot, 6)
        # The letters failed 10 to 5 minutes before NOW, one a minute: 8m keeps 8 to 5.
        await pilot.press("slash", *"since:8m")
        await pilot.pause()
        assert len(screen.shown) == 4
        await pilot.press(*"x")  # since:8mx
        await pilot.pause()
        assert len(screen.shown) == 4
        await pilot.press("enter")
        await pilot.pause()
        assert screen.query_one("#filter").has_focus
