"""At 80 by 24 every screen's footer keeps ``q`` and ``?``, and the Jobs screen shows every
running job, every column of it and of the recent runs; the footer's choice of keys and
the Jobs tables' layouts are pure functions, tested on their own."""

from __future__ import annotations

import pytest
from textual.widget import Widget
from textual.widgets import Footer

from fast_app.farm_tui import FarmApp, StaticFarm
from fast_app.farm_tui.model import FarmModel
from fast_app.farm_tui.sample import sample_dead_letters, sample_history
from fast_app.farm_tui.screens._footer import KEPT, SHOWN, SPARE, fit_footer
from fast_app.farm_tui.screens.jobs import recent_layout, running_layout
from fast_app.farm_tui.table import LiveTable
from fast_app.farm_tui.view import FarmView

NOW = 1_700_000_000.0
NARROW = (80, 24)
WIDE = (200, 50)
#: The keys to press for each screen, from the overview.
SCREENS = {
    "overview": [],
    "jobs": ["2"],
    "dead_letters": ["3"],
    "output": ["4"],
    "functions": ["5"],
    "help": ["question_mark"],
}


def farm(*, owns_farm: bool) -> StaticFarm:
    """The sample farm of the snapshots: 3 workers with 2 jobs each (6 running)."""
    return StaticFarm(
        sample_history(NOW), dead_letters=sample_dead_letters(NOW), owns_farm=owns_farm
    )


def dashboard(*, owns_farm: bool) -> FarmApp:
    return FarmApp(farm(owns_farm=owns_farm), clock=lambda: NOW)


def shown_footer_keys(app: FarmApp) -> list[str]:
    """The footer's keys on screen (``q Quit``), those past its right edge left out.

    The help is a dialog without a footer: the one seen is the screen's under it.
    """
    footer = next(
        screen.query_one(Footer) for screen in reversed(app.screen_stack) if screen.query(Footer)
    )
    keys: list[Widget] = list(footer.children)
    return [
        str(key.render()).strip()
        for key in keys
        if key.region.width and footer.region.contains_region(key.region)
    ]


def sample_view() -> FarmView:
    """What the dashboard sees of the sample farm at ``NOW``."""
    model = FarmModel()
    for snapshot in sample_history(NOW):
        model.ingest(snapshot)
    return model.view(NOW)


def running_rows_shown(app: FarmApp) -> int:
    """How many rows of the Running table fit in view, under its header."""
    table = app.screen.query_one("#running", LiveTable)
    return min(table.row_count, table.scrollable_content_region.height - 1)


@pytest.mark.parametrize("owns_farm", [True, False], ids=["work --tui", "top"])
@pytest.mark.parametrize("screen", list(SCREENS))
async def test_the_footer_keeps_quit_and_help_at_80_by_24(screen: str, owns_farm: bool) -> None:
    # Given the dashboard of a farm on an 80 by 24 terminal
    app = dashboard(owns_farm=owns_farm)
    async with app.run_test(size=NARROW) as pilot:
        # When the operator opens the screen
        await pilot.press(*SCREENS[screen])
        await pilot.pause()
        await pilot.pause()

        # Then its footer shows the quit (or detach) key and the help key, whole
        keys = shown_footer_keys(app)
    quit_key = "q Quit" if owns_farm else "q Detach"
    assert quit_key in keys, keys
    assert "? Help" in keys, keys


async def test_the_footer_shows_every_key_where_there_is_room() -> None:
    # Given the dead letters of top on a 200-column terminal
    app = dashboard(owns_farm=False)
    async with app.run_test(size=WIDE) as pilot:
        # When it is shown
        await pilot.press("3")
        await pilot.pause()
        await pilot.pause()

        # Then nothing is left out of its footer
        keys = shown_footer_keys(app)
    assert keys == [
        "r Requeue",
        "a Requeue all",
        "x Purge",
        "u Reload",
        "/ Filter",
        "1 Overview",
        "2 Jobs",
        "3 DLQ",
        "4 Output",
        "5 Functions",
        "p Pause",
        "S Shut down",
        "? Help",
        "q Detach",
    ]


