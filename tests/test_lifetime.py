"""A store's client follows the event loop: opened on first use, kept by that loop until
the loop ends or `close()` is called on it, and never closed under a request in flight.

The scenarios of issue #19 run here with warnings as errors, counting the aiohttp sessions
left open: a loop's client survives other loops using the store (t02), `serverless.shutdown()`
works after an `asyncio.run()` (t03), `close()` waits for requests in flight (t06).
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import logging
import subprocess
import sys
import textwrap
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, TypeVar

import aioboto3
import aiohttp
import pytest

import s3store
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
    """An aioboto3 session that counts the clients it opens and closes; `on_open`
    is called with each client it opens."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = 0
        self.closed = 0
        self.on_open: Callable[[Any], None] = lambda client: None

    def client(self, *args: Any, **kwargs: Any) -> Any:
        inner = super().client(*args, **kwargs)
        counts = self

        class Counted:
            async def __aenter__(self) -> Any:
                counts.opened += 1
                client = await inner.__aenter__()
                counts.on_open(client)
                return client

            async def __aexit__(self, *exc: Any) -> Any:
                counts.closed += 1
                return await inner.__aexit__(*exc)

        return Counted()


@contextmanager
def no_leaks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Warnings are errors inside: fails on any warning (but another library's deprecation
    notice, which a server thread may emit meanwhile), an exception ignored in a destructor,
    or asyncio's or aiohttp's report of something left unclosed or pending, once everything
    made inside is collected. What earlier tests left behind is collected first."""
    gc.collect()
    ignored: list[str] = []
    hook = sys.unraisablehook
    sys.unraisablehook = lambda report: ignored.append(
        f"{report.exc_type.__name__}: {report.object!r}"
    )
    first = len(caplog.records)
    try:
        # Recorded rather than raised: one raised in a destructor or in the server's
        # thread would be swallowed there.
        with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.ERROR):
            warnings.simplefilter("always")
            yield
            gc.collect()
    finally:
        sys.unraisablehook = hook
    reports = [
        f"{warning.category.__name__}: {warning.message} ({warning.filename})"
        for warning in caught
        if not (
            issubclass(warning.category, (DeprecationWarning, PendingDeprecationWarning))
            and Path(s3store.__file__).parent not in Path(warning.filename).parents
        )
    ]
    reports += [
        record.getMessage().splitlines()[0]
        for record in caplog.records[first:]
        if any(word in record.getMessage() for word in ("Unclosed", "destroyed", "never"))
    ]
    assert reports + ignored == []


@contextmanager
def aiohttp_sessions() -> Iterator[list[aiohttp.ClientSession]]:
    """Every aiohttp session made inside (one per open client, once it sends)."""
    made: list[aiohttp.ClientSession] = []
    init = aiohttp.ClientSession.__init__

    def tracking(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        init(self, *args, **kwargs)

    aiohttp.ClientSession.__init__ = tracking  # type: ignore[method-assign]
    try:
        yield made
    finally:
        aiohttp.ClientSession.__init__ = init  # type: ignore[method-assign]


def still_open(sessions: list[aiohttp.ClientSession]) -> int:
    return sum(not session.closed for session in sessions)


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
        if sys.version_info >= (3, 11):
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

    async def main() -> list[SessionId]:
        saved: list[SessionId] = []
        all_saved = asyncio.Event()

        async def save(number: int) -> None:
            await store.save(AgentSession(id=SessionId(number)))
            saved.append(SessionId(number))
            if len(saved) == 8:
                all_saved.set()

        async def turn(number: int, explicit: bool) -> None:
            if explicit:
                async with store:
                    await save(number)
                    # The blocks end only once every save is done, however slow the
                    # machine: the last block's end closes the shared client.
                    await all_saved.wait()
            else:
                await save(number)

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
    vars(module)["store"] = S3SessionStore.from_env(session=counting)
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


# -- issue #19: lifetimes ----------------------------------------------------------------


def test_t02_an_idle_loop_keeps_its_client_while_other_loops_use_the_store(
    moto_url: str, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    counting = CountingSession()
    store = new_store(moto_url, bucket, counting)
    with no_leaks(caplog), aiohttp_sessions() as sessions:
        first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
        try:
            first.run_until_complete(store.save(AgentSession(id=SID)))
            assert second.run_until_complete(store.load(SID)) is not None
            assert asyncio.run(store.list()) == [SID]  # opens and closes a third
            assert (counting.opened, counting.closed) == (3, 1)
            assert first.run_until_complete(store.load(SID)) is not None
            assert counting.opened == 3  # the first loop's client was kept, not replaced
            first.run_until_complete(store.close())  # as the README says, before loop.close()
            assert counting.closed == 2
            second.run_until_complete(store.close())
        finally:
            first.close()
            second.close()
        assert still_open(sessions) == 0
    assert (counting.opened, counting.closed) == (3, 3)


def test_t02_lambda_invocations_between_asyncio_runs_keep_one_client(
    moto_url: str, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    counting = CountingSession()
    store = new_store(moto_url, bucket, counting)

    @serverless.lambda_handler
    async def handler(event: object, context: object) -> AgentSession | None:
        return await store.load(SID)

    with no_leaks(caplog), aiohttp_sessions() as sessions:
        try:
            for _ in range(5):
                assert handler({}, None) is None
                assert asyncio.run(store.list()) == []  # e.g. a test looking at the bucket
            # The Lambda loop's one client, kept for the next invocation; each run's closed.
            assert (counting.opened, counting.closed) == (6, 5)
            assert still_open(sessions) == 1
        finally:
            serverless.shutdown()
        assert still_open(sessions) == 0
    assert (counting.opened, counting.closed) == (6, 6)


def test_t03_shutdown_after_asyncio_run_with_no_task_left(
    moto_url: str, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    counting = CountingSession()
    store = new_store(moto_url, bucket, counting)

    @serverless.lambda_handler
    async def handler(event: object, context: object) -> AgentSession | None:
        async with store:  # an explicit lifetime: no task is left on the loop
            return await store.load(SID)

    with no_leaks(caplog), aiohttp_sessions() as sessions:
        asyncio.run(asyncio.sleep(0))  # leaves no current event loop behind
        try:
            assert handler({}, None) is None
            asyncio.run(asyncio.sleep(0))
        finally:
            serverless.shutdown()
        assert still_open(sessions) == 0
        serverless.shutdown()  # a second time: nothing to do
    assert (counting.opened, counting.closed) == (1, 1)


def test_t03_the_atexit_shutdown_is_silent_after_an_asyncio_run() -> None:
    child = textwrap.dedent(
        """
        import asyncio
        from s3store.serverless import lambda_handler

        asyncio.run(asyncio.sleep(0))

        @lambda_handler
        async def handler(event, context):
            await asyncio.sleep(0)
            return "ok"

        print(handler({}, None))
        """
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", child],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "ok\n", "")


def test_t06_close_waits_for_a_request_in_flight(
    moto_url: str, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    counting = CountingSession()
    store = new_store(moto_url, bucket, counting)

    async def main() -> None:
        held, release = asyncio.Event(), asyncio.Event()

        async def hold(**_: object) -> None:  # a GetObject on its way, not yet answered
            if not release.is_set():
                held.set()
                await release.wait()

        counting.on_open = lambda client: client.meta.events.register(
            "before-send.s3.GetObject", hold
        )
        await store.save(AgentSession(id=SID))
        loading = asyncio.create_task(store.load(SID))
        await held.wait()
        closing = asyncio.create_task(store.close())
        await asyncio.sleep(0.05)
        assert not closing.done()
        assert counting.closed == 0
        assert await store.list() == [SID]  # a use meanwhile opens a new client
        release.set()
        assert await loading is not None  # answered on the client it began on
        await closing
        assert counting.closed == 1
        await store.close()

    with no_leaks(caplog), aiohttp_sessions() as sessions:
        asyncio.run(main())
        assert still_open(sessions) == 0
    assert (counting.opened, counting.closed) == (2, 2)


def test_t06_async_with_blocks_ending_under_other_tasks_requests(
    moto_url: str, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = new_store(moto_url, bucket)

    async def main() -> Counter[str]:
        await store.save(AgentSession(id=SID))
        outcomes: Counter[str] = Counter()
        stop = asyncio.Event()

        async def worker() -> None:  # the module-level pattern: first use opens the client
            while not stop.is_set():
                try:
                    await store.load(SID)
                    outcomes["loaded"] += 1
                except Exception as exc:  # every failure is counted, none expected
                    outcomes[f"{type(exc).__name__}: {exc}"] += 1

        workers = [asyncio.create_task(worker()) for _ in range(4)]
        for _ in range(15):
            async with store:  # each end closes the shared client under the workers
                await store.load(SID)
            await asyncio.sleep(0.005)
        stop.set()
        await asyncio.gather(*workers)
        await store.close()
        return outcomes

    with no_leaks(caplog), aiohttp_sessions() as sessions:
        outcomes = asyncio.run(main())
        assert still_open(sessions) == 0
    assert list(outcomes) == ["loaded"]


def test_t06_a_client_kept_past_its_close_refuses_requests(
    moto_url: str, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = new_store(moto_url, bucket)

    async def main() -> None:
        client = await store.s3.client()
        await store.close()
        # aiobotocore would open an aiohttp session inside the closed client for it.
        with pytest.raises(SessionStoreError, match="closed"):
            await client.list_objects_v2(Bucket=bucket)
        assert await store.list() == []  # the store itself opens a new one
        await store.close()

    with no_leaks(caplog), aiohttp_sessions() as sessions:
        asyncio.run(main())
        assert still_open(sessions) == 0
