"""Settings of workers (and, later, the supervisor), read from ``FARM_*`` variables."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from fast_app.farm.errors import FarmConfigurationError

__all__ = ["FarmSettings", "load_farm_settings"]

_ModuleList = Annotated[tuple[str, ...], NoDecode]


class FarmSettings(BaseSettings):
    """Settings of the farm's processes; each field's env var is in its description.

    List settings take comma-separated values: ``FARM_IMPORTS=app.jobs,app.reports``.
    """

    model_config = SettingsConfigDict(env_prefix="FARM_", extra="forbid", frozen=True)

    concurrency: int = Field(
        default=16,
        ge=1,
        le=10_000,
        description="FARM_CONCURRENCY: jobs one worker runs at once (its prefetch count).",
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description=(
            "FARM_THREADS: size of each worker's thread pool for plain (non-async) job "
            "functions; default: FARM_CONCURRENCY."
        ),
    )
    imports: _ModuleList = Field(
        default=(),
        description="FARM_IMPORTS: modules each worker imports at start (your job modules).",
    )
    startup: _ModuleList = Field(
        default=(),
        description=(
            "FARM_STARTUP: `module:function` async hooks run once per worker before it "
            "consumes (open pools, configure logging or telemetry)."
        ),
    )
    shutdown: _ModuleList = Field(
        default=(),
        description="FARM_SHUTDOWN: `module:function` async hooks run once as a worker exits.",
    )
    allowed_modules: _ModuleList = Field(
        default=(),
        description=(
            "FARM_ALLOWED_MODULES: module prefixes whose functions may run as jobs; default: "
            "the modules of FARM_IMPORTS and any module loaded from the worker's current "
            "directory (never the standard library, builtins or installed packages)."
        ),
    )
    grace_period_s: float = Field(
        default=30.0,
        gt=0,
        le=86_400,
        description=(
            "FARM_GRACE_PERIOD_S: on SIGTERM, how long in-flight jobs may take to finish "
            "before the worker exits and they return to the queue."
        ),
    )
    worker_id: str | None = Field(
        default=None,
        description=(
            "FARM_WORKER_ID: name of this worker in logs and dead letters (default host-pid)."
        ),
    )

    @field_validator("imports", "startup", "shutdown", "allowed_modules", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("startup", "shutdown")
    @classmethod
    def _hook_paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            module, _, function = path.partition(":")
            if not module or not function:
                raise ValueError(f"{path!r} is not of the form module:function")
        return value

    @property
    def thread_pool_size(self) -> int:
        """Threads for plain job functions."""
        return self.threads or self.concurrency


def load_farm_settings(**overrides: Any) -> FarmSettings:
    """Read the settings from the environment and ``overrides``.

    Raises:
        FarmConfigurationError: naming each invalid variable and what is allowed.
    """
    try:
        return FarmSettings(**overrides)
    except ValidationError as error:
        problems = []
        for detail in error.errors():
            name = str(detail["loc"][0]) if detail["loc"] else "?"
            problems.append(f"FARM_{name.upper()}={detail.get('input')!r}: {detail['msg']}")
        raise FarmConfigurationError("invalid farm settings: " + "; ".join(problems)) from None
