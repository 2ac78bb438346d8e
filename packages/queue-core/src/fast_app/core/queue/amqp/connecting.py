"""Connecting to a broker given as one URL or as a cluster's nodes.

Every process connects the same way: to the first node of ``RABBITMQ_URL`` that accepts,
in the order given (list the nodes in another order on each host to spread the
connections), within one bound for the whole list. Whoever loses its connection calls
this again, and so fails over to the next node that is up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from fast_app.core.queue.broker_urls import describe_error, redact_url

if TYPE_CHECKING:
    from aio_pika.abc import AbstractConnection

__all__ = ["connect_first", "node_of"]

logger = logging.getLogger("fast_app.queue")

C = TypeVar("C")

# The least time a node gets when the bound is shared among several: a node that
# refuses answers at once, one that is down takes the whole of its share.
_LEAST_SHARE_S = 1.0


async def connect_first(
    urls: Sequence[str], *, timeout_s: float, connection_name: str
) -> AbstractConnection:
    """A connection to the first of ``urls`` that accepts one, all within ``timeout_s``.

    Each node gets an equal share of the time left (at least a second, or what is left),
    so that a node that hangs does not use the bound of the others.

    Raises:
        TimeoutError, OSError, ConnectionError, aiormq's AMQPError: the last node's
            failure, when none accepted. Its text holds no password.
    """
    import aio_pika

    return await _first(urls, timeout_s, connection_name, aio_pika.connect)


async def _first(
    urls: Sequence[str],
    timeout_s: float,
    connection_name: str,
    connect: Callable[..., Awaitable[C]],
) -> C:
    if not urls:
        raise ValueError("no broker URL to connect to")
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    for index, url in enumerate(urls):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        share = max(left / (len(urls) - index), min(_LEAST_SHARE_S, left))
        try:
            return await asyncio.wait_for(
                connect(url, client_properties={"connection_name": connection_name}), share
            )
        except asyncio.CancelledError:
            raise
        except Exception as error:
            last_error = error
            if index + 1 < len(urls):
                logger.warning(
                    "broker node %s: %s; trying the next one",
                    redact_url(url),
                    describe_error(error, url),
                )
    if last_error is None:
        raise TimeoutError(f"no broker node answered within {timeout_s:g}s")
    if isinstance(last_error, TimeoutError):
        raise TimeoutError(f"no broker node answered within {timeout_s:g}s") from None
    raise last_error


def node_of(connection: AbstractConnection, urls: str) -> str:
    """The node ``connection`` reached, its password hidden (``urls`` when it cannot
    tell)."""
    import aio_pika

    node = str(connection.url) if isinstance(connection, aio_pika.Connection) else urls
    return redact_url(node)