async def test_the_footer_gives_back_its_keys_when_the_terminal_widens() -> None:
    # Given the dead letters on an 80-column terminal, some keys left out of the footer
    app = dashboard(owns_farm=True)
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("3")
        await pilot.pause()
        await pilot.pause()
        narrow = shown_footer_keys(app)

        # When the terminal widens
        await pilot.resize_terminal(*WIDE)
        await pilot.pause()
        await pilot.pause()

        # Then they are back
        wide = shown_footer_keys(app)
    assert "p Pause" not in narrow
    assert "p Pause" in wide
    assert set(narrow) < set(wide)


async def test_keys_left_out_of_the_footer_still_work() -> None:
    # Given the dead letters at 80 by 24, whose footer has no room for p Pause
    link = farm(owns_farm=True)
    app = FarmApp(link, clock=lambda: NOW)
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("3")
        await pilot.pause()
        await pilot.pause()
        assert "p Pause" not in shown_footer_keys(app)

        # When the operator presses p all the same
        await pilot.press("p")
        await pilot.pause()

    # Then the farm is asked to pause
    assert link.commands == [("web-1-4242", {"command": "pause"})]


@pytest.mark.parametrize("size", [NARROW, WIDE], ids=["80x24", "200x50"])
async def test_the_jobs_screen_shows_every_running_job(size: tuple[int, int]) -> None:
    # Given a farm with 6 jobs running
    app = dashboard(owns_farm=True)
    async with app.run_test(size=size) as pilot:
        # When the operator opens the Jobs screen
        await pilot.press("2")
        await pilot.pause()
        await pilot.pause()

        # Then the Running table has room for all 6 rows, and the recent runs and the
        # selected job keep some room of their own
        table = app.screen.query_one("#running", LiveTable)
        assert table.row_count == 6
        assert running_rows_shown(app) == 6
        recent = app.screen.query_one("#recent", LiveTable)
        assert recent.scrollable_content_region.height >= 3  # its header and 2 runs
        assert app.screen.query_one("#detail-box").scrollable_content_region.height >= 4


async def test_the_running_table_fits_80_columns_hard_timeouts_and_all() -> None:
    # Given a farm with 6 jobs running, 3 of them with a hard timeout
    app = dashboard(owns_farm=True)
    async with app.run_test(size=NARROW) as pilot:
        # When the operator opens the Jobs screen on an 80 by 24 terminal
        await pilot.press("2")
        await pilot.pause()
        await pilot.pause()

        # Then the Running table is no wider than its room (nothing to scroll sideways to)
        table = app.screen.query_one("#running", LiveTable)
        assert table.virtual_size.width <= table.scrollable_content_region.width
        assert table.max_scroll_x == 0
        # and its last column, the hard timeouts, is on screen with both bars' figures
        lines = [table.render_line(y).text for y in range(table.row_count + 1)]
    assert lines[0].rstrip().endswith("Hard timeout"), lines[0]
    for line in lines[1:]:
        assert "/10s" in line, line  # the soft timeout's figures
    assert sum("/20s" in line for line in lines[1:]) == 3, lines  # the hard timeouts'
    assert any("…-w3" in line or "web-1-4242-w3" in line for line in lines[1:]), lines


async def test_the_running_table_fits_again_when_the_terminal_narrows() -> None:
    # Given the Jobs screen on a 200-column terminal, its bars 10 cells wide (and no
    # periodic refresh in the time of the test: only the resize may lay it out again)
    app = FarmApp(farm(owns_farm=True), clock=lambda: NOW, refresh_s=3600)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("2")
        await pilot.pause()
        table = app.screen.query_one("#running", LiveTable)
        assert table.columns[-1].width == 22

        # When the terminal narrows to 80 by 24
        await pilot.resize_terminal(*NARROW)
        await pilot.pause()
        await pilot.pause()

        # Then the table is laid out anew to fit its room
        assert table.virtual_size.width <= table.scrollable_content_region.width
        assert table.columns[-1].width == len("Hard timeout")


