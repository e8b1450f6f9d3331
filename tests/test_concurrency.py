"""Optimistic concurrency: no save overwrites a version its writer did not see."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import aioboto3
import pytest

from s3store import (
    AgentSession,
    InMemorySessionStore,
    InvalidSessionIdError,
    S3SessionStore,
    SessionConflictError,
    SessionId,
    SessionStore,
    UserMessage,
)
from s3store.store import Concurrency
from tests.conftest import REGION

if TYPE_CHECKING:
    from botocore.awsrequest import AWSPreparedRequest

SID = SessionId(1, "user")


class Stores:
    """Makes stores over one bucket (or one in-memory object map): one per "invocation"."""

    def __init__(self, kind: str, moto_url: str, bucket: str) -> None:
        self.kind, self.moto_url, self.bucket = kind, moto_url, bucket
        self._memory = InMemorySessionStore()
        self._open: list[S3SessionStore] = []
        self.session = aioboto3.Session()  # requests are seen through its event hooks

    async def new(self, concurrency: Concurrency = "optimistic") -> SessionStore:
        if self.kind == "memory":
            peer = self._memory.peer()
            peer.concurrency = concurrency
            return peer
        store = S3SessionStore(
            self.bucket,
            session=self.session,
            endpoint_url=self.moto_url,
            region_name=REGION,
            concurrency=concurrency,
        )
        await store.open()
        self._open.append(store)
        return store

    async def close(self) -> None:
        for store in self._open:
            await store.close()


@pytest.fixture(params=["memory", "s3"])
async def stores(
    request: pytest.FixtureRequest, moto_url: str, bucket: str
) -> AsyncIterator[Stores]:
    stores = Stores(request.param, moto_url, bucket)
    yield stores
    await stores.close()


async def test_a_save_over_a_version_it_did_not_see_conflicts(stores: Stores) -> None:
    first, a, b = await stores.new(), await stores.new(), await stores.new()
    await first.save(AgentSession(id=SID))
    in_a, in_b = await a.load(SID), await b.load(SID)
    assert in_a is not None
    assert in_b is not None
    in_a.chat_messages.append(UserMessage(content="from A"))
    await a.save(in_a)
    in_b.chat_messages.append(UserMessage(content="from B"))
    with pytest.raises(SessionConflictError) as caught:
        await b.save(in_b)
    assert caught.value.key == "sessions/1(user).json"
    assert "sessions/1(user).json" in str(caught.value)

    again = await b.load(SID)  # reload, reapply, save
    assert again is not None
    again.chat_messages.append(UserMessage(content="from B"))
    await b.save(again)
    final = await first.load(SID)
    assert final is not None
    assert [m.content for m in final.chat_messages] == ["from A", "from B"]  # type: ignore[union-attr]


async def test_a_rival_that_computed_the_same_bytes_still_conflicts(stores: Stores) -> None:
    # Both add one to the counter they read: equal results, but two increments.
    a, b = await stores.new(), await stores.new()
    await a.save(AgentSession(id=SID))
    in_a, in_b = await a.load(SID), await b.load(SID)
    assert in_a is not None
    assert in_b is not None
    in_a.total_tool_calls += 1
    in_b.total_tool_calls += 1
    await a.save(in_a)
    with pytest.raises(SessionConflictError):
        await b.save(in_b)


async def test_two_creations_of_one_id_the_second_conflicts(stores: Stores) -> None:
    a, b = await stores.new(), await stores.new()
    await a.save(AgentSession(id=SID, total_tool_calls=1))
    with pytest.raises(SessionConflictError):
        await b.save(AgentSession(id=SID, total_tool_calls=2))
    stored = await a.load(SID)
    assert stored is not None
    assert stored.total_tool_calls == 1


async def test_two_copies_in_one_store_carry_their_own_versions(stores: Stores) -> None:
    store = await stores.new()
    await store.save(AgentSession(id=SID))
    one, two = await store.load(SID), await store.load(SID)
    assert one is not None
    assert two is not None
    one.total_tool_calls = 1
    await store.save(one)
    two.total_tool_calls = 2
    with pytest.raises(SessionConflictError):
        await store.save(two)


async def test_a_session_deleted_since_it_was_loaded_conflicts(stores: Stores) -> None:
    a, b = await stores.new(), await stores.new()
    await a.save(AgentSession(id=SID))
    loaded = await a.load(SID)
    assert loaded is not None
    await b.delete(SID)
    with pytest.raises(SessionConflictError):
        await a.save(loaded)
    assert await a.load(SID) is None


async def test_delete_stays_unconditional(stores: Stores) -> None:
    a, b = await stores.new(), await stores.new()
    await a.save(AgentSession(id=SID))
    await b.delete(SID)  # b never loaded it
    await b.delete(SID)
    assert await a.list() == []


async def test_update_creates_changes_and_returns_the_saved_session(stores: Stores) -> None:
    store = await stores.new()
    seen: list[AgentSession | None] = []

    def add(session: AgentSession | None) -> AgentSession:
        seen.append(session)
        session = session or AgentSession(id=SID)
        session.total_tool_calls += 1
        return session

    created = await store.update(SID, add)
    assert seen == [None]  # no session yet: fn gets None and builds one
    assert created.total_tool_calls == 1

    async def add_async(session: AgentSession | None) -> AgentSession:
        assert session is not None
        return session.model_copy(update={"total_tool_calls": session.total_tool_calls + 10})

    updated = await store.update(SID, add_async)
    assert updated.total_tool_calls == 11
    await store.save(updated)  # the returned object carries the version it was saved as
    stored = await store.load(SID)
    assert stored is not None
    assert stored.total_tool_calls == 11


async def test_update_retries_a_conflict_then_gives_up(stores: Stores) -> None:
    store, rival = await stores.new(), await stores.new()
    await store.save(AgentSession(id=SID))
    calls = 0

    async def collide(session: AgentSession | None) -> AgentSession:
        nonlocal calls
        calls += 1
        assert session is not None
        intruder = await rival.load(SID)
        assert intruder is not None
        intruder.total_tool_calls += 1
        await rival.save(intruder)  # the version fn started from is now stale
        return session

    with pytest.raises(SessionConflictError):
        await store.update(SID, collide, attempts=3)
    assert calls == 3


async def test_update_refuses_a_changed_id(stores: Stores) -> None:
    store = await stores.new()
    with pytest.raises(InvalidSessionIdError, match="must keep the id"):
        await store.update(SID, lambda _: AgentSession(id=SessionId(2)))
    assert await store.list() == []


async def increments(stores: Stores, concurrency: Concurrency) -> int:
    """16 tasks over 4 stores each add 1 to one counter 25 times; the final counter."""
    store_pool = [await stores.new(concurrency) for _ in range(4)]
    await store_pool[0].save(AgentSession(id=SID))

    async def increment(session: AgentSession | None) -> AgentSession:
        assert session is not None
        await asyncio.sleep(0)  # an invocation's own work (a model call) lets others run
        session.total_tool_calls += 1
        return session

    async def worker(store: SessionStore) -> None:
        for _ in range(25):
            await store.update(SID, increment, attempts=1_000)

    await asyncio.gather(*(worker(store_pool[task % 4]) for task in range(16)))
    final = await store_pool[0].load(SID)
    assert final is not None
    await store_pool[0].delete(SID)
    return final.total_tool_calls


async def test_concurrent_updates_lose_nothing(
    stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    optimistic = await increments(stores, "optimistic")
    last_writer_wins = await increments(stores, "last-writer-wins")
    with capsys.disabled():
        print(
            f"\n[{stores.kind}] 400 increments by 16 tasks over 4 stores: optimistic kept "
            f"{optimistic}, last-writer-wins kept {last_writer_wins} "
            f"(lost {400 - last_writer_wins})"
        )
    assert optimistic == 400


async def test_last_writer_wins_sends_plain_puts(moto_url: str, bucket: str) -> None:
    stores = Stores("s3", moto_url, bucket)
    headers: list[dict[str, str]] = []

    def record(request: AWSPreparedRequest, **_: object) -> None:
        headers.append({name: _text(value) for name, value in request.headers.items()})

    stores.session.events.register("before-send.s3.PutObject", record)
    try:
        optimistic, plain = await stores.new(), await stores.new("last-writer-wins")
        await optimistic.save(AgentSession(id=SID))
        loaded = await optimistic.load(SID)
        assert loaded is not None
        await optimistic.save(loaded)
        await plain.save(AgentSession(id=SID))  # never loaded: overwrites all the same
        await plain.save(AgentSession(id=SID))
    finally:
        await stores.close()
    assert headers[0].get("If-None-Match") == "*"
    assert headers[1].get("If-Match", "").strip('"')
    for sent in headers[2:]:
        assert "If-Match" not in sent
        assert "If-None-Match" not in sent
    assert len(headers) == 4


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
