"""Sync over async, in one place: an event loop of its own in a background thread.

A framework that calls its storage synchronously (Strands' session repository,
LangGraph's `put`/`get_tuple`) may call from a plain thread or from inside its
own running event loop, where `asyncio.run()` is refused. `BackgroundLoop` runs
the store's coroutines on a loop it keeps in a daemon thread instead, so one
client (which belongs to that loop) serves every call, warm invocation after
warm invocation. It refuses a call from its own thread, which would wait on
itself forever, saying what to call instead; and it closes its loop (and so the
clients on it) at exit.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["BackgroundLoop"]

T = TypeVar("T")


class BackgroundLoop:
    """An event loop in a daemon thread, started on first use; `run()` runs a coroutine
    there and waits for its result."""

    def __init__(self, name: str = "s3store") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the background loop; its result, or its exception."""
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError(
                "a sync method was called on the background loop's own thread, where it "
                "would wait for itself: await the async method instead"
            )
        return asyncio.run_coroutine_threadsafe(coroutine, self._running()).result()

    def close(self) -> None:
        """End what still runs on the loop (which closes the clients opened on it), then
        the loop and its thread. A later `run()` starts them again."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        atexit.unregister(self.close)
        asyncio.run_coroutine_threadsafe(_cancel_all(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()

    def _running(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name=f"{self._name} loop", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
                atexit.register(self.close)
            return self._loop


async def _cancel_all() -> None:
    """Cancel every other task of the running loop and wait for them to finish."""
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()
