"""Test kit of the queue: record enqueued jobs without a broker, or run a real one.

- ``JobRecorder`` (the ``queued_jobs`` pytest fixture) captures the jobs the code under
  test enqueues, to assert on them (``assert_enqueued``, partial;
  ``assert_enqueued_exactly``) and run them (``run_all``, with retries and delays).
- ``rabbitmq_node()`` (module ``fast_app.core.queue.testing.rabbitmq``) starts a private,
  throwaway RabbitMQ node from the installed ``rabbitmq-server``; the ``rabbitmq_url``
  pytest fixture shares one for the whole test session.
- ``rabbitmq_cluster()`` (module ``fast_app.core.queue.testing.rabbitmq_cluster``) starts
  several such nodes clustered, whose nodes can be stopped, killed and restarted.

The fixtures are registered by the ``fast_app_queue`` pytest plugin once this package is
installed.
"""

from ._recorder import CapturedJob, JobRecorder
from .rabbitmq import RabbitMQNode, RabbitMQNotInstalledError, RabbitMQStartError, rabbitmq_node
from .rabbitmq_cluster import RabbitMQCluster, rabbitmq_cluster

__all__ = [
    "CapturedJob",
    "JobRecorder",
    "RabbitMQCluster",
    "RabbitMQNode",
    "RabbitMQNotInstalledError",
    "RabbitMQStartError",
    "rabbitmq_cluster",
    "rabbitmq_node",
]
