"""Typed context keys and the registry that lets plain string keys honour them."""

from __future__ import annotations

import threading
from typing import Any, Generic, TypeVar, overload

__all__ = ["ContextKey", "define_key", "registered_key"]

T = TypeVar("T")


class ContextKey(str, Generic[T]):
    """A typed context key; it *is* its name, so it works wherever a string key does.

    Attributes:
        default: value returned by ``context.get`` when the key is unset.
        require_serializable: ``context.set`` refuses values the job codec cannot encode.
    """

    default: T | None
    require_serializable: bool

    def __new__(
        cls, name: str, default: T | None = None, require_serializable: bool = False
    ) -> ContextKey[T]:
        if not name:
            raise ValueError("a context key needs a non-empty name")
        key = super().__new__(cls, name)
        key.default = default
        key.require_serializable = require_serializable
        return key

    @property
    def name(self) -> str:
        """The key's name, as a plain string."""
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"ContextKey({self.name!r})"


_registry: dict[str, ContextKey[Any]] = {}
_registry_lock = threading.Lock()


@overload
def define_key(
    name: str,
    default: T,
    require_serializable: bool = False,
    *,
    require_picklable: bool | None = None,
) -> ContextKey[T]: ...
@overload
def define_key(
    name: str,
    default: None = None,
    require_serializable: bool = False,
    *,
    require_picklable: bool | None = None,
) -> ContextKey[Any]: ...
def define_key(
    name: str,
    default: object = None,
    require_serializable: bool = False,
    *,
    require_picklable: bool | None = None,
) -> ContextKey[Any]:
    """Define (or fetch) the typed key ``name``.

    Args:
        name: the key's name; string keys with this name follow the key's rules.
        default: what ``context.get`` returns while the key is unset.
        require_serializable: make ``context.set`` raise ``TypeError`` for values that
            cannot travel with a job instead of warning.
        require_picklable: the name older FastApp code used for ``require_serializable``.

    Raises:
        ValueError: when ``name`` was already defined with other rules.
    """
    if require_picklable is not None:
        require_serializable = require_serializable or require_picklable
    with _registry_lock:
        existing = _registry.get(name)
        if existing is not None:
            if existing.require_serializable != require_serializable or existing.default != default:
                raise ValueError(
                    f"context key {name!r} is already defined with "
                    f"default={existing.default!r}, "
                    f"require_serializable={existing.require_serializable}"
                )
            return existing
        key: ContextKey[Any] = ContextKey(name, default, require_serializable)
        _registry[name] = key
        return key


def registered_key(name: str) -> ContextKey[Any] | None:
    """The key defined under ``name``, if any."""
    if isinstance(name, ContextKey):
        return name
    return _registry.get(name)
