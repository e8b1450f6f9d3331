"""Exactly-once turns: a change is stored once per update(), under lost answers and retries."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import pytest
from pydantic import BaseModel, ConfigDict

from s3store import (
    AgentSession,
    InMemorySessionStore,
    S3SessionStore,
    SessionConflictError,
    SessionId,
    SessionStore,
    SessionStoreError,
    UserMessage,
    WriteOutcomeUnknownError,
)
from s3store.writes import HISTORY_LENGTH, METADATA_KEY
from tests.conftest import REGION
from tests.faultproxy import Fault, FaultProxy

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

SID = SessionId(1, "user")
KEY = "sessions/1(user).json"


def s3_store(url: str, bucket: str) -> S3SessionStore:
    return S3SessionStore(bucket, endpoint_url=url, region_name=REGION)


def count_up(session: AgentSession | None) -> AgentSession:
    session = session or AgentSession(id=SID)
    session.total_tool_calls += 1
    return session


def counting(calls: list[int]) -> Callable[[AgentSession | None], AgentSession]:
    def change(session: AgentSession | None) -> AgentSession:
        calls.append(1)
        return count_up(session)

    return change


@pytest.fixture
async def direct(moto_url: str, bucket: str) -> AsyncIterator[S3SessionStore]:
    """A store that talks to the server without a proxy: the rival, and the judge."""
    async with s3_store(moto_url, bucket) as store:
        yield store


def losing_proxy(
    moto_url: str, after_applied: Callable[[], Awaitable[None]] | None = None
) -> FaultProxy:
    """Lets the first PUT land, lets `after_applied` run, then drops the PUT's answer."""
    return FaultProxy(
        moto_url, {}, script=[Fault.RESET_AFTER], methods={"PUT"}, after_applied=after_applied
    )


async def test_a_lost_answer_built_on_by_a_rival_is_not_applied_twice(
    moto_url: str, bucket: str, direct: S3SessionStore
) -> None:
    # Our PUT lands, its answer is lost, a rival builds on our write, and the
    # retry meets 412: the stored history shows our write, so fn does not run again.
    await direct.update(SID, count_up)  # 1
    proxy = losing_proxy(moto_url, lambda: direct.update(SID, count_up))
    calls: list[int] = []
    async with proxy as url, s3_store(url, bucket) as victim:
        saved = await victim.update(SID, counting(calls))
        assert saved.total_tool_calls == 2
        with pytest.raises(SessionConflictError):
            await victim.save(saved)  # the copy it holds was built on since: not saved
    assert proxy.injected[Fault.RESET_AFTER] == 1
    assert calls == [1]
    stored = await direct.load(SID)
    assert stored is not None
    assert stored.total_tool_calls == 3


async def test_a_lost_answer_that_is_still_current_is_recognised(
    moto_url: str, bucket: str, direct: S3SessionStore
) -> None:
    await direct.update(SID, count_up)
    proxy = losing_proxy(moto_url)
    async with proxy as url, s3_store(url, bucket) as victim:
        saved = await victim.update(SID, count_up)
        saved.total_tool_calls += 10
        await victim.save(saved)  # it carries the version S3 holds: an ordinary save
    stored = await direct.load(SID)
    assert stored is not None
    assert stored.total_tool_calls == 12


async def test_an_outcome_past_the_history_is_unknown_never_a_conflict(
    moto_url: str, bucket: str, direct: S3SessionStore, s3: S3Client
) -> None:
    await direct.update(SID, count_up)

    async def many_rivals() -> None:
        for _ in range(HISTORY_LENGTH):
            await direct.update(SID, count_up)

    calls: list[int] = []
    async with losing_proxy(moto_url, many_rivals) as url, s3_store(url, bucket) as victim:
        with pytest.raises(WriteOutcomeUnknownError) as caught:
            await victim.update(SID, counting(calls))
    assert not isinstance(caught.value, SessionConflictError)
    assert caught.value.key == KEY
    assert "check for the change" in str(caught.value)
    assert calls == [1]
    stored = await direct.load(SID)
    assert stored is not None
    assert stored.total_tool_calls == HISTORY_LENGTH + 2  # applied once: unknown, not lost
    # The history stays within S3's 2 KB of user metadata, ASCII only.
    head = await s3.head_object(Bucket=bucket, Key=KEY)
    history = head["Metadata"][METADATA_KEY]
    assert len(history.split(",")) == HISTORY_LENGTH
    assert len(METADATA_KEY) + len(history.encode("ascii")) <= 2048


