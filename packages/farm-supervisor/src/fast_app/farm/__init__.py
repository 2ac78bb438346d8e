"""FastApp's async farm: worker processes that run queued jobs from RabbitMQ."""

from fast_app.farm.errors import FarmConfigurationError, FarmError, JobImportError
from fast_app.farm.settings import FarmSettings, load_farm_settings

__all__ = [
    "FarmConfigurationError",
    "FarmError",
    "FarmSettings",
    "JobImportError",
    "load_farm_settings",
]
