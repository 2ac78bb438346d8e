"""Helpers to test against a real RabbitMQ: private throwaway nodes and pytest fixtures.

The pytest fixtures (``rabbitmq_url``, ``farm_queue_name``) are registered by the
``fast_app_farm`` pytest plugin once this package is installed.
"""

from fast_app.farm.testing._rabbitmq_node import (
    RabbitMQNode,
    RabbitMQNotInstalledError,
    RabbitMQStartError,
    rabbitmq_node,
)

__all__ = ["RabbitMQNode", "RabbitMQNotInstalledError", "RabbitMQStartError", "rabbitmq_node"]