@pytest.mark.xfail(
    strict=True,
    reason="a known limit (README: Exactly once): If-Match compares ETags, the MD5 of "
    "the bytes, so a save on a version whose bytes a rival's pop put back is accepted "
    "and drops the pop's token from the history; the pop's lost answer is then judged "
    "'not landed' and the pop redone, taking the other save's message",
)
async def test_a_lost_answer_whose_bytes_a_stale_save_matched_is_not_redone(
    moto_url: str, bucket: str, direct: S3SessionStore
) -> None:
    # If-Match compares ETags, the MD5 of the bytes. A rival's pop puts back the bytes
    # of an earlier version, so a save built on that version is accepted, and it
    # carries that version's history: the pop's token is gone from the stored history.
    # When the pop's answer was lost, nothing in the history tells that it landed (it
    # did, and the save built on its bytes): the store must not make the pop again,
    # which takes the stale writer's message with it.
    def says(text: str) -> UserMessage:
        return UserMessage(content=text)

    def pop(session: AgentSession | None) -> AgentSession:
        assert session is not None
        session.chat_messages.pop()
        return session

    def add_rival(session: AgentSession | None) -> AgentSession:
        assert session is not None
        session.chat_messages.append(says("rival"))
        return session

    await direct.save(AgentSession(id=SID, chat_messages=[says("first")]))
    stale = await direct.load(SID)
    assert stale is not None
    await direct.update(SID, add_rival)

    async def save_stale() -> None:
        stale.chat_messages.append(says("stale writer"))
        await direct.save(stale)  # accepted: its version's bytes are stored again

    async with losing_proxy(moto_url, save_stale) as url, s3_store(url, bucket) as victim:
        with contextlib.suppress(WriteOutcomeUnknownError):  # an honest answer here
            await victim.update(SID, pop)
    stored = await direct.load(SID)
    assert stored is not None
    assert [message.content for message in stored.chat_messages] == ["first", "stale writer"]


async def test_a_conflict_still_means_not_saved(direct: S3SessionStore) -> None:
    await direct.save(AgentSession(id=SID))
    a, b = await direct.load(SID), await direct.load(SID)
    assert a is not None
    assert b is not None
    a.total_tool_calls, b.total_tool_calls = 1, 2
    await direct.save(a)
    with pytest.raises(SessionConflictError):
        await direct.save(b)
    stored = await direct.load(SID)
    assert stored is not None
    assert stored.total_tool_calls == 1


async def test_lost_answers_under_rival_writers_apply_each_change_once(
    moto_url: str, bucket: str, direct: S3SessionStore, capsys: pytest.CaptureFixture[str]
) -> None:
    # 12 tasks over 4 stores, 12 updates each, on one session; a quarter of the
    # PUT answers are lost after the PUT landed. Each update adds a unique tag.
    acknowledged: list[str] = []
    refused: list[str] = []  # SessionConflictError: definitely not saved
    unknown: list[str] = []
    other: Counter[str] = Counter()

    async def worker(store: S3SessionStore, task: int) -> None:
        rng = random.Random(task)
        for turn in range(12):
            tag = f"t{task}-{turn}"

            def add(session: AgentSession | None, tag: str = tag) -> AgentSession:
                session = session or AgentSession(id=SID)
                session.chat_messages.append(UserMessage(content=tag))
                return session

            await asyncio.sleep(rng.uniform(0, 0.01))
            try:
                await store.update(SID, add)
                acknowledged.append(tag)
            except SessionConflictError:
                refused.append(tag)
            except WriteOutcomeUnknownError:
                unknown.append(tag)
            except SessionStoreError as exc:
                other[type(exc).__name__] += 1

    proxy = FaultProxy(moto_url, {Fault.RESET_AFTER: 0.25}, methods={"PUT"}, seed=10)
    async with proxy as url:
        stores = [s3_store(url, bucket) for _ in range(4)]
        for store in stores:
            await store.open()
        try:
            await asyncio.gather(*(worker(stores[task % 4], task) for task in range(12)))
        finally:
            for store in stores:
                await store.close()

    final = await direct.load(SID)
    assert final is not None
    tags = Counter(str(message.content) for message in final.chat_messages)  # type: ignore[union-attr]
    calls = 12 * 12
    figures = {
        "updates": calls,
        "put_requests": proxy.by_method["PUT"],
        "put_answers_lost": proxy.injected[Fault.RESET_AFTER],
        "succeeded": len(acknowledged),
        "conflicts": len(refused),
        "unknown": len(unknown),
        "other_errors": dict(other),
        "applied_twice": sum(1 for count in tags.values() if count > 1),
        "acknowledged_missing": sum(1 for tag in acknowledged if tag not in tags),
        "conflicts_applied": sum(1 for tag in refused if tag in tags),
    }
    with capsys.disabled():
        print(f"\nlost-answer run: {json.dumps(figures)}")
    assert figures["put_answers_lost"] >= 0.2 * figures["put_requests"]  # the losses were real
    assert figures["applied_twice"] == 0
    assert figures["acknowledged_missing"] == 0
    assert figures["conflicts_applied"] == 0
    assert len(acknowledged) >= 0.9 * calls


# -- idempotency keys, on both stores ---------------------------------------------------


StoreFactory = Callable[[], Awaitable[SessionStore]]


@pytest.fixture(params=["memory", "s3"])
async def new_store(
    request: pytest.FixtureRequest, moto_url: str, bucket: str
) -> AsyncIterator[StoreFactory]:
    """Makes a new store over one bucket (or object map) per call: a new invocation."""
    memory = InMemorySessionStore()
    opened: list[S3SessionStore] = []

    async def make() -> SessionStore:
        if request.param == "memory":
            return memory.peer()
        store = s3_store(moto_url, bucket)
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