async def test_the_running_table_fits_again_when_its_height_changes_alone() -> None:
    # Given the Jobs screen at 80 by 24, its 6 running jobs all in view, no scrollbar
    # (and no periodic refresh in the time of the test)
    app = FarmApp(farm(owns_farm=True), clock=lambda: NOW, refresh_s=3600)
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2")
        await pilot.pause()
        table = app.screen.query_one("#running", LiveTable)
        assert not table.show_vertical_scrollbar
        assert table.virtual_size.width == table.scrollable_content_region.width

        # When the table loses lines while the terminal keeps its size (as when the
        # screen's first layout settles after the tables were filled)
        table.styles.height = 4
        await pilot.pause()
        await pilot.pause()

        # Then its columns are laid out anew inside the scrollbar its rows now need:
        # nothing to scroll sideways to
        assert table.show_vertical_scrollbar
        assert table.virtual_size.width <= table.scrollable_content_region.width
        assert table.max_scroll_x == 0


@pytest.mark.parametrize("size", [NARROW, WIDE], ids=["80x24", "200x50"])
async def test_the_recent_table_fits_its_width_took_and_error_whole(size: tuple[int, int]) -> None:
    # Given a farm with more recent runs than the Recent table has lines, some failed
    app = dashboard(owns_farm=True)
    async with app.run_test(size=size) as pilot:
        # When the operator opens the Jobs screen (on an 80 by 24 terminal, say)
        await pilot.press("2")
        await pilot.pause()
        await pilot.pause()

        # Then the Recent table is no wider than its room inside its vertical scrollbar
        # (nothing to scroll sideways to)
        table = app.screen.query_one("#recent", LiveTable)
        assert table.show_vertical_scrollbar
        assert table.virtual_size.width <= table.scrollable_content_region.width
        assert table.max_scroll_x == 0
        # and its header ends with Took and Error, whole, the failures' messages under them
        header = table.render_line(0).text
        errors = {cells[-1][0] for _, cells in table.rows} - {""}
    assert header.split()[-2:] == ["Took", "Error"], header
    assert errors and all(error.startswith("GatewayErr") for error in errors), errors


def test_the_running_layout_shortens_bars_then_names_from_the_left_when_narrow() -> None:
    # Given the sample farm's 6 running jobs
    running = sample_view()

    # When the Running table is laid out 78 cells wide (an 80-column terminal's)
    columns, rows = running_layout(running, NOW, 78)

    # Then its columns fit, every cell whole in its column
    widths = [column.width or 0 for column in columns]
    assert [column.key for column in columns] == [
        "job",
        "function",
        "worker",
        "attempt",
        "elapsed",
        "soft",
        "hard",
    ]
    assert sum(width + 2 for width in widths) <= 78
    assert len(rows) == 6
    for _, cells in rows:
        assert all(len(text) <= width for (text, _), width in zip(cells, widths, strict=True))
    # with 4-cell bars and their figures
    soft = [cells[5][0] for _, cells in rows]
    assert soft[0] == "███░ 7.5/10s"
    assert {cells[6][0] for _, cells in rows} == {
        "-",
        "█░░░ 4.0/20s",
        "█░░░ 3.0/20s",
        "░░░░ 2.0/20s",
    }
    # the functions cut on the left, the end of their path kept; the workers to their end
    functions = {cells[1][0] for _, cells in rows}
    assert "…billing.charge" in functions
    assert all(name.endswith(("pull", "charge", "send_digest", "render")) for name in functions)
    assert {cells[2][0] for _, cells in rows} == {"…-w1", "…-w2", "…-w3"}


