"""A read-only mapping that hashes, for the frozen dataclasses of the balancing policy."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TypeVar

__all__ = ["FrozenMap", "freeze"]

_V = TypeVar("_V")


class FrozenMap(Mapping[str, _V]):
    """A read-only mapping that hashes, so the frozen dataclasses holding one hash too."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, _V] | None = None) -> None:
        self._items: dict[str, _V] = dict(items or {})

    def __getitem__(self, key: str) -> _V:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        return repr(self._items)


def freeze(instance: object, name: str, items: Mapping[str, _V]) -> None:
    """Store ``items`` read-only on a frozen dataclass field (a caller may pass a dict)."""
    if not isinstance(items, FrozenMap):
        object.__setattr__(instance, name, FrozenMap(items))
