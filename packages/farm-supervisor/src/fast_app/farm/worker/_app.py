"""Loading the application's code into a worker: imports and lifecycle hooks."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Sequence

__all__ = ["load_application", "run_hooks"]


def load_application(modules: Sequence[str]) -> None:
    """Put the current directory on ``sys.path`` and import ``modules``.

    Raises:
        ImportError: (or whatever the module raises) when one cannot be imported.
    """
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    for module in modules:
        importlib.import_module(module)


async def run_hooks(paths: Sequence[str]) -> None:
    """Call each ``module:function`` hook in order, awaiting those that are async."""
    for path in paths:
        module_name, _, name = path.partition(":")
        hook = getattr(importlib.import_module(module_name), name)
        result = hook()
        if inspect.isawaitable(result):
            await result
