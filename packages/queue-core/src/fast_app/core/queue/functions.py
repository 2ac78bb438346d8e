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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from pydantic import BaseModel

from ._binding import SignatureShape
from .errors import InvalidJobError, JobValidationError

__all__ = ["FunctionSpec", "describe_function"]

Converter = Callable[[Any], Any]

# Annotations whose JSON form is already the right Python value.
_IDENTITY_ANNOTATIONS: frozenset[object] = frozenset(
    {Any, object, str, bool, inspect.Parameter.empty}
)


_SCALARS: frozenset[object] = frozenset({int, float})


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

    if annotation in _SCALARS:
        # Most values already arrive as their annotated scalar: skip msgspec for them.
        def convert_scalar(value: Any) -> Any:
            if type(value) is annotation:
                return value
            return msgspec.convert(value, annotation, strict=False, dec_hook=_dec_hook)

        return convert_scalar

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
        signature: its signature.
        is_async: whether it is an ``async def`` (else it runs in a thread).
        portability_problem: why a worker could not import it, or ``None``.
    """

    function: Callable[..., Any]
    path: str
    signature: inspect.Signature
    is_async: bool
    portability_problem: str | None
    _shape: SignatureShape
    _converters: dict[str, Converter]

    def check_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Check that the arguments bind to the signature.

        Raises:
            JobValidationError: naming the function and what does not fit.
        """
        if not self._shape.binds(args, kwargs):
            raise JobValidationError(self._binding_problem(args, kwargs))

    def name_arguments(
        self, args: Sequence[Any], kwargs: Mapping[str, Any], *, partial: bool = False
    ) -> dict[str, Any]:
        """Name each argument of a call by where it lands (for messages and tests; slow).

        A positional or keyword argument of a named parameter is named after that
        parameter, so ``f(1)`` and ``f(a=1)`` give the same ``{"a": 1}``. The items of
        ``*args`` and ``**kwargs`` are named one by one: ``args[0]``, ``args[1]``... and
        each keyword's own name (``kwargs['a']`` for a keyword that only ``**kwargs`` can
        take because ``a`` is positional-only).

        Args:
            args: the call's positional arguments.
            kwargs: its keyword arguments, without the special ``__`` ones.
            partial: allow required parameters to be missing (``Signature.bind_partial``).

        Raises:
            TypeError: the arguments do not bind to the signature.
        """
        signature = self.signature
        bind = signature.bind_partial if partial else signature.bind
        named: dict[str, Any] = {}
        for name, value in bind(*args, **kwargs).arguments.items():
            kind = signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                named.update((f"{name}[{index}]", item) for index, item in enumerate(value))
            elif kind is inspect.Parameter.VAR_KEYWORD:
                for key, item in value.items():
                    named[f"{name}[{key!r}]" if key in named else key] = item
            else:
                named[name] = value
        return named

    def restore(self, args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Turn JSON-form arguments back into the types the function's annotations name.

        Raises:
            InvalidJobError: when arguments do not bind or a value does not fit its type.
        """
        shape = self._shape
        if not shape.binds(args, kwargs):
            raise InvalidJobError(self._binding_problem(args, kwargs))
        converters = self._converters
        if not converters:
            return args, kwargs
        name = None
        try:
            restored_args = list(args)
            for index, value in enumerate(args):
                name = shape.name_of_positional(index)
                convert = converters.get(name) if name is not None else None
                if convert is not None:
                    restored_args[index] = convert(value)
            restored_kwargs = dict(kwargs)
            for key, value in kwargs.items():
                name = shape.name_of_keyword(key)
                convert = converters.get(name) if name is not None else None
                if convert is not None:
                    restored_kwargs[key] = convert(value)
        except (msgspec.ValidationError, ValueError, TypeError) as error:
            raise InvalidJobError(
                f"argument {name!r} of {self.path} does not fit its annotation: {error}"
            ) from None
        return restored_args, restored_kwargs

    def _binding_problem(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as error:
            return f"arguments do not match {self.path}{self.signature}: {error}"
        return f"arguments do not match {self.path}{self.signature}"


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
    for parameter in signature.parameters.values():
        converter = _converter_for(hints.get(parameter.name, inspect.Parameter.empty))
        if converter is not None:
            converters[parameter.name] = converter
    return FunctionSpec(
        function=function,
        path=f"{function.__module__}.{function.__name__}",
        signature=signature,
        is_async=inspect.iscoroutinefunction(function),
        portability_problem=_portability_problem(function),
        _shape=SignatureShape.of(signature),
        _converters=converters,
    )
