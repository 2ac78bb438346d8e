"""FastApp's demo: a FastAPI service whose endpoints queue realistic jobs.

Run it with ``uv run demo`` (``fast_app_demo.cli``); build the app with
``fast_app_demo.app.create_app``. Nothing is imported here: importing
``fast_app_demo.jobs`` sets up telemetry (for workers), which no other import should do.
"""

__all__: list[str] = []
