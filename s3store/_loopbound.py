"""An async resource per event loop, living as long as that loop or until `close()` on it.

aiobotocore's clients (and the aiohttp sessions under them) belong to one event
loop. `LoopBound` keeps one resource per loop:

- Opened on first use on the running loop and shared among every task of that
  loop; concurrent first uses share one opening. The resource is held open by a
  task of its loop ("s3store client"), which enters it into an `AsyncExitStack`
  and closes that stack when it ends.
- A loop keeps its resource until that loop ends or `close()` is called on it.
  Using the object on another loop never takes it away: each loop has its own,
  so a loop that is merely idle (an `asyncio.Runner` between runs,
  `serverless.lambda_handler`'s loop between invocations, a loop you drive with
  `run_until_complete`) keeps its resource while `asyncio.run()` opens and
  closes others. `asyncio.run()` and `asyncio.Runner.close()` cancel the
  holding task with the loop's other tasks, which closes the resource before
  the loop closes. A loop closed with the task still pending (a loop you run
  and close yourself, without `close()` first) cannot run that cleanup: its
  entry is dropped, and its connections go with the loop.
- One running loop at a time: a use while another loop holding a resource is
  running (in another thread) raises `OtherLoopError`.
- `use()` is one use of the resource (one request, or one paginated listing).
  `close()` retires the running loop's resource: new uses, from then on, open a
  new one (so a use after `close()` simply opens a new resource), and the
  retired one is closed once the uses in flight on it have ended; `close()`
  returns when it is closed. Nothing is ever closed under a use, and no use
  begins on a closed resource. `close()` cancelled while it waits still closes
  the resource when those uses end. Two exceptions: a task that holds a use
  itself (say, part way through a listing) and calls `close()` is not made to
  wait for its own use, the resource closes when that use ends (this holds
  for `close()` awaited in that task: `asyncio.wait_for()` before Python 3.12
  runs it in a task of its own, which would wait); and at the loop's end the
  resource closes at once, the tasks of the uses in flight being cancelled
  with it.
- `get()` hands out the resource for uses `close()` cannot see, so it does not
  wait for them: the owner should make the resource refuse requests once it is
  closed, as `open` can arrange with a callback on its stack.
- `open()` and `close()` also pair up as blocks (`async with store:`): nested and
  concurrent blocks on one loop share its resource, the last to end closes it.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Generic, TypeVar

__all__ = ["LoopBound", "OtherLoopError"]

T = TypeVar("T")


class OtherLoopError(RuntimeError):
    """The resource is open on another event loop that is running (in another thread)."""


class _Holder(Generic[T]):
    """One loop's resource: the task holding it open, the uses in flight, and its end."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.ready: asyncio.Future[T] = loop.create_future()
        self.ready.add_done_callback(_retrieve)
        self.retired = asyncio.Event()  # close(): no new use, close once the uses end
        self.idle = asyncio.Event()  # set while no use is in flight
        self.idle.set()
        self.uses: Counter[asyncio.Task[object] | None] = Counter()  # in flight, by task
        self.blocks = 0  # open() calls not yet matched by close()
        self.task: asyncio.Task[None] | None = None

    def enter(self, task: asyncio.Task[object] | None) -> None:
        self.uses[task] += 1
        self.idle.clear()

    def leave(self, task: asyncio.Task[object] | None) -> None:
        self.uses[task] -= 1
        if self.uses[task] <= 0:
            del self.uses[task]
        if not self.uses:
            self.idle.set()


def _retrieve(ready: asyncio.Future[T]) -> None:
    """Mark a failed opening's error as seen, even when no waiter was left to see it."""
    if not ready.cancelled():
        ready.exception()


