"""A supervisor's pools, one per queue it serves, and what spans them all."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping, MutableMapping

from fast_app.farm.supervisor._pool import WorkerPool
from fast_app.farm.supervisor._workers import WorkerProcess

__all__ = ["QueuePools"]


class _AllWorkers(MutableMapping[str, WorkerProcess]):
    """Every pool's workers, by id: a live view, never a copy. A worker added here (a
    test's, or one adopted) joins the first pool."""

    def __init__(self, pools: Mapping[str, WorkerPool]) -> None:
        self._pools = pools

    def __getitem__(self, worker_id: str) -> WorkerProcess:
        for pool in self._pools.values():
            worker = pool.workers.get(worker_id)
            if worker is not None:
                return worker
        raise KeyError(worker_id)

    def __setitem__(self, worker_id: str, worker: WorkerProcess) -> None:
        next(iter(self._pools.values())).workers[worker_id] = worker

    def __delitem__(self, worker_id: str) -> None:
        for pool in self._pools.values():
            if worker_id in pool.workers:
                del pool.workers[worker_id]
                return
        raise KeyError(worker_id)

    def __iter__(self) -> Iterator[str]:
        return iter([worker_id for pool in self._pools.values() for worker_id in pool.workers])

    def __len__(self) -> int:
        return sum(len(pool.workers) for pool in self._pools.values())


class QueuePools:
    """The pools of one supervisor, by queue.

    Attributes:
        pools: each queue's pool, in the order the queues were given.
        workers: every pool's workers, by id (a live view).
        max_workers: the most workers of all pools together.
    """

    def __init__(self, pools: Mapping[str, WorkerPool], max_workers: int) -> None:
        self.pools = dict(pools)
        self.workers: MutableMapping[str, WorkerProcess] = _AllWorkers(self.pools)
        self.max_workers = max_workers

    @property
    def min_workers(self) -> int:
        """The fewest workers of all pools together (the sum of their minimums)."""
        return sum(pool.min_workers for pool in self.pools.values())

    @property
    def desired(self) -> int:
        """The workers all pools want together."""
        return sum(pool.desired for pool in self.pools.values())

    @property
    def paused(self) -> bool:
        """Whether the farm's workers are told to take no deliveries."""
        return any(pool.paused for pool in self.pools.values())

    def live(self) -> list[WorkerProcess]:
        """The workers that count, of every pool."""
        return [worker for pool in self.pools.values() for worker in pool.live()]

    def pool_of(self, worker_id: str) -> WorkerPool | None:
        """The pool ``worker_id`` belongs to."""
        for pool in self.pools.values():
            if worker_id in pool.workers:
                return pool
        return None

    @property
    def watchers(self) -> set[asyncio.Task[None]]:
        """The tasks waiting for a worker's end, of every pool."""
        return {task for pool in self.pools.values() for task in pool.watchers}

    async def wait_until_empty(self, timeout_s: float) -> None:
        """Wait until every worker of every pool has ended, for ``timeout_s`` at most."""
        deadline = time.monotonic() + timeout_s
        while self.workers and (left := deadline - time.monotonic()) > 0:
            busy = [pool for pool in self.pools.values() if pool.workers]
            waits = [asyncio.ensure_future(pool.wait_until_empty(left)) for pool in busy]
            _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for wait in pending:
                wait.cancel()
