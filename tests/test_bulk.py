"""load_many, save_many and delete_many: results, order, concurrency limits, partial failure."""

from __future__ import annotations

import asyncio

import pytest

from s3store import (
    AgentSession,
    BulkOperationError,
    CorruptSessionError,
    InMemoryObjects,
    S3SessionStore,
    SessionConflictError,
    SessionId,
    SessionStore,
    UserMessage,
)


def sessions(count: int) -> list[AgentSession]:
    return [
        AgentSession(id=SessionId(number), chat_messages=[UserMessage(content=f"m{number}")])
        for number in range(count)
    ]


async def test_save_many_then_load_many_round_trips_in_the_order_given(store: SessionStore) -> None:
    stored = sessions(25)
    await store.save_many(stored, concurrency=4)
    ids = [session.id for session in reversed(stored)] + [SessionId(999)]
    loaded = await store.load_many(ids, concurrency=3)  # type: ignore[arg-type]
    assert list(loaded) == ids
    assert loaded[SessionId(999)] is None
    assert [loaded[session.id] for session in stored] == stored  # type: ignore[index]


async def test_loaded_sessions_save_back_conditionally(store: SessionStore) -> None:
    await store.save_many(sessions(3))
    loaded = await store.load_many([SessionId(0), SessionId(1), SessionId(2)])
    for session in loaded.values():
        assert session is not None
        session.total_tool_calls = 7
    await store.save_many([s for s in loaded.values() if s is not None])
    again = await store.load(SessionId(1))
    assert again is not None
    assert again.total_tool_calls == 7


async def test_delete_many_deletes_and_ignores_absent_ids(store: SessionStore) -> None:
    await store.save_many(sessions(10))
    await store.delete_many([SessionId(n) for n in range(0, 10, 2)] + [SessionId(77)])
    assert await store.list() == [SessionId(n) for n in range(1, 10, 2)]


async def test_save_many_reports_conflicts_and_saves_the_rest(store: SessionStore) -> None:
    await store.save(AgentSession(id=SessionId(3)))
    fresh = sessions(6)  # session 3 exists already: saving a new object for it conflicts
    with pytest.raises(BulkOperationError) as failure:
        await store.save_many(fresh)
    assert list(failure.value.errors) == [SessionId(3)]
    assert isinstance(failure.value.errors[SessionId(3)], SessionConflictError)
    assert failure.value.done == [SessionId(n) for n in (0, 1, 2, 4, 5)]
    assert len(await store.list()) == 6


async def test_save_many_refuses_duplicate_ids_before_any_write(store: SessionStore) -> None:
    with pytest.raises(ValueError, match="twice"):
        await store.save_many([AgentSession(id=SessionId(1)), AgentSession(id=SessionId(1))])
    assert await store.list() == []


async def test_load_many_keeps_what_loaded_when_one_is_corrupt(
    s3_store: S3SessionStore, s3: object, bucket: str
) -> None:
    await s3_store.save_many(sessions(4))
    await s3.put_object(Bucket=bucket, Key="sessions/2.json", Body=b"not json")  # type: ignore[attr-defined]
    with pytest.raises(BulkOperationError) as failure:
        await s3_store.load_many([SessionId(n) for n in range(5)])
    assert list(failure.value.errors) == [SessionId(2)]
    assert isinstance(failure.value.errors[SessionId(2)], CorruptSessionError)
    assert list(failure.value.loaded) == [SessionId(0), SessionId(1), SessionId(3), SessionId(4)]
    assert failure.value.loaded[SessionId(4)] is None


async def test_delete_many_uses_batches_of_1000(s3_store: S3SessionStore, s3: object) -> None:
    calls: list[int] = []

    def count(params: dict[str, object], **_: object) -> None:
        calls.append(len(params["Delete"]["Objects"]))  # type: ignore[index]

    client = await s3_store.s3.client()
    client.meta.events.register("provide-client-params.s3.DeleteObjects", count)
    try:
        await s3_store.save_many(sessions(1001), concurrency=32)
        await s3_store.delete_many([SessionId(n) for n in range(1001)], concurrency=2)
    finally:
        client.meta.events.unregister("provide-client-params.s3.DeleteObjects", count)
    assert sorted(calls) == [1, 1000]
    assert await s3_store.list() == []


async def test_delete_many_reports_keys_s3_refused(s3_store: S3SessionStore) -> None:
    await s3_store.save_many(sessions(3))

    def refuse(parsed: dict[str, object], **_: object) -> None:
        parsed["Errors"] = [{"Key": "sessions/1.json", "Code": "InternalError", "Message": "x"}]

    client = await s3_store.s3.client()
    client.meta.events.register("after-call.s3.DeleteObjects", refuse)
    try:
        with pytest.raises(BulkOperationError) as failure:
            await s3_store.delete_many([SessionId(0), SessionId(1), SessionId(2)])
    finally:
        client.meta.events.unregister("after-call.s3.DeleteObjects", refuse)
    assert list(failure.value.errors) == [SessionId(1)]
    assert failure.value.errors[SessionId(1)].key == "sessions/1.json"
    assert failure.value.done == [SessionId(0), SessionId(2)]


async def test_concurrency_bounds_requests_in_flight() -> None:
    class Counting(InMemoryObjects):
        in_flight = peak = 0

        async def _get(self, key: str, version_id: str | None):  # type: ignore[no-untyped-def]
            Counting.in_flight += 1
            Counting.peak = max(Counting.peak, Counting.in_flight)
            await asyncio.sleep(0.001)
            Counting.in_flight -= 1
            return await super()._get(key, version_id)

    store: SessionStore = SessionStore(Counting())
    await store.load_many([SessionId(n) for n in range(50)], concurrency=5)
    assert Counting.peak == 5
    with pytest.raises(ValueError, match="at least 1"):
        await store.load_many([SessionId(1)], concurrency=0)


async def test_an_unexpected_error_stops_the_batch() -> None:
    class Broken(InMemoryObjects):
        async def _get(self, key: str, version_id: str | None):  # type: ignore[no-untyped-def]
            raise RuntimeError("bug")

    with pytest.raises(RuntimeError, match="bug"):
        await SessionStore(Broken()).load_many([SessionId(n) for n in range(10)])


def test_the_store_pool_is_sized_for_bulk_concurrency(s3_store: S3SessionStore) -> None:
    assert s3_store.objects.default_concurrency == 64
