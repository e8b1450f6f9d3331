"""The `SessionStore` contract, run unchanged against every store implementation."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from s3store import (
    AgentSession,
    AssistantMessage,
    InMemorySessionStore,
    InvalidSessionIdError,
    SessionId,
    SessionStore,
    ToolCall,
    ToolMessage,
    UserMessage,
)


def make_session(number: int, external_id: str | None = None, turns: int = 1) -> AgentSession:
    session = AgentSession(id=SessionId(number, external_id), always_allowed_actions={"read_file"})
    for turn in range(turns):
        session.chat_messages += [
            UserMessage(content=f"question {turn}"),
            AssistantMessage(
                content=None,
                tool_calls=[ToolCall(id=f"c{turn}", name="read_file", arguments='{"p": 1}')],
            ),
            ToolMessage(tool_call_id=f"c{turn}", content="file contents"),
        ]
    session.total_tool_calls = turns
    return session


async def test_save_then_load_returns_an_equal_session(store: SessionStore) -> None:
    session = make_session(1, "user-7", turns=3)
    await store.save(session)
    assert await store.load(SessionId(1, "user-7")) == session


async def test_load_of_a_missing_session_is_none(store: SessionStore) -> None:
    assert await store.load(SessionId(404)) is None


async def test_save_replaces_the_whole_snapshot(store: SessionStore) -> None:
    session = make_session(2)
    await store.save(session)
    session.chat_messages = [UserMessage(content="only this")]
    session.always_allowed_actions = set()
    await store.save(session)
    loaded = await store.load(SessionId(2))
    assert loaded is not None
    assert loaded.chat_messages == [UserMessage(content="only this")]
    assert loaded.always_allowed_actions == set()


async def test_a_session_without_an_id_is_refused(store: SessionStore) -> None:
    with pytest.raises(InvalidSessionIdError, match="id is None"):
        await store.save(AgentSession())
    assert await store.list() == []


async def test_list_gives_every_id_once_in_key_order(store: SessionStore) -> None:
    ids = [SessionId(10), SessionId(2), SessionId(2, "b"), SessionId(2, "a/b"), SessionId(1, "")]
    sessions = [AgentSession(id=session_id) for session_id in ids]
    for session in sessions:
        await store.save(session)
    await store.save(sessions[0])  # saved twice, listed once
    listed = await store.list()
    assert sorted(listed) == sorted(ids)
    # Key order: 1().json < 10.json < 2(a%2Fb).json < 2(b).json < 2.json
    assert listed == [
        SessionId(1, ""),
        SessionId(10),
        SessionId(2, "a/b"),
        SessionId(2, "b"),
        SessionId(2),
    ]


async def test_delete_removes_and_is_idempotent(store: SessionStore) -> None:
    await store.save(make_session(3))
    await store.delete(SessionId(3))
    assert await store.load(SessionId(3)) is None
    assert await store.list() == []
    await store.delete(SessionId(3))  # absent: not an error


async def test_changing_a_session_after_save_does_not_change_what_is_stored(
    store: SessionStore,
) -> None:
    session = make_session(4)
    await store.save(session)
    session.chat_messages.append(UserMessage(content="not saved"))
    loaded = await store.load(SessionId(4))
    assert loaded is not None
    assert len(loaded.chat_messages) == 3
    loaded.chat_messages.clear()
    again = await store.load(SessionId(4))
    assert again is not None
    assert len(again.chat_messages) == 3


async def test_the_same_object_can_be_saved_turn_after_turn(store: SessionStore) -> None:
    session = make_session(5)
    for turn in range(3):
        session.chat_messages.append(UserMessage(content=f"turn {turn}"))
        await store.save(session)
    loaded = await store.load(SessionId(5))
    assert loaded is not None
    assert loaded.chat_messages[-1] == UserMessage(content="turn 2")


async def test_unknown_fields_survive_a_round_trip(store: SessionStore) -> None:
    newer = AgentSession.model_validate(
        {
            "id": {"id": 6, "external_id": None, "tenant": "t1"},
            "summary": {"v": 2},
            "run_state": {"new_counter": 3},
        }
    )
    await store.save(newer)
    loaded = await store.load(SessionId.model_validate({"id": 6, "tenant": "t1"}))
    assert loaded is not None
    dumped = loaded.model_dump(mode="json")
    assert dumped["summary"] == {"v": 2}
    assert dumped["run_state"]["new_counter"] == 3


class Note(BaseModel):
    id: SessionId
    text: str


async def test_any_model_with_a_session_id_works(store: SessionStore) -> None:
    # Any store's objects serve a store of another model.
    notes: SessionStore[Note] = SessionStore(store.objects, model=Note)
    async with _opened(notes):
        await notes.save(Note(id=SessionId(1), text="hello"))
        assert await notes.load(SessionId(1)) == Note(id=SessionId(1), text="hello")
        assert await notes.list() == [SessionId(1)]


async def test_more_than_a_thousand_sessions_are_all_listed(store: SessionStore) -> None:
    # S3 answers ListObjectsV2 with at most 1,000 keys a page.
    limit = asyncio.Semaphore(10)

    async def save(number: int) -> None:
        async with limit:
            await store.save(AgentSession(id=SessionId(number)))

    await asyncio.gather(*(save(number) for number in range(1_050)))
    listed = await store.list()
    assert len(listed) == 1_050
    assert set(listed) == {SessionId(number) for number in range(1_050)}


external_ids = st.one_of(
    st.text(max_size=60),
    st.text(alphabet="()%/.~-_ \\\n", max_size=12),
    st.sampled_from(["", "..", "../..", "%", "%2F", "a/b", "(", ")", "é", "日本", "🙂"]),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(number=st.integers(min_value=0, max_value=2**64 - 1), external_id=st.none() | external_ids)
async def test_any_session_id_round_trips(
    store: SessionStore, number: int, external_id: str | None
) -> None:
    session_id = SessionId(number, external_id)
    await store.save(AgentSession(id=session_id))
    loaded = await store.load(session_id)
    assert loaded is not None
    assert loaded.id == session_id
    assert session_id in await store.list()
    await store.delete(session_id)


class _opened:
    """`async with` for a store that may or may not need opening."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    async def __aenter__(self) -> None:
        if hasattr(self.store, "open"):
            await self.store.open()

    async def __aexit__(self, *exc: object) -> None:
        if hasattr(self.store, "close"):
            await self.store.close()


async def test_the_in_memory_store_has_the_s3_stores_lifetime() -> None:
    # The Quickstart switched to InMemorySessionStore runs as it is.
    async with InMemorySessionStore() as store:
        await store.save(AgentSession(id=SessionId(1)))
        assert await store.list() == [SessionId(1)]
    await store.close()  # closing again, or after the block, is harmless
    assert await store.load(SessionId(1)) == AgentSession(id=SessionId(1))
