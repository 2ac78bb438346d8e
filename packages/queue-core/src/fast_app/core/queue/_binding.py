"""Checking that arguments fit a signature, fast.

``inspect.Signature.bind`` costs about 5 µs, paid twice per job (at enqueue and at run
time). This precomputed shape answers the same yes/no question in well under a
microsecond; when the answer is no, ``Signature.bind`` is asked for its precise message.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["SignatureShape"]

_P = inspect.Parameter


@dataclass(frozen=True, slots=True)
class SignatureShape:
    """The facts about a signature that decide whether a call binds.

    Attributes:
        positional: names that take positional arguments, in order.
        positional_only: the subset of ``positional`` that cannot be passed by keyword.
        keyword: names that can be passed by keyword.
        required: names without a default.
        var_positional: name of ``*args``, if any.
        var_keyword: name of ``**kwargs``, if any.
    """

    positional: tuple[str, ...]
    positional_only: frozenset[str]
    keyword: frozenset[str]
    required: frozenset[str]
    var_positional: str | None
    var_keyword: str | None

    @classmethod
    def of(cls, signature: inspect.Signature) -> SignatureShape:
        """Work out the shape of ``signature``."""
        positional: list[str] = []
        positional_only: set[str] = set()
        keyword: set[str] = set()
        required: set[str] = set()
        var_positional = var_keyword = None
        for parameter in signature.parameters.values():
            kind = parameter.kind
            if kind is _P.VAR_POSITIONAL:
                var_positional = parameter.name
                continue
            if kind is _P.VAR_KEYWORD:
                var_keyword = parameter.name
                continue
            if kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD):
                positional.append(parameter.name)
            if kind is _P.POSITIONAL_ONLY:
                positional_only.add(parameter.name)
            else:
                keyword.add(parameter.name)
            if parameter.default is _P.empty:
                required.add(parameter.name)
        return cls(
            tuple(positional),
            frozenset(positional_only),
            frozenset(keyword),
            frozenset(required),
            var_positional,
            var_keyword,
        )

    def binds(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> bool:
        """Whether ``function(*args, **kwargs)`` would bind without a ``TypeError``."""
        positional = self.positional
        count = len(args)
        if count > len(positional) and self.var_positional is None:
            return False
        filled = positional[:count]
        for name in kwargs:
            if name in self.keyword:
                if name in filled:
                    return False  # given twice
            elif self.var_keyword is None:
                return False  # unknown, or positional-only, with no **kwargs to take it
        for name in self.required:
            if name not in filled and (name not in kwargs or name in self.positional_only):
                return False
        return True

    def name_of_positional(self, index: int) -> str | None:
        """The parameter receiving positional argument ``index``."""
        if index < len(self.positional):
            return self.positional[index]
        return self.var_positional

    def name_of_keyword(self, key: str) -> str | None:
        """The parameter receiving keyword argument ``key``."""
        if key in self.keyword:
            return key
        return self.var_keyword
