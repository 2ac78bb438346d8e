"""The context itself: values scoped to the current asyncio task or thread."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from ._keys import ContextKey, registered_key
from ._wire import is_wire_encodable

__all__ = ["Context", "context"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _State:
    """An immutable view of one task's context; every change makes a new one."""

    values: Mapping[str, Any] = field(default_factory=dict[str, Any])
    # The subset of ``values`` that can travel with a job, kept up to date on every
    # change so that ``snapshot()`` (called on every enqueue) is a plain copy.
    portable: Mapping[str, Any] = field(default_factory=dict[str, Any])


_EMPTY = _State()
_state: ContextVar[_State] = ContextVar("fast_app_context", default=_EMPTY)

_warned_keys: set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(name: str, value: object) -> None:
    with _warned_lock:
        if name in _warned_keys:
            return
        _warned_keys.add(name)
    warnings.warn(
        f"context key {name!r} holds a {type(value).__qualname__}, which cannot travel "
        "with a job; it stays in this process and is left out of job snapshots",
        RuntimeWarning,
        stacklevel=4,
    )


def _check(name: str, value: object) -> bool:
    """Return whether ``value`` can travel; raise for keys that demand it."""
    if is_wire_encodable(value):
        return True
    key = registered_key(name)
    if key is not None and key.require_serializable:
        raise TypeError(
            f"context key {name!r} requires a serializable value, got {type(value).__qualname__}"
        )
    _warn_once(name, value)
    return False


class Context:
    """Key/value context of the current task, captured by ``queue()`` and restored in jobs.

    Built on ``contextvars``: each asyncio task and each thread sees its own values, and a
    change made in one never shows in another running concurrently.
    """

    def set(self, key: str, value: Any) -> None:
        """Set ``key`` to ``value`` for the current task and the tasks it starts.

        Raises:
            TypeError: when the key requires a serializable value and ``value`` is not.
        """
        name = str(key)
        portable_value = _check(name, value)
        state = _state.get()
        values = dict(state.values)
        values[name] = value
        portable = dict(state.portable)
        if portable_value:
            portable[name] = value
        else:
            portable.pop(name, None)
        _state.set(_State(values, portable))

    @overload
    def get(self, key: ContextKey[T], default: None = None) -> T | None: ...
    @overload
    def get(self, key: ContextKey[T], default: T) -> T: ...
    @overload
    def get(self, key: str, default: Any = None) -> Any: ...
    def get(self, key: str, default: Any = None) -> Any:
        """Return the value of ``key``, else ``default``, else the key's defined default."""
        name = str(key)
        values = _state.get().values
        if name in values:
            return values[name]
        if default is not None:
            return default
        defined = registered_key(key)
        return None if defined is None else defined.default

    def clear(self, *keys: str) -> None:
        """Remove ``keys``; with no keys, remove every value."""
        if not keys:
            _state.set(_EMPTY)
            return
        state = _state.get()
        names = {str(key) for key in keys}
        _state.set(
            _State(
                {k: v for k, v in state.values.items() if k not in names},
                {k: v for k, v in state.portable.items() if k not in names},
            )
        )

    def snapshot(self) -> dict[str, Any]:
        """The values that can travel with a job, as a new dict."""
        return dict(_state.get().portable)

    def install(self, mapping: Mapping[str, Any]) -> None:
        """Replace the current task's whole context with ``mapping`` (a job's snapshot).

        Raises:
            TypeError: when a key requires a serializable value and its value is not.
        """
        values: dict[str, Any] = {}
        portable: dict[str, Any] = {}
        for key, value in mapping.items():
            name = str(key)
            values[name] = value
            if _check(name, value):
                portable[name] = value
        _state.set(_State(values, portable))

    def keys(self) -> list[str]:
        """The names set in the current task."""
        return list(_state.get().values)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and str(key) in _state.get().values

    def __repr__(self) -> str:
        return f"<Context keys={self.keys()!r}>"


context = Context()
