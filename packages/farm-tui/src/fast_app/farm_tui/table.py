"""A table for rows that change several times a second: each row drawn once per change.

Textual's ``DataTable`` renders every visible cell again after any update (its render
caches are keyed by an update counter): a 32-row workers table cost about 60 ms a
refresh here, long enough for key presses to wait behind it. ``LiveTable`` keeps one
``Strip`` per row and rebuilds only the rows whose cells changed, so a refresh costs what
changed plus copying visible lines. It does what the dashboard needs and no more: a fixed
header, a row cursor (keys and clicks), styled text cells, scrolling.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

__all__ = ["Cell", "Column", "LiveTable", "Row", "column_widths"]

#: A cell: its text and its Rich style (``""``: the table's).
Cell = tuple[str, str]
#: A row: its key and its cells, one per column.
Row = tuple[str, tuple[Cell, ...]]

_AUTO_WIDTH_CAP = 48


@dataclass(frozen=True, slots=True)
class Column:
    """A column: its label, key and width (``None``: its widest cell, up to 48)."""

    label: str
    key: str
    width: int | None = None


def column_widths(columns: Sequence[Column], rows: Sequence[Row]) -> list[int]:
    """The width of each column showing ``rows``: its own, else its widest cell or label
    (at most 48). The cells of a row may be fewer than the columns: the first ones."""
    return [
        column.width
        if column.width is not None
        else min(
            _AUTO_WIDTH_CAP,
            max([cell_len(column.label), *(cell_len(cells[n][0]) for _, cells in rows)]),
        )
        for n, column in enumerate(columns)
    ]


@functools.lru_cache(maxsize=256)
def _style(text: str) -> Style:
    return Style.parse(text) if text else Style.null()


def _fit(text: str, width: int) -> str:
    """``text`` padded or cut (with an ellipsis) to exactly ``width`` cells."""
    if cell_len(text) <= width:
        return set_cell_size(text, width)
    return set_cell_size(text, max(0, width - 1)) + "…" if width else ""


class LiveTable(ScrollView, can_focus=True):
    """Rows under a fixed header, a row cursor; ``update`` redraws only what changed.

    Args:
        columns: the columns.
        name: the widget's name.
        id: the widget's id.
        classes: its CSS classes.
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {"live-table--header", "live-table--cursor"}
    DEFAULT_CSS = """
    LiveTable {
        background: $surface;
        color: $foreground;
        height: 1fr;
        & > .live-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        & > .live-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        &:focus {
            background-tint: $foreground 5%;
            & > .live-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
        }
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "move(-1000000)", "First", show=False),
        Binding("end", "move(1000000)", "Last", show=False),
    ]

    class Highlighted(Message):
        """The row under the cursor changed (moved by a key, a click, or new rows)."""

        def __init__(self, table: LiveTable, key: str | None) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> LiveTable:
            """The table."""
            return self.table

    class Resized(Message):
        """Its size changed (the screen's layout settled, a neighbour grew): a screen
        that fits the columns to its size lays them out again."""

        def __init__(self, table: LiveTable) -> None:
            super().__init__()
            self.table = table

        @property
        def control(self) -> LiveTable:
            """The table."""
            return self.table

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._columns = tuple(columns)
        self._rows: list[Row] = []
        self._index: dict[str, int] = {}
        self._widths = [
            column.width if column.width is not None else cell_len(column.label)
            for column in self._columns
        ]
        self._strips: dict[str, tuple[tuple[Cell, ...], bool, Strip]] = {}
        self._header: Strip | None = None
        self.cursor_row = 0
        self._highlighted: str | None = None

    # -- data ------------------------------------------------------------------------

    def update(self, rows: Sequence[Row]) -> None:
        """Show ``rows`` in this order; the cursor stays on its row while it exists."""
        selected = self.selected_key
        rows = list(rows)
        if rows == self._rows:
            return
        self._rows = rows
        self._index = {key: index for index, (key, _) in enumerate(rows)}
        widths = column_widths(self._columns, rows)
        if widths != self._widths:
            self._widths = widths
            self._strips.clear()
            self._header = None
        else:
            for key in [key for key in self._strips if key not in self._index]:
                del self._strips[key]
        if selected is not None and selected in self._index:
            self.cursor_row = self._index[selected]
        self.cursor_row = max(0, min(self.cursor_row, len(rows) - 1))
        self.virtual_size = Size(sum(widths) + 2 * len(widths), len(rows) + 1)
        self._announce()
        self.refresh()

    def set_columns(self, columns: Sequence[Column]) -> None:
        """Set the columns anew, e.g. shorter labels or fewer columns on a narrow
        terminal. As many as before: the rows stay valid; else they are dropped until the
        next ``update``."""
        columns = tuple(columns)
        if columns == self._columns:
            return
        if len(columns) != len(self._columns):
            self._rows = []
            self._index = {}
            self.cursor_row = 0
        self._columns = columns
        self._widths = column_widths(columns, self._rows)
        self._strips.clear()
        self._header = None
        self.virtual_size = Size(sum(self._widths) + 2 * len(self._widths), len(self._rows) + 1)
        self.refresh()

    @property
    def selected_key(self) -> str | None:
        """The key of the row under the cursor, if any."""
        if 0 <= self.cursor_row < len(self._rows):
            return self._rows[self.cursor_row][0]
        return None

    @property
    def columns(self) -> tuple[Column, ...]:
        """Its columns."""
        return self._columns

    @property
    def rows(self) -> tuple[Row, ...]:
        """The rows it shows, in order."""
        return tuple(self._rows)

    @property
    def row_count(self) -> int:
        """How many rows it shows."""
        return len(self._rows)

    def _announce(self) -> None:
        key = self.selected_key
        if key != self._highlighted:
            self._highlighted = key
            self.post_message(self.Highlighted(self, key))

    # -- drawing ---------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        """Line ``y`` of the widget: the header, then the rows scrolled to."""
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        base = self.rich_style
        if y == 0:
            strip = self._header_strip()
        else:
            index = scroll_y + y - 1
            if index >= len(self._rows):
                return Strip.blank(width, base)
            strip = self._row_strip(index)
        return strip.crop_extend(scroll_x, scroll_x + width, base)

    def _header_strip(self) -> Strip:
        if self._header is None:
            style = self.rich_style + self.get_component_rich_style("live-table--header")
            text = "".join(
                f" {_fit(column.label, width)} "
                for column, width in zip(self._columns, self._widths, strict=True)
            )
            self._header = Strip([Segment(text, style)])
        return self._header

    def _row_strip(self, index: int) -> Strip:
        key, cells = self._rows[index]
        under_cursor = index == self.cursor_row
        cached = self._strips.get(key)
        if cached is not None and cached[0] == cells and cached[1] == under_cursor:
            return cached[2]
        base = self.rich_style
        cursor = self.get_component_rich_style("live-table--cursor") if under_cursor else None
        segments = []
        for (text, style), width in zip(cells, self._widths, strict=True):
            cell_style = base + _style(style)
            if cursor is not None:
                cell_style += cursor
            segments.append(Segment(f" {_fit(text, width)} ", cell_style))
        strip = Strip(segments)
        self._strips[key] = (cells, under_cursor, strip)
        return strip

    def notify_style_update(self) -> None:
        """Styles changed (focus, theme): draw every row again."""
        super().notify_style_update()
        self._strips.clear()
        self._header = None

    def on_resize(self, event: events.Resize) -> None:
        """Tell its screen (a ``Resize`` does not bubble)."""
        self.post_message(self.Resized(self))

    def on_focus(self, event: events.Focus) -> None:
        """The cursor changes colour."""
        self._strips.clear()
        self.refresh()

    def on_blur(self, event: events.Blur) -> None:
        """The cursor changes colour."""
        self._strips.clear()
        self.refresh()

    # -- cursor ----------------------------------------------------------------------

    def move_cursor(self, row: int) -> None:
        """Put the cursor on row ``row`` (clamped), scrolled into view."""
        if not self._rows:
            return
        row = max(0, min(row, len(self._rows) - 1))
        if row != self.cursor_row:
            self.cursor_row = row
            self.refresh()
        _, scroll_y = self.scroll_offset
        visible = max(1, self.size.height - 1)
        if row < scroll_y:
            self.scroll_to(y=row, animate=False)
        elif row >= scroll_y + visible:
            self.scroll_to(y=row - visible + 1, animate=False)
        self._announce()

    def action_move(self, rows: int) -> None:
        """Move the cursor by ``rows``."""
        self.move_cursor(self.cursor_row + rows)

    def action_page(self, pages: int) -> None:
        """Move the cursor by ``pages`` screenfuls."""
        self.move_cursor(self.cursor_row + pages * max(1, self.size.height - 1))

    def on_click(self, event: events.Click) -> None:
        """Put the cursor on the row clicked."""
        offset = event.get_content_offset(self)
        if offset is None or offset.y == 0:
            return
        self.move_cursor(self.scroll_offset.y + offset.y - 1)
