"""Temporary alias of ``fast_app.farm.listener`` (where ``FarmListener`` now lives).

Kept only because ``tests/test_fuzz.py``, edited concurrently, still imports
``collect_snapshots`` from here: delete this module once that import reads
``from fast_app.farm.listener import collect_snapshots``. Not a public path.
"""

from fast_app.farm.listener import FarmListener, collect_snapshots

__all__ = ["FarmListener", "collect_snapshots"]
