"""``?``: every key of the dashboard and every screen, read from their bindings."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

__all__ = ["HelpScreen", "key_lines"]

#: A line of the help: where the key works, the key as shown, what it does.
KeyLine = tuple[str, str, str]


def key_lines(where: str, bindings: Iterable[BindingType]) -> list[KeyLine]:
    """The keys of ``bindings`` as the help lists them (hidden ones too: the table
    cursor keys are keys as well)."""
    lines = []
    for binding in Binding.make_bindings(bindings):
        key = binding.key_display or binding.key
        does = binding.description or binding.action
        if binding.tooltip:
            does += f": {binding.tooltip}"
        lines.append((where, key, does))
    return lines


class HelpScreen(ModalScreen[None]):
    """The keys, by where they work, over the screen it was opened from.

    Args:
        lines: ``(where, key, what it does)``, in the order to show.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss", "Close", show=False)
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen #help {
        width: 72; max-width: 95%; height: auto; max-height: 90%;
        border: round $primary; padding: 0 1; background: $surface;
    }
    HelpScreen #help-text { width: auto; height: auto; }
    """

    def __init__(self, lines: Sequence[KeyLine]) -> None:
        super().__init__()
        self._lines = list(lines)

    def compose(self) -> ComposeResult:
        """The list of keys."""
        with VerticalScroll(id="help"):
            yield Static(self._text(), id="help-text")

    def on_mount(self) -> None:
        """Its title."""
        help_box = self.query_one("#help")
        help_box.border_title = "Keys (escape or ? closes)"

    def _text(self) -> Text:
        text = Text()
        key_width = max((len(key) for _, key, _ in self._lines), default=1)
        where = None
        for place, key, does in self._lines:
            if place != where:
                if where is not None:
                    text.append("\n")
                text.append(f"{place}\n", "bold underline")
                where = place
            text.append(f"  {key:<{key_width}}  ", "bold cyan").append(f"{does}\n")
        text.rstrip()
        return text if self._lines else Text("no keys")

    async def action_dismiss(self, result: None = None) -> None:
        """Close the help."""
        self.dismiss(result)