async def test_an_idempotency_key_applies_a_change_once(new_store: StoreFactory) -> None:
    calls: list[int] = []
    for _ in range(3):  # a Lambda invocation, retried twice after it saved
        store = await new_store()
        session = await store.update(SID, counting(calls), idempotency_key="request-1")
        assert session.total_tool_calls == 1
    assert calls == [1]
    store = await new_store()
    session = await store.update(SID, counting(calls), idempotency_key="request-2")
    assert session.total_tool_calls == 2
    assert calls == [1, 1]
    loaded = await store.load(SID)
    assert loaded is not None
    assert loaded.total_tool_calls == 2


@pytest.mark.parametrize("key", ["", "ü/\n\t%()", "x" * 10_000, "\ud800 lone surrogate"], ids=repr)
async def test_idempotency_keys_of_any_length_and_text(new_store: StoreFactory, key: str) -> None:
    store = await new_store()
    await store.update(SID, count_up, idempotency_key=key)
    again = await (await new_store()).update(SID, count_up, idempotency_key=key)
    assert again.total_tool_calls == 1


async def test_an_idempotency_key_is_found_after_later_writes(new_store: StoreFactory) -> None:
    store = await new_store()
    await store.update(SID, count_up, idempotency_key="request-1")
    for _ in range(5):
        await store.update(SID, count_up)
    again = await (await new_store()).update(SID, count_up, idempotency_key="request-1")
    assert again.total_tool_calls == 6


# -- what a session object carries --------------------------------------------------------


class Slotted(BaseModel):
    """A model that cannot be weak-referenced."""

    __slots__ = ()
    id: SessionId
    n: int = 0


async def test_a_model_without_weak_references_saves_and_loads(moto_url: str, bucket: str) -> None:
    async with S3SessionStore(
        bucket, endpoint_url=moto_url, region_name=REGION, model=Slotted
    ) as store:
        await store.save(Slotted(id=SID))
        loaded = await store.load(SID)
        assert loaded is not None
        loaded.n = 1
        await store.save(loaded)
        assert await store.load(SID) == Slotted(id=SID, n=1)


async def test_a_copy_of_a_loaded_session_carries_its_version(new_store: StoreFactory) -> None:
    store = await new_store()
    await store.save(AgentSession(id=SID))
    loaded = await store.load(SID)
    assert loaded is not None
    copy = loaded.model_copy(deep=True)
    copy.total_tool_calls = 5
    await store.save(copy)  # a copy of what was loaded: saved over that version
    with pytest.raises(SessionConflictError):
        await store.save(loaded)  # the original was loaded at the same, now old, version
    assert loaded == AgentSession(id=SID)  # equality ignores what the object carries


async def test_a_session_id_with_an_unknown_field_loads_and_updates(
    new_store: StoreFactory,
) -> None:
    # A newer agent-base wrote a field into the id that this version does not know.
    store = await new_store()
    body = json.dumps({"id": {"id": 1, "external_id": "user", "tenant": "acme"}}).encode()
    await store.objects.write(store.name(SID), body, base=None)
    (listed,) = await store.list()
    assert listed == SID
    assert hash(listed) == hash(SID)
    loaded = await store.load(listed)
    assert loaded is not None
    assert loaded.id == SID
    updated = await store.update(SID, count_up)
    assert updated.total_tool_calls == 1
    stored = await store.objects.read(store.name(SID))
    assert stored is not None
    assert json.loads(stored.body)["id"] == {"id": 1, "external_id": "user", "tenant": "acme"}


class Assigned(BaseModel):
    """A model that validates assignments and keeps unknown fields."""

    model_config = ConfigDict(validate_assignment=True, extra="allow")
    id: SessionId
    n: int = 0


@pytest.mark.parametrize("kind", ["memory", "s3"])
async def test_a_validating_model_keeps_its_version_and_stores_no_trace_of_it(
    kind: str, moto_url: str, bucket: str, s3: S3Client
) -> None:
    store: SessionStore[Assigned]
    if kind == "memory":
        store = InMemorySessionStore(model=Assigned)
    else:
        store = S3SessionStore(bucket, endpoint_url=moto_url, region_name=REGION, model=Assigned)
        await store.open()
    try:
        await store.save(Assigned(id=SID))
        loaded = await store.load(SID)
        assert loaded is not None
        loaded.n = 1  # pydantic moves unknown __dict__ entries into the extras here
        await store.save(loaded)  # still the version it was loaded at: no conflict
        assert loaded.model_dump() == {"id": {"id": 1, "external_id": "user"}, "n": 1}
        if isinstance(store, S3SessionStore):
            body = await (await s3.get_object(Bucket=bucket, Key=KEY))["Body"].read()
            assert json.loads(body) == loaded.model_dump()
    finally:
        if isinstance(store, S3SessionStore):
            await store.close()
