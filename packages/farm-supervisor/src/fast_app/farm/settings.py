"""Settings of workers (and, later, the supervisor), read from ``FARM_*`` variables."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from fast_app.core.queue.queues import check_queue_name
from fast_app.core.queue.settings import describe_invalid_settings
from fast_app.farm.errors import FarmConfigurationError
from fast_app.farm.queue_pools import QueuePool, parse_queue_pools

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
        description="FARM_CONCURRENCY: jobs one worker runs at once.",
    )
    prefetch: int | None = Field(
        default=None,
        ge=1,
        le=65_535,
        description=(
            "FARM_PREFETCH: deliveries the broker hands one worker before it acknowledges "
            "any (its prefetch count), at least FARM_CONCURRENCY; those beyond the "
            "concurrency wait inside the worker, unstarted. Raise it for many short jobs "
            "(faster drain), keep it for long ones (no hoarding): see docs/deployment.md, "
            "Prefetch. Default: FARM_CONCURRENCY."
        ),
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
            "the modules of FARM_IMPORTS and the modules of the worker's current directory "
            "that no installed distribution provides (never the standard library, builtins, "
            "fast_app itself or private names)."
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
    heartbeat_interval_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="FARM_HEARTBEAT_INTERVAL_S: seconds between a worker's heartbeats.",
    )
    heartbeat_tolerance: int = Field(
        default=5,
        ge=2,
        le=100,
        description=(
            "FARM_HEARTBEAT_TOLERANCE: a worker silent for this many heartbeat intervals is "
            "hung: the supervisor kills and replaces it."
        ),
    )
    max_startup_failures: int = Field(
        default=5,
        ge=1,
        le=1000,
        description=(
            "FARM_MAX_STARTUP_FAILURES: after this many workers in a row could not start "
            "(a bad FARM_IMPORTS, an import error, a failing FARM_STARTUP hook), the "
            "supervisor stops with exit code 3 instead of replacing them forever."
        ),
    )
    worker_start: Literal["template", "fresh"] = Field(
        default="template",
        description=(
            "FARM_WORKER_START: how the supervisor starts a worker: `template` forks it "
            "from a template process that imported the framework and FARM_IMPORTS once "
            "(faster starts, shared memory; Linux), `fresh` starts a new interpreter "
            "(for application modules that start threads or open sockets at import): see "
            "docs/deployment.md, Worker start."
        ),
    )
    min_workers: int = Field(
        default=1, ge=0, le=1024, description="FARM_MIN_WORKERS: fewest workers a supervisor runs."
    )
    max_workers: int = Field(
        default=4, ge=1, le=1024, description="FARM_MAX_WORKERS: most workers a supervisor runs."
    )
    queues: Annotated[tuple[QueuePool, ...], NoDecode] = Field(
        default=(),
        description=(
            "FARM_QUEUES: the queues a supervisor serves, each with its pool's limits: "
            "`emails=1..4,reports=0..8` (a name alone: FARM_MIN_WORKERS..FARM_MAX_WORKERS); "
            "FARM_MAX_WORKERS caps the sum. Unset: QUEUE_NAME alone."
        ),
    )
    worker_queue: str | None = Field(
        default=None,
        description=(
            "FARM_WORKER_QUEUE: the queue a worker consumes (the supervisor sets it for "
            "each worker it spawns); unset: QUEUE_NAME."
        ),
    )
    scale_check_interval_s: float = Field(
        default=1.0,
        gt=0,
        le=600,
        description="FARM_SCALE_CHECK_INTERVAL_S: seconds between scaling decisions.",
    )
    scale_cooldown_s: float = Field(
        default=30.0,
        ge=0,
        le=86_400,
        description=(
            "FARM_SCALE_COOLDOWN_S: spare capacity must last this long before a worker is "
            "drained, and no worker is drained sooner than this after a change."
        ),
    )
    scale_up_step: int = Field(
        default=2, ge=1, le=1024, description="FARM_SCALE_UP_STEP: most workers added at once."
    )
    scale_down_step: int = Field(
        default=1, ge=1, le=1024, description="FARM_SCALE_DOWN_STEP: most workers drained at once."
    )
    target_drain_s: float = Field(
        default=5.0,
        gt=0,
        le=86_400,
        description=(
            "FARM_TARGET_DRAIN_S: the supervisor adds workers to drain a backlog within "
            "about this many seconds."
        ),
    )
    supervisor_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.:@-]+$",  # Rust regex: $ is the very end
        description=(
            "FARM_SUPERVISOR_ID: this supervisor's name in snapshots and the address of its "
            "control messages (default host-pid)."
        ),
    )
    json_logs: bool = Field(
        default=False,
        description="FARM_JSON_LOGS: log JSON lines instead of plain text.",
    )
    otel_sdk: bool = Field(
        default=False,
        description=(
            "FARM_OTEL_SDK: the supervisor and each worker set up the OpenTelemetry SDK from "
            "the standard `OTEL_*` variables (needs `opentelemetry-sdk` and the exporters "
            "named); off: configure it in a FARM_STARTUP hook, or not at all."
        ),
    )
    supervisor_fd: int | None = Field(
        default=None,
        description=(
            "FARM_SUPERVISOR_FD: set by the supervisor for the workers it spawns (their "
            "heartbeat socket); not for users."
        ),
    )
    tombstones: _ModuleList = Field(
        default=(),
        description=(
            "FARM_TOMBSTONES: set by the supervisor for the workers it spawns (`job@worker` "
            "pairs of jobs killed at their hard timeout); not for users."
        ),
    )
    worker_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=120,
        pattern=r"^[A-Za-z0-9_.:@-]+$",  # Rust regex: $ is the very end
        description=(
            "FARM_WORKER_ID: name of this worker in logs and dead letters (default host-pid)."
        ),
    )

    @field_validator(
        "imports", "startup", "shutdown", "allowed_modules", "tombstones", mode="before"
    )
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("queues", mode="before")
    @classmethod
    def _parse_queues(cls, value: Any) -> Any:
        return parse_queue_pools(value) if isinstance(value, str) else value

    @field_validator("worker_queue")
    @classmethod
    def _worker_queue_name(cls, value: str | None) -> str | None:
        return None if value is None else check_queue_name(value)

    @field_validator("startup", "shutdown")
    @classmethod
    def _hook_paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            module, _, function = path.partition(":")
            if not module or not function:
                raise ValueError(f"{path!r} is not of the form module:function")
        return value

    @model_validator(mode="after")
    def _min_not_above_max(self) -> FarmSettings:
        if self.prefetch is not None and self.prefetch < self.concurrency:
            raise ValueError(
                f"FARM_PREFETCH ({self.prefetch}) must not be below FARM_CONCURRENCY "
                f"({self.concurrency}): a worker cannot run more jobs at once than the broker "
                "hands it; lower FARM_CONCURRENCY instead"
            )
        if self.min_workers > self.max_workers:
            raise ValueError(
                f"FARM_MIN_WORKERS ({self.min_workers}) must not be above "
                f"FARM_MAX_WORKERS ({self.max_workers})"
            )
        minimums = sum(
            self.min_workers if pool.min_workers is None else pool.min_workers
            for pool in self.queues
        )
        if minimums > self.max_workers:
            raise ValueError(
                f"the minimums of FARM_QUEUES ({', '.join(map(str, self.queues))}) add up to "
                f"{minimums}, above FARM_MAX_WORKERS ({self.max_workers}); raise it or "
                "lower them"
            )
        return self

    def queue_pools(self, default_queue: str) -> tuple[QueuePool, ...]:
        """Each queue served with its limits resolved: ``FARM_QUEUES``, or ``default_queue``
        (``QUEUE_NAME``) with ``FARM_MIN_WORKERS..FARM_MAX_WORKERS``."""
        pools = self.queues or (QueuePool(default_queue),)
        return tuple(
            QueuePool(
                pool.queue,
                self.min_workers if pool.min_workers is None else pool.min_workers,
                self.max_workers if pool.max_workers is None else pool.max_workers,
            )
            for pool in pools
        )

    @property
    def prefetch_count(self) -> int:
        """Deliveries the broker hands one worker before it acknowledges any."""
        # Chosen by measurement (docs/deployment.md, "Prefetch"): a larger prefetch gains
        # little drain rate for the farm, and costs jobs held behind long ones.
        return self.concurrency if self.prefetch is None else self.prefetch

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
        described = describe_invalid_settings(error, lambda name: f"FARM_{name.upper()}")
        raise FarmConfigurationError(f"invalid farm settings: {described}") from None
