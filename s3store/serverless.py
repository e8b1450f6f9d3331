"""Sync entry points for serverless handlers that keep one event loop per process.

A Lambda handler is a plain function. Calling `asyncio.run()` in it makes a new
event loop per invocation, so every warm invocation builds a new S3 client and
opens new connections (on AWS, a new TLS handshake), as does any async client the
agent holds. `lambda_handler` runs every invocation on one loop kept for the life
of the process instead: a store's client (which follows its loop) and its pool of
connections are reused, invocation after invocation.

Other loops may run between invocations (an `asyncio.run()` at import, in a test):
they open and close their own clients and leave this loop's alone. `shutdown()`,
registered with `atexit`, ends the loop as `asyncio.run()` ends its own, whatever
ran before it: it cancels the tasks left on it (which closes every store's
client), finishes the async generators and the default executor, and closes it.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

__all__ = ["lambda_handler", "shutdown"]

P = ParamSpec("P")
R = TypeVar("R")

_loop: asyncio.AbstractEventLoop | None = None


def lambda_handler(fn: Callable[P, Awaitable[R]]) -> Callable[P, R]:
    """Make an async handler a sync one that runs on the process's one event loop.

    ::

        store = S3SessionStore.from_env()

        @lambda_handler
        async def handler(event, context):
            ...

    Each call runs `fn` to completion and returns its result. Call it from one
    thread, and not from inside a running event loop. Tasks `fn` leaves running
    go on in the next invocation; `shutdown()` (registered with `atexit`) ends
    them and closes the loop.
    """

    @functools.wraps(fn)
    def handler(*args: P.args, **kwargs: P.kwargs) -> R:
        return _run(fn(*args, **kwargs))

    return handler


def _run(awaitable: Awaitable[R]) -> R:
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
        atexit.register(shutdown)
    return _loop.run_until_complete(awaitable)


def shutdown() -> None:
    """Close the process's loop as `asyncio.run()` closes its own: cancel the
    tasks left on it (which closes every store's client), then close it.

    Does nothing if no handler ran (or it already ran); call it from the thread
    that ran the handlers, outside any running loop.
    """
    global _loop
    loop, _loop = _loop, None
    if loop is None:
        return
    atexit.unregister(shutdown)
    if loop.is_closed():
        return  # closed by its owner: nothing of it can run any more
    try:
        loop.run_until_complete(_cancel_all(loop))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


async def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel every other task of the running loop and wait for them to end.

    Run on the loop itself, so that nothing looks up a current loop outside it
    (`asyncio.gather()` with no task does, and an earlier `asyncio.run()` leaves
    none set). A task that failed rather than ending cancelled is reported to the
    loop's exception handler, as `asyncio.run()` does.
    """
    left = [task for task in asyncio.all_tasks(loop) if task is not asyncio.current_task()]
    for task in left:
        task.cancel()
    await asyncio.gather(*left, return_exceptions=True)
    for task in left:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during serverless.shutdown()",
                    "exception": task.exception(),
                    "task": task,
                }
            )