class _Use(Generic[T]):
    """One use of a `LoopBound`'s resource: a class rather than a generator-based
    context manager, since every request makes one."""

    __slots__ = ("bound", "holder", "task")

    def __init__(self, bound: LoopBound[T]) -> None:
        self.bound = bound

    async def __aenter__(self) -> T:
        holder = self.holder = self.bound._holder(asyncio.get_running_loop())
        task = self.task = asyncio.current_task()
        holder.enter(task)  # counted before any await: close() cannot miss it
        try:
            ready = holder.ready
            # Open already (the usual case): no shield to make, nothing to wait for.
            return ready.result() if ready.done() else await asyncio.shield(ready)
        except BaseException:
            holder.leave(task)
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.holder.leave(self.task)


class LoopBound(Generic[T]):
    """One `T` per event loop, opened by `open(stack)` on its first use on that loop.

    `open` enters what it opens into the `AsyncExitStack` it is given; the stack
    is closed when the loop ends, or when `close()` on that loop has retired it
    and its last use has ended.
    """

    def __init__(self, open: Callable[[AsyncExitStack], Awaitable[T]]) -> None:
        self._open = open
        self._holders: dict[asyncio.AbstractEventLoop, _Holder[T]] = {}
        # The loops may run in different threads. Reentrant: dropping a closed loop's
        # holder under the lock can let the garbage collector finalize that holder's
        # task there and then, and its cleanup takes the lock too.
        self._lock = threading.RLock()

    def use(self) -> _Use[T]:
        """One use of the running loop's resource, opened now if it is not open
        (`async with bound.use() as resource:`).

        `close()` waits for the use to end before it closes the resource. Raises
        `OtherLoopError` while another loop holding one runs, and what the opening
        raised if it failed (every use waiting on it gets that error; the next
        use opens again).
        """
        return _Use(self)

    async def get(self) -> T:
        """The running loop's resource for uses `close()` does not see (see the module)."""
        async with self.use() as resource:
            return resource

    async def open(self) -> T:
        """Open the running loop's resource now, as the start of a block that
        `close()` ends: only the last open block's `close()` closes it."""
        holder = self._holder(asyncio.get_running_loop())
        holder.blocks += 1
        try:
            return await asyncio.shield(holder.ready)
        except BaseException:
            holder.blocks -= 1
            raise

    async def close(self) -> None:
        """Close the running loop's resource, once the uses in flight on it end (or,
        inside nested blocks, count one block as ended); a later use opens a new one.
        Closes nothing of another loop's."""
        loop = asyncio.get_running_loop()
        with self._lock:
            holder = self._holders.get(loop)
            if holder is None:
                return
            if holder.blocks > 1:
                holder.blocks -= 1
                return
            del self._holders[loop]  # retired: the next use opens a new one
        holder.retired.set()
        if holder.uses.get(asyncio.current_task()) or holder.task is None:
            return  # our own use cannot end while we wait here: it closes when that use ends
        await asyncio.shield(holder.task)

    def _holder(self, loop: asyncio.AbstractEventLoop) -> _Holder[T]:
        """The loop's holder, made, and its opening started, if it has none."""
        holder = self._holders.get(loop)
        if holder is not None and len(self._holders) == 1:
            return holder
        with self._lock:
            for other in list(self._holders):
                if other is loop:
                    continue
                if other.is_closed():
                    # Closed with its holder pending: no task of it will ever run again.
                    del self._holders[other]
                elif other.is_running():
                    raise OtherLoopError("open on another event loop that is still running")
            holder = self._holders.get(loop)
            if holder is None:
                holder = self._holders[loop] = _Holder(loop)
                holder.task = loop.create_task(self._hold(holder), name="s3store client")
            return holder

    async def _hold(self, holder: _Holder[T]) -> None:
        try:
            async with AsyncExitStack() as stack:
                try:
                    resource = await self._open(stack)
                except Exception as exc:
                    holder.ready.set_exception(exc)  # for every use waiting on the opening
                    return
                holder.ready.set_result(resource)
                await holder.retired.wait()  # until close(), or until the loop's end cancels us
                await holder.idle.wait()  # then until the last use in flight ends
        finally:
            if not holder.loop.is_closed():
                holder.ready.cancel()  # a no-op once set; wakes the waiters of a cancelled opening
            with self._lock:
                if self._holders.get(holder.loop) is holder:
                    del self._holders[holder.loop]
