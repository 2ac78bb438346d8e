"""A memory alarm raised on a private node for the length of a block (the test kit's
``RabbitMQNode.memory_alarm``): the broker then blocks publishers, holding their
publishes unconfirmed, until it is cleared."""

from __future__ import annotations

import asyncio
import subprocess
import time
from types import TracebackType
from typing import Final, Protocol

__all__ = ["MemoryAlarm"]


class _Node(Protocol):
    """What the alarm uses of ``RabbitMQNode`` (not imported: it imports this module)."""

    @property
    def node_name(self) -> str: ...

    @property
    def is_running(self) -> bool: ...

    def rabbitmqctl(self, *args: str, timeout: float = ...) -> subprocess.CompletedProcess[str]: ...


_POLL_INTERVAL: Final = 0.05
# One ``rabbitmqctl eval`` each (every call boots an Erlang VM): the watermark is set
# as a term, so one of either form (0.4, {absolute, N}) is restored as it was.
_RAISE_MEMORY_ALARM: Final = (
    "Previous = vm_memory_monitor:get_vm_memory_high_watermark(),"
    " ok = vm_memory_monitor:set_vm_memory_high_watermark({absolute, 1}),"
    " Previous."
)
_HAS_MEMORY_ALARM: Final = (
    "lists:keymember({resource_limit, memory, node()}, 1, rabbit_alarm:get_alarms())."
)


class MemoryAlarm:
    """The memory alarm of ``RabbitMQNode.memory_alarm``, a ``with`` or ``async with`` block."""

    def __init__(self, node: _Node, timeout: float) -> None:
        self._node = node
        self._timeout = timeout
        self._previous_watermark: str | None = None

    def _eval(self, expression: str) -> str:
        """Evaluate an Erlang ``expression`` on the node; what it printed."""
        done = self._node.rabbitmqctl("eval", expression, timeout=self._timeout)
        if done.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl eval on {self._node.node_name} failed "
                f"(status {done.returncode}): {(done.stderr or done.stdout).strip()}"
            )
        return done.stdout.strip()

    def _await_alarm(self, *, raised: bool) -> None:
        deadline = time.monotonic() + self._timeout
        while (self._eval(_HAS_MEMORY_ALARM) == "true") != raised:
            if time.monotonic() > deadline:
                state = "raised" if raised else "cleared"
                raise TimeoutError(
                    f"{self._node.node_name}: memory alarm not {state} after {self._timeout}s"
                )
            time.sleep(_POLL_INTERVAL)

    def _restore(self) -> None:
        previous, self._previous_watermark = self._previous_watermark, None
        if previous is None or not self._node.is_running:
            return
        self._eval(f"vm_memory_monitor:set_vm_memory_high_watermark({previous}).")
        self._await_alarm(raised=False)

    def __enter__(self) -> None:
        self._previous_watermark = self._eval(_RAISE_MEMORY_ALARM)
        try:
            self._await_alarm(raised=True)
        except BaseException:
            self._restore()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._restore()

    async def __aenter__(self) -> None:
        await asyncio.to_thread(self.__enter__)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self._restore)
