"""A store's client follows the event loop: opened on first use, closed when the loop ends."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import logging
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, TypeVar

import aioboto3
import pytest

from s3store import (
    AgentSession,
    S3SessionStore,
    SessionId,
    SessionStoreError,
    UserMessage,
    serverless,
)
from tests.conftest import REGION

SID = SessionId(1)
T = TypeVar("T")


class CountingSession(aioboto3.Session):
    """An aioboto3 session that counts the clients it opens and closes."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = 0
        self.closed = 0

    def client(self, *args: Any, **kwargs: Any) -> Any:
        inner = super().client(*args, **kwargs)
        counts = self

        class Counted:
            async def __aenter__(self) -> Any:
                counts.opened += 1
                return await inner.__aenter__()

            async def __aexit__(self, *exc: object) -> Any:
                counts.closed += 1
                return await inner.__aexit__(*exc)

        return Counted()


@contextmanager
def no_leaks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fails on a ResourceWarning or aiohttp's "Unclosed" report once everything is collected."""
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.ERROR):
        warnings.simplefilter("always")
        yield
        gc.collect()
    reports = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    reports += [r.getMessage() for r in caplog.records if "Unclosed" in r.getMessage()]
    assert reports == []


def add_turn(text: str) -> Callable[[AgentSession | None], AgentSession]:
    def change(session: AgentSession | None) -> AgentSession:
        session = session or AgentSession(id=SID)
        session.chat_messages.append(UserMessage(content=text))
        return session

    return change


def texts(session: AgentSession | None) -> list[str]:
    assert session is not None
    return [str(message.content) for message in session.chat_messages]  # type: ignore[union-attr]


def new_store(
    moto_url: str, bucket: str, session: aioboto3.Session | None = None
) -> S3SessionStore:
    return S3SessionStore(bucket, endpoint_url=moto_url, region_name=REGION, session=session)


def test_a_store_without_async_with_serves_successive_asyncio_runs(
    moto_url: str, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    counting = CountingSession()
    store = new_store(moto_url, bucket, counting)  # as at a Lambda module's top

    async def invocation(turn: int) -> int:
        session = await store.update(SID, add_turn(f"turn {turn}"))
        return len(session.chat_messages)

    with no_leaks(caplog):
        assert [asyncio.run(invocation(turn)) for turn in range(3)] == [1, 2, 3]
    assert (counting.opened, counting.closed) == (3, 3)  # one client per loop, each closed


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.Runner is new in Python 3.11")
def test_a_runner_keeps_one_client_and_closes_it_with_the_loop(
    moto_url: str, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    counting = CountingSession()
    store = new_store(moto_url, bucket, counting)
    with no_leaks(caplog):
        with asyncio.Runner() as runner:
            for turn in range(3):
                runner.run(store.update(SID, add_turn(f"turn {turn}")))
            assert (counting.opened, counting.closed) == (1, 0)
        assert counting.closed == 1


def test_concurrent_first_uses_on_one_loop_open_one_client(
    moto_url: str, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    counting = CountingSession()
    store = new_store(moto_url, bucket, counting)

    async def turn(number: int, explicit: bool) -> None:
        session = AgentSession(id=SessionId(number))
        if explicit:
            async with store:
                await asyncio.sleep(0.01)
                await store.save(session)
        else:
            await store.save(session)

    async def main() -> list[SessionId]:
        await asyncio.gather(*(turn(number, number % 2 == 0) for number in range(8)))
        assert counting.opened == 1
        return await store.list()

    with no_leaks(caplog):
        assert asyncio.run(main()) == [SessionId(number) for number in range(8)]
    # The last `async with` to end closed the shared client; list() opened another.
    assert (counting.opened, counting.closed) == (2, 2)


async def test_nested_async_with_share_one_client_until_the_outermost_ends(
    moto_url: str, bucket: str
) -> None:
    counting = CountingSession()
    store = new_store(moto_url, bucket, counting)
    async with store:
        async with store:
            await store.save(AgentSession(id=SID))
        assert counting.closed == 0  # the outer block still holds it
        assert await store.load(SID) is not None
    assert (counting.opened, counting.closed) == (1, 1)
    assert await store.list() == [SID]  # a later use opens a new client
    await store.close()
    assert (counting.opened, counting.closed) == (2, 2)


async def test_a_failed_opening_is_reported_to_every_waiter_and_retried(
    moto_url: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    store = new_store(moto_url, bucket)
    results = await asyncio.gather(store.load(SID), store.list(), return_exceptions=True)
    assert all(isinstance(result, SessionStoreError) for result in results)
    assert "credentials" in str(results[0])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert await store.list() == []
    await store.close()


def test_a_store_running_on_another_loop_says_so(moto_url: str, bucket: str) -> None:
    store = new_store(moto_url, bucket)
    opened, release = threading.Event(), threading.Event()

    async def hold() -> None:
        await store.list()
        opened.set()
        await asyncio.to_thread(release.wait)
        await store.close()

    thread = threading.Thread(target=asyncio.run, args=(hold(),))
    thread.start()
    try:
        assert opened.wait(10)
        with pytest.raises(SessionStoreError, match="another event loop"):
            asyncio.run(store.list())
    finally:
        release.set()
        thread.join()
    assert asyncio.run(store.list()) == []  # that loop is gone: this one opens its own


# -- the README's Lambda handler ------------------------------------------------------------

HANDLER = Path(__file__).parents[1] / "terraform" / "examples" / "lambda" / "handler.py"


def load_handler(
    monkeypatch: pytest.MonkeyPatch, moto_url: str, bucket: str, counting: CountingSession
) -> ModuleType:
    """The example handler as Lambda imports it, its store counting the clients it opens."""
    monkeypatch.setenv("S3STORE_BUCKET", bucket)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    spec = importlib.util.spec_from_file_location("lambda_handler_under_test", HANDLER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.store = S3SessionStore.from_env(session=counting)
    return module


def invocation(request_id: str) -> SimpleNamespace:
    """What Lambda passes as `context`, as far as the handler reads it."""
    return SimpleNamespace(aws_request_id=request_id)


def test_the_readme_shows_the_example_handler() -> None:
    example = HANDLER.read_text()
    readme = (HANDLER.parents[3] / "README.md").read_text()
    assert example[example.index("from typing import Any") :] in readme


def test_the_handler_per_loop_and_warm(
    monkeypatch: pytest.MonkeyPatch, moto_url: str, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    counting = CountingSession()
    module = load_handler(monkeypatch, moto_url, bucket, counting)
    event = {"session": 7, "text": "hi"}
    with no_leaks(caplog):
        # The old pattern: a new loop per invocation, so a new client each time.
        for turn in range(3):
            result = asyncio.run(module.handler.__wrapped__(event, invocation(f"cold-{turn}")))
            assert result == {"messages": turn + 1}
        assert (counting.opened, counting.closed) == (3, 3)
        # @lambda_handler: one loop for the process, one client for every invocation.
        for turn in range(3):
            assert module.handler(event, invocation(f"warm-{turn}")) == {"messages": turn + 4}
        assert (counting.opened, counting.closed) == (4, 3)
        # Lambda retries an invocation that had saved: its turn is not added again.
        assert module.handler(event, invocation("warm-2")) == {"messages": 6}
        serverless.shutdown()
    assert (counting.opened, counting.closed) == (4, 4)
    stored = asyncio.run(module.store.load(SessionId(7)))
    assert texts(stored) == ["hi"] * 6
