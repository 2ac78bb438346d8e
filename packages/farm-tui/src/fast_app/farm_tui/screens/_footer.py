"""Which keys the footer shows when the terminal is too narrow for all of them.

Textual's footer lays its keys out in one line and cuts off whatever passes the right
edge: at 80 columns that was ``q``, the last key. Here the screen decides instead: it
leaves some keys out of the footer (they stay bound, and ``?`` lists every key) so that
the ones that matter fit.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from typing import Literal

from rich.cells import cell_len
from textual.binding import ActiveBinding, Binding

__all__ = ["KEPT", "SHOWN", "SPARE", "Rank", "fit_footer", "footer_bindings", "key_width"]

#: How much a key matters in the footer: shown whatever the width, shown while there is
#: room, or the first to go.
Rank = Literal["kept", "shown", "spare"]
KEPT: Rank = "kept"
SHOWN: Rank = "shown"
SPARE: Rank = "spare"


def key_width(key_display: str, description: str) -> int:
    """Cells a key takes in the compact footer: ``q Quit`` and the space after it."""
    if not description:
        return cell_len(key_display) + 1
    return cell_len(key_display) + 1 + cell_len(description) + 1


def fit_footer(keys: Sequence[tuple[int, Rank]], room: int) -> list[bool]:
    """Which keys to show, given each one's width and rank, in ``room`` cells.

    All of them when they fit; else the spare keys go first, then the others, each time
    the rightmost first, until the rest fit. The kept keys stay, even when they alone do
    not fit.
    """
    shown = [True] * len(keys)
    total = sum(width for width, _ in keys)
    for rank in (SPARE, SHOWN):
        for index in reversed(range(len(keys))):
            if total <= room:
                return shown
            width, key_rank = keys[index]
            if key_rank == rank:
                shown[index] = False
                total -= width
    return shown


def footer_bindings(
    bindings: Mapping[str, ActiveBinding],
    room: int,
    *,
    kept: Collection[str],
    spare: Collection[str],
    key_display: Callable[[Binding], str],
) -> dict[str, ActiveBinding]:
    """``bindings`` with ``show`` turned off for the keys the footer leaves out in
    ``room`` cells (``fit_footer``); the actions in ``kept`` and ``spare`` rank so.

    The footer shows one key per action (the first), and only the bindings it shows
    count.
    """
    shown_bindings: dict[str, Binding] = {}  # by action, as the footer shows them
    for active in bindings.values():
        if active.binding.show:
            shown_bindings.setdefault(active.binding.action, active.binding)
    keys = [
        (key_width(key_display(binding), binding.description), _rank(action, kept, spare))
        for action, binding in shown_bindings.items()
    ]
    fits = fit_footer(keys, room)
    left_out = {action for action, fit in zip(shown_bindings, fits, strict=True) if not fit}
    if not left_out:
        return dict(bindings)
    return {
        key: (
            active._replace(binding=replace(active.binding, show=False))
            if active.binding.action in left_out
            else active
        )
        for key, active in bindings.items()
    }


def _rank(action: str, kept: Collection[str], spare: Collection[str]) -> Rank:
    if action in kept:
        return KEPT
    return SPARE if action in spare else SHOWN
