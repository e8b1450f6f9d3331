"""`LoopBound`, the one-resource-per-event-loop mechanism under a store's client, on its own."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import warnings
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from s3store._loopbound import LoopBound, OtherLoopError


class Resource:
    def __init__(self, number: int) -> None:
        self.number = number
        self.closed = False


class Opener:
    """Opens numbered resources, each taking a turn of the loop, and closes them
    with their stack; `fail` makes the next openings raise."""

    def __init__(self) -> None:
        self.made: list[Resource] = []
        self.fail = False

    async def __call__(self, stack: AsyncExitStack) -> Resource:
        await asyncio.sleep(0)
        if self.fail:
            raise ConnectionError("no credentials today")
        resource = Resource(len(self.made))
        self.made.append(resource)
        stack.callback(setattr, resource, "closed", True)
        return resource

    def states(self) -> list[bool]:
        """Whether each resource made so far is closed."""
        return [resource.closed for resource in self.made]


async def turns(count: int = 5) -> None:
    """Let the loop's other tasks run a few steps."""
    for _ in range(count):
        await asyncio.sleep(0)


def test_concurrent_first_uses_share_one_opening() -> None:
    opener = Opener()
    bound = LoopBound(opener)

    async def use() -> int:
        async with bound.use() as resource:
            await asyncio.sleep(0)
            return resource.number

    async def main() -> list[int]:
        return await asyncio.gather(*(use() for _ in range(10)))

    assert asyncio.run(main()) == [0] * 10
    assert opener.states() == [True]  # closed with its loop


def test_an_idle_loop_keeps_its_resource_while_other_loops_come_and_go() -> None:
    opener = Opener()
    bound = LoopBound(opener)
    idle = asyncio.new_event_loop()
    try:
        assert idle.run_until_complete(bound.get()).number == 0
        for _ in range(3):  # e.g. a test's asyncio.run() between two Lambda invocations
            asyncio.run(bound.get())
        assert opener.states() == [False, True, True, True]
        assert idle.run_until_complete(bound.get()).number == 0  # still its own
        idle.run_until_complete(bound.close())  # closes that loop's, and nothing else
        assert opener.states() == [True, True, True, True]
    finally:
        idle.close()


def test_close_on_one_loop_leaves_another_idle_loops_resource_open() -> None:
    opener = Opener()
    bound = LoopBound(opener)
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        first.run_until_complete(bound.get())
        second.run_until_complete(bound.get())
        second.run_until_complete(bound.close())
        assert opener.states() == [False, True]
        first.run_until_complete(bound.close())
        assert opener.states() == [True, True]
    finally:
        first.close()
        second.close()


async def test_close_waits_for_the_uses_in_flight_and_later_uses_open_anew() -> None:
    opener = Opener()
    bound = LoopBound(opener)
    entered, release = asyncio.Event(), asyncio.Event()

    async def request() -> bool:
        async with bound.use() as resource:
            entered.set()
            await release.wait()
            return resource.closed  # never closed under a use

    in_flight = asyncio.create_task(request())
    await entered.wait()
    closing = asyncio.create_task(bound.close())
    await turns()
    assert not closing.done()
    assert opener.states() == [False]
    async with bound.use() as later:  # a use after close(): a new resource, not the closing one
        assert later.number == 1
    release.set()
    assert await in_flight is False
    await closing
    assert opener.states() == [True, False]
    await bound.close()
    assert opener.states() == [True, True]


async def test_close_inside_its_own_use_does_not_wait_for_itself() -> None:
    opener = Opener()
    bound = LoopBound(opener)

    async def listing() -> AsyncIterator[int]:
        async with bound.use() as resource:  # a paginated listing holds one use
            for page in range(3):
                assert not resource.closed
                yield page

    pages = listing()
    assert await anext(pages) == 0
    task = asyncio.current_task()
    assert task is not None
    deadline = asyncio.get_running_loop().call_later(5, task.cancel)
    await bound.close()  # in this task (wait_for would make another): must not wait for itself
    deadline.cancel()
    assert opener.states() == [False]
    assert [page async for page in pages] == [1, 2]
    await turns()  # the holder's turn, now that the use has ended
    assert opener.states() == [True]


async def test_a_cancelled_close_still_closes_once_the_uses_end() -> None:
    opener = Opener()
    bound = LoopBound(opener)
    release = asyncio.Event()

    async def request() -> None:
        async with bound.use():
            await release.wait()

    in_flight = asyncio.create_task(request())
    await asyncio.sleep(0.01)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(bound.close(), 0.01)
    assert opener.states() == [False]
    release.set()
    await in_flight
    await turns()
    assert opener.states() == [True]


def test_the_loops_end_closes_the_resource_even_under_a_use() -> None:
    opener = Opener()
    bound = LoopBound(opener)

    async def main() -> None:
        async def forever() -> None:
            async with bound.use():
                await asyncio.Event().wait()

        task = asyncio.create_task(forever())
        await asyncio.sleep(0.01)
        assert not task.done()

    asyncio.run(main())  # cancels the use's task and the holder's together
    assert opener.states() == [True]


def test_blocks_nest_per_loop() -> None:
    opener = Opener()
    bound = LoopBound(opener)
    outer = asyncio.new_event_loop()
    try:
        outer.run_until_complete(bound.open())
        outer.run_until_complete(bound.open())

        async def other_loop() -> None:  # its own block: opens and closes its own
            await bound.open()
            await bound.close()

        asyncio.run(other_loop())
        outer.run_until_complete(bound.close())  # the inner block ends
        assert opener.states() == [False, True]
        outer.run_until_complete(bound.close())  # the outer block ends
        assert opener.states() == [True, True]
    finally:
        outer.close()


async def test_a_failed_opening_reaches_every_waiter_and_the_next_use_retries() -> None:
    opener = Opener()
    bound = LoopBound(opener)
    opener.fail = True

    async def use() -> None:
        async with bound.use():
            pass

    results = await asyncio.gather(use(), use(), bound.get(), return_exceptions=True)
    assert [type(result) for result in results] == [ConnectionError] * 3
    opener.fail = False
    assert (await bound.get()).number == 0
    await bound.close()
    assert opener.states() == [True]


def test_a_loop_closed_without_close_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    opener = Opener()
    bound = LoopBound(opener)
    abandoned = asyncio.new_event_loop()
    abandoned.run_until_complete(bound.get())
    abandoned.close()  # its holder never ran its cleanup: nothing of that loop can run now
    # What is left of it complains when collected: the misuse the module's docstring names.
    monkeypatch.setattr(sys, "unraisablehook", lambda _: None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert asyncio.run(bound.get()).number == 1
        assert list(bound._holders) == []
        del abandoned
        gc.collect()


def test_a_use_while_another_threads_loop_runs_is_refused() -> None:
    opener = Opener()
    bound = LoopBound(opener)
    opened, release = threading.Event(), threading.Event()

    async def hold() -> None:
        await bound.get()
        opened.set()
        await asyncio.to_thread(release.wait)
        await bound.close()

    thread = threading.Thread(target=asyncio.run, args=(hold(),))
    thread.start()
    try:
        assert opened.wait(10)
        with pytest.raises(OtherLoopError):
            asyncio.run(bound.get())
    finally:
        release.set()
        thread.join()
    assert asyncio.run(bound.get()).number == 1
    assert opener.states() == [True, True]