def test_the_running_layout_keeps_wide_bars_and_whole_names_where_there_is_room() -> None:
    # Given the sample farm's 6 running jobs
    running = sample_view()

    # When the Running table is laid out 198 cells wide (a 200-column terminal's)
    columns, rows = running_layout(running, NOW, 198)

    # Then the bars are 10 cells with 12 for their figures, the names whole
    assert [(column.label, column.width) for column in columns] == [
        ("Job", 8),
        ("Function", len("app.mail.send_digest")),
        ("Worker", len("web-1-4242-w3")),
        ("Try", 3),
        ("Elapsed", 7),
        ("Soft timeout", 22),
        ("Hard timeout", 22),
    ]
    first = rows[0][1]
    assert first[1][0] == "app.sync.pull"
    assert first[2][0] == "web-1-4242-w3"
    assert first[5][0] == "████████░░ 7.5/10s"


def test_the_recent_layout_shares_the_width_between_function_and_error_when_narrow() -> None:
    # Given the sample farm's recent runs, successes and failures
    recent = sample_view()

    # When the Recent table is laid out 78 cells wide (an 80-column terminal's)
    columns, rows = recent_layout(recent, NOW, 78)

    # Then its columns fit, every cell whole in its column, and Took and Error whole
    widths = [column.width or 0 for column in columns]
    labels = [column.label for column in columns]
    assert labels == ["Ended", "Outcome", "Job", "Function", "Worker", "Took", "Error"]
    assert sum(width + 2 for width in widths) <= 78
    assert all(len(label) <= width for label, width in zip(labels, widths, strict=True))
    assert len(rows) == len(recent.recent)
    for _, cells in rows:
        assert all(len(text) <= width for (text, _), width in zip(cells, widths, strict=True))
    # the columns of figures as wide as what they show, the error 12 cells at least
    assert widths[:3] == [len("1.5s ago"), len("dead_lettered"), 8]
    assert widths[5] == len("1.04s")
    assert widths[6] >= 12
    # the functions cut on the left, the end of their path kept; the workers to their end
    functions = {cells[3][0] for _, cells in rows}
    assert any(name.startswith("…") for name in functions), functions
    assert all(name.endswith(("pull", "charge", "send_digest", "render")) for name in functions)
    assert {cells[4][0] for _, cells in rows} == {"…-w1"}
    # the errors by the start of their message
    errors = {cells[6][0] for _, cells in rows} - {""}
    assert errors == {"GatewayError: card declined for order 1042"[: widths[6] - 1] + "…"}


def test_the_recent_layout_keeps_every_name_whole_where_there_is_room() -> None:
    # Given the sample farm's recent runs
    recent = sample_view()

    # When the Recent table is laid out 198 cells wide (a 200-column terminal's)
    columns, rows = recent_layout(recent, NOW, 198)

    # Then every column has its usual width, the error the rest, every name and error whole
    assert [(column.label, column.width) for column in columns] == [
        ("Ended", 9),
        ("Outcome", 13),
        ("Job", 8),
        ("Function", len("app.mail.send_digest")),
        ("Worker", len("web-1-4242-w1")),
        ("Took", 7),
        ("Error", 198 - 2 * 7 - (9 + 13 + 8 + 20 + 13 + 7)),
    ]
    assert {cells[3][0] for _, cells in rows} == {
        "app.mail.send_digest",
        "app.reports.render",
        "app.billing.charge",
        "app.sync.pull",
    }
    assert {cells[4][0] for _, cells in rows} == {"web-1-4242-w1"}
    errors = {cells[6][0] for _, cells in rows} - {""}
    assert errors == {"GatewayError: card declined for order 1042"}


def test_every_key_shows_when_all_fit() -> None:
    assert fit_footer([(6, SPARE), (7, SHOWN), (6, KEPT)], room=19) == [True, True, True]


def test_spare_keys_go_first_then_the_others_right_to_left_never_the_kept_ones() -> None:
    keys = [(10, SHOWN), (8, SPARE), (6, SHOWN), (9, SPARE), (6, KEPT), (7, KEPT)]

    assert fit_footer(keys, room=40) == [True, True, True, False, True, True]
    assert fit_footer(keys, room=30) == [True, False, True, False, True, True]
    assert fit_footer(keys, room=25) == [True, False, False, False, True, True]
    assert fit_footer(keys, room=5) == [False, False, False, False, True, True]
