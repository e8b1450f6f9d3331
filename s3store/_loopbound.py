"""An async resource that lives as long as the event loop that opened it.

aiobotocore's clients (and the aiohttp connections under them) belong to one event
loop. `LoopBound` opens the resource on first use on the running loop, shares it
among every task of that loop, and closes it when the loop ends: the resource is
held by a task of that loop, and `asyncio.run()` and `asyncio.Runner.close()`
cancel the tasks still pending, so the task's cleanup closes it before the loop
closes. A later use on a new loop opens it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Generic, TypeVar

__all__ = ["LoopBound", "OtherLoopError"]

T = TypeVar("T")


class OtherLoopError(RuntimeError):
    """The resource is open on another event loop that is still running."""


class _Holder(Generic[T]):
    """The resource of one loop: the task that holds it open, and how to stop it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.ready: asyncio.Future[T] = loop.create_future()
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


class LoopBound(Generic[T]):
    """One `T` per event loop at a time, opened by `open(stack)` on first use.

    `open` enters what it opens into the `AsyncExitStack` it is given; the stack
    is closed when the loop ends or `close()` is called.
    """

    def __init__(self, open: Callable[[AsyncExitStack], Awaitable[T]]) -> None:
        self._open = open
        self._holder: _Holder[T] | None = None

    async def get(self) -> T:
        """The resource of the running loop, opened now if it is not open yet.

        Concurrent first uses on one loop share one opening. Raises
        `OtherLoopError` while it is open on another loop that still runs.
        """
        loop = asyncio.get_running_loop()
        holder = self._holder
        if holder is not None and holder.loop is not loop:
            if not holder.loop.is_closed() and holder.loop.is_running():
                raise OtherLoopError("open on another event loop that is still running")
            holder = None  # that loop ended without closing it: its connections went with it
        if holder is None:
            holder = self._holder = _Holder(loop)
            holder.task = loop.create_task(self._hold(holder), name="s3store client")
        return await asyncio.shield(holder.ready)

    async def close(self) -> None:
        """Close the running loop's resource now, if it is open; a later use reopens it."""
        holder = self._holder
        if holder is None or holder.loop is not asyncio.get_running_loop():
            return
        self._holder = None
        holder.stop.set()
        if holder.task is not None:
            await holder.task

    async def _hold(self, holder: _Holder[T]) -> None:
        try:
            async with AsyncExitStack() as stack:
                try:
                    resource = await self._open(stack)
                except Exception as exc:
                    holder.ready.set_exception(exc)  # for every task waiting on the opening
                    return
                holder.ready.set_result(resource)
                await holder.stop.wait()  # until close(), or until the loop's end cancels us
        finally:
            holder.ready.cancel()  # a no-op once set; wakes the waiters of a cancelled opening
            if self._holder is holder:
                self._holder = None
