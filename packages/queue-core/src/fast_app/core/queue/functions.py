"""What ``queue()`` needs to know about a job function, worked out once per function.

A job names its function by dotted import path, so only plain functions defined at the
top level of an importable module can run on workers. Arguments travel as JSON; the
function's annotations restore their types on the way back (``uuid.UUID``, ``datetime``,
dataclasses, pydantic models, ...).
"""

from __future__ import annotations

import inspect
import sys
import threading
import typing
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from pydantic import BaseModel

from .errors import InvalidJobError, JobValidationError

__all__ = ["FunctionSpec", "describe_function"]

Converter = Callable[[Any], Any]

# Annotations whose JSON form is already the right Python value.
_IDENTITY_ANNOTATIONS: frozenset[object] = frozenset(
    {Any, object, str, bool, inspect.Parameter.empty}
)


def _dec_hook(annotation: Any, value: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation.model_validate(value)
    raise NotImplementedError(f"cannot restore a {annotation!r}")


def _supported(annotation: Any) -> bool:
    """Whether msgspec (with our hook for pydantic models) can rebuild this annotation."""
    try:
        info = msgspec.inspect.type_info(annotation)
    except (TypeError, ValueError):
        return False
    return _no_foreign_types(info)


def _no_foreign_types(info: msgspec.inspect.Type) -> bool:
    if isinstance(info, msgspec.inspect.CustomType):
        return isinstance(info.cls, type) and issubclass(info.cls, BaseModel)
    for child_name in ("item_type", "key_type", "value_type"):
        child = getattr(info, child_name, None)
        if isinstance(child, msgspec.inspect.Type) and not _no_foreign_types(child):
            return False
    children: tuple[msgspec.inspect.Type, ...] = ()
    if isinstance(info, msgspec.inspect.UnionType):
        children = info.types
    elif isinstance(info, msgspec.inspect.TupleType):
        children = info.item_types
    return all(_no_foreign_types(child) for child in children)


def _converter_for(annotation: Any) -> Converter | None:
    if annotation in _IDENTITY_ANNOTATIONS or not _supported(annotation):
        # Values of unknown types could not have been encoded anyway; leave them as sent.
        return None

    def convert(value: Any) -> Any:
        return msgspec.convert(value, annotation, strict=False, dec_hook=_dec_hook)

    return convert


def _portability_problem(function: Callable[..., Any]) -> str | None:
    """Why a worker could not import ``function`` by its dotted path, if it could not."""
    name = function.__name__
    qualname = function.__qualname__
    module_name = function.__module__
    if name == "<lambda>":
        return "is a lambda"
    if "<locals>" in qualname:
        return "is a nested (local) function"
    if "." in qualname:
        return "is defined inside a class"
    if module_name == "__main__":
        return "is defined in __main__ (the script being run), which workers cannot import"
    module = sys.modules.get(module_name)
    if module is None or getattr(module, name, None) is not function:
        return f"is not reachable as {module_name}.{name}"
    return None


@dataclass(frozen=True, slots=True, eq=False)
class FunctionSpec:
    """A job function with what ``queue()`` and workers need to call it.

    Attributes:
        function: the function itself.
        path: its dotted import path, e.g. ``app.jobs.send_welcome_email``.
        signature: its signature, to bind arguments at enqueue time and at run time.
        is_async: whether it is an ``async def`` (else it runs in a thread).
        portability_problem: why a worker could not import it, or ``None``.
    """

    function: Callable[..., Any]
    path: str
    signature: inspect.Signature
    is_async: bool
    portability_problem: str | None
    _converters: dict[str, Converter]
    _var_positional: str | None
    _var_keyword: str | None

    def bind(
        self, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]
    ) -> inspect.BoundArguments:
        """Bind arguments to the signature.

        Raises:
            JobValidationError: naming the function and what does not fit.
        """
        try:
            return self.signature.bind(*args, **kwargs)
        except TypeError as error:
            raise JobValidationError(
                f"arguments do not match {self.path}{self.signature}: {error}"
            ) from None

    def restore(
        self, args: list[Any], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Turn JSON-form arguments back into the types the function's annotations name.

        Raises:
            InvalidJobError: when arguments do not bind or a value does not fit its type.
        """
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as error:
            raise InvalidJobError(
                f"arguments do not match {self.path}{self.signature}: {error}"
            ) from None
        if self._converters:
            arguments = bound.arguments
            for name, value in arguments.items():
                convert = self._converters.get(name)
                if convert is None:
                    continue
                try:
                    if name == self._var_positional:
                        arguments[name] = tuple(convert(item) for item in value)
                    elif name == self._var_keyword:
                        arguments[name] = {key: convert(item) for key, item in value.items()}
                    else:
                        arguments[name] = convert(value)
                except (msgspec.ValidationError, ValueError, TypeError) as error:
                    raise InvalidJobError(
                        f"argument {name!r} of {self.path} does not fit its annotation: {error}"
                    ) from None
        return bound.args, bound.kwargs


_cache: weakref.WeakKeyDictionary[Callable[..., Any], FunctionSpec] = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def describe_function(function: object) -> FunctionSpec:
    """Check that ``function`` can be a job and describe it (cached per function).

    Raises:
        JobValidationError: when it is not a plain function (not callable, a bound method,
            a class, a builtin, a ``functools.partial``, ...).
    """
    if callable(function):
        try:
            cached = _cache.get(function)
        except TypeError:  # an unhashable callable object
            cached = None
        if cached is not None:
            return cached
    spec = _build(function)
    with _cache_lock:
        _cache[spec.function] = spec
    return spec


def _build(function: object) -> FunctionSpec:
    if not callable(function):
        raise JobValidationError(
            f"queue() needs a function, got {type(function).__qualname__} {function!r}"
        )
    if inspect.ismethod(function):
        raise JobValidationError(
            f"{function.__qualname__} is a bound method: a worker cannot rebuild the object "
            "it is bound to; queue a module-level function that takes the data it needs"
        )
    if not inspect.isfunction(function):
        raise JobValidationError(
            f"{function!r} is a {type(function).__qualname__}, not a plain function: "
            "queue a function defined with `def` or `async def` at module level"
        )
    signature = inspect.signature(function)
    try:
        hints = typing.get_type_hints(function)
    except Exception:
        hints = {}
    converters: dict[str, Converter] = {}
    var_positional = var_keyword = None
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            var_positional = parameter.name
        elif parameter.kind is inspect.Parameter.VAR_KEYWORD:
            var_keyword = parameter.name
        converter = _converter_for(hints.get(parameter.name, inspect.Parameter.empty))
        if converter is not None:
            converters[parameter.name] = converter
    return FunctionSpec(
        function=function,
        path=f"{function.__module__}.{function.__name__}",
        signature=signature,
        is_async=inspect.iscoroutinefunction(function),
        portability_problem=_portability_problem(function),
        _converters=converters,
        _var_positional=var_positional,
        _var_keyword=var_keyword,
    )
