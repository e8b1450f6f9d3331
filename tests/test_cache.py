"""The opt-in warm cache: conditional loads that reuse the cached body on 304, bounded in size."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import pytest

from s3store import AgentSession, S3SessionStore, SessionId, UserMessage
from s3store._cache import BodyCache
from s3store.objects import StoredObject
from tests.conftest import REGION

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


@pytest.fixture
async def cached_store(moto_url: str, bucket: str) -> AsyncIterator[S3SessionStore]:
    store: S3SessionStore = S3SessionStore(
        bucket, endpoint_url=moto_url, region_name=REGION, cache_bytes=1 << 20
    )
    async with store:
        yield store


@asynccontextmanager
async def get_requests(store: S3SessionStore) -> AsyncIterator[list[dict[str, Any]]]:
    """What each GetObject of the store's client sent and got back (status)."""
    seen: list[dict[str, Any]] = []

    def before(request: Any, **_: Any) -> None:
        seen.append({"if_none_match": request.headers.get("If-None-Match")})

    def after(response: Any, **_: Any) -> None:
        seen[-1]["status"] = response[0].status_code  # (http response, parsed)

    events = (await store.s3.client()).meta.events
    events.register("before-send.s3.GetObject", before)
    events.register("needs-retry.s3.GetObject", after)
    try:
        yield seen
    finally:
        events.unregister("before-send.s3.GetObject", before)
        events.unregister("needs-retry.s3.GetObject", after)


def session(number: int, text: str = "hello") -> AgentSession:
    return AgentSession(id=SessionId(number), chat_messages=[UserMessage(content=text)])


async def test_a_cached_load_is_conditional_and_reuses_the_body(
    cached_store: S3SessionStore,
) -> None:
    await cached_store.save(session(1))
    async with get_requests(cached_store) as seen:
        first = await cached_store.load(SessionId(1))
        second = await cached_store.load(SessionId(1))
    assert first == second == session(1)
    assert first is not second  # each load decodes its own copy
    assert [request["status"] for request in seen] == [304, 304]
    assert all(request["if_none_match"] for request in seen)


async def test_a_session_changed_elsewhere_is_loaded_fresh(
    cached_store: S3SessionStore, s3: S3Client, bucket: str
) -> None:
    await cached_store.save(session(2))
    changed = session(2, "changed by another writer").model_dump_json().encode()
    await s3.put_object(Bucket=bucket, Key="sessions/2.json", Body=changed)
    async with get_requests(cached_store) as seen:
        loaded = await cached_store.load(SessionId(2))
        again = await cached_store.load(SessionId(2))
    assert loaded == again == session(2, "changed by another writer")
    assert [request["status"] for request in seen] == [200, 304]


async def test_a_cached_session_saves_back_conditionally(cached_store: S3SessionStore) -> None:
    await cached_store.save(session(3))
    loaded = await cached_store.load(SessionId(3))
    assert loaded is not None
    loaded.total_tool_calls = 5
    await cached_store.save(loaded)
    again = await cached_store.load(SessionId(3))
    assert again is not None
    assert again.total_tool_calls == 5


async def test_a_session_deleted_elsewhere_is_gone(
    cached_store: S3SessionStore, s3: S3Client, bucket: str
) -> None:
    await cached_store.save(session(4))
    await cached_store.load(SessionId(4))
    await s3.delete_object(Bucket=bucket, Key="sessions/4.json")
    assert await cached_store.load(SessionId(4)) is None
    assert cached_store.s3._cache is not None
    assert len(cached_store.s3._cache) == 0


async def test_deletes_evict(cached_store: S3SessionStore) -> None:
    await cached_store.save_many([session(n) for n in range(5)])
    await cached_store.delete(SessionId(0))
    await cached_store.delete_many([SessionId(1), SessionId(2)])
    assert cached_store.s3._cache is not None
    assert len(cached_store.s3._cache) == 2
    assert await cached_store.load(SessionId(1)) is None


async def test_the_cache_is_off_by_default(s3_store: S3SessionStore) -> None:
    await s3_store.save(session(5))
    async with get_requests(s3_store) as seen:
        await s3_store.load(SessionId(5))
    assert seen == [{"if_none_match": None, "status": 200}]


def test_the_cache_keeps_the_most_recently_used_within_its_budget() -> None:
    cache = BodyCache(100)
    cache.put("a", StoredObject(b"x" * 40, '"a"'))
    cache.put("b", StoredObject(b"x" * 40, '"b"'))
    assert cache.get("a") is not None  # now "b" is the least recently used
    cache.put("c", StoredObject(b"x" * 40, '"c"'))
    assert cache.get("b") is None
    assert cache.get("a") is not None
    assert cache.get("c") is not None
    assert cache.size == 80
    cache.put("huge", StoredObject(b"x" * 101, '"h"'))
    assert cache.get("huge") is None
    assert cache.size == 80
    cache.put("a", StoredObject(b"x" * 10, '"a2"'))
    assert cache.size == 50
    with pytest.raises(ValueError, match="positive"):
        BodyCache(0)
