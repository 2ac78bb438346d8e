"""The worker process: consumes jobs from RabbitMQ and runs them."""

from fast_app.farm.worker.runtime import (
    EXIT_HARD_TIMEOUT,
    EXIT_OK,
    EXIT_STARTUP_FAILED,
    Worker,
)

__all__ = ["EXIT_HARD_TIMEOUT", "EXIT_OK", "EXIT_STARTUP_FAILED", "Worker"]
