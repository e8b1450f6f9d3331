"""The object layer's contract, on S3 (the moto server) and in memory: reads, the three
kinds of write, head, delete, listing, codecs, typed errors, update() under rival
writers with lost answers, and idempotency keys under concurrent duplicates."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from pydantic import BaseModel

from s3store import (
    AgentSession,
    AssistantMessage,
    ConfigurationError,
    CorruptSessionError,
    InMemorySessionStore,
    InvalidSessionError,
    S3SessionStore,
    SessionConflictError,
    SessionId,
    SessionStore,
    SessionStoreError,
    SessionTooLargeError,
    UserMessage,
    WriteOutcomeUnknownError,
)
from s3store.objects import (
    BYTES,
    SUPERSEDED,
    Codec,
    InMemoryObjects,
    ModelCodec,
    Objects,
    StoredVersion,
)
from s3store.s3 import S3Objects
from tests.conftest import REGION
from tests.faultproxy import Fault, FaultProxy

NAME = "docs/ledger.json"


class Ledger(BaseModel):
    """A document of a framework's own: what each change appended, in order."""

    entries: list[str] = []


LEDGER = ModelCodec(Ledger)


def s3_objects(url: str, bucket: str) -> S3Objects:
    return S3Objects(bucket, endpoint_url=url, region_name=REGION)


Peers = Callable[[], Awaitable[Objects]]


@pytest.fixture(params=["memory", "s3"])
async def peers(request: pytest.FixtureRequest, moto_url: str, bucket: str) -> AsyncIterator[Peers]:
    """Makes views of one set of objects, one per call: a process each."""
    memory = InMemoryObjects()
    opened: list[S3Objects] = []

    async def make() -> Objects:
        if request.param == "memory":
            return memory.peer()
        objects = s3_objects(moto_url, bucket)
        await objects.open()
        opened.append(objects)
        return objects

    yield make
    for objects in opened:
        await objects.close()


@pytest.fixture
async def objects(peers: Peers) -> Objects:
    return await peers()


# -- reading and writing -------------------------------------------------------------


async def test_read_and_head_are_none_when_absent(objects: Objects) -> None:
    assert await objects.read(NAME) is None
    assert await objects.head(NAME) is None


async def test_create_only_refuses_an_existing_object(objects: Objects) -> None:
    created = await objects.write(NAME, b"first", base=None)
    with pytest.raises(SessionConflictError) as caught:
        await objects.write(NAME, b"second", base=None)
    assert caught.value.key == objects.key(NAME)
    stored = await objects.read(NAME)
    assert stored is not None
    assert (stored.body, stored.version, stored.writes) == (b"first", *created)


async def test_a_conditional_write_lands_only_over_its_base(objects: Objects) -> None:
    first = await objects.write(NAME, b"1", base=None)
    second = await objects.write(NAME, b"2", base=first)
    assert second.writes[1:] == first.writes  # the history goes on from the base
    with pytest.raises(SessionConflictError):
        await objects.write(NAME, b"stale", base=first)
    head = await objects.head(NAME)
    assert head is not None
    third = await objects.write(NAME, b"3", base=head)  # a head is a base as well
    stored = await objects.read(NAME)
    assert stored is not None
    assert (stored.body, stored.version, stored.writes) == (b"3", *third)
    await objects.delete(NAME)
    with pytest.raises(SessionConflictError):
        await objects.write(NAME, b"over nothing", base=third)  # S3 answers 404 here
    assert await objects.read(NAME) is None


async def test_an_unconditional_write_replaces_whatever_is_stored(objects: Objects) -> None:
    await objects.write(NAME, b"old", base=None)
    written = await objects.write(NAME, b"new", base=None, conditional=False)
    stored = await objects.read(NAME)
    assert stored is not None
    assert (stored.body, stored.version, stored.writes) == (b"new", *written)
    assert len(written.writes) == 1  # no base: a new lineage


async def test_head_tells_version_history_and_size_without_the_body(objects: Objects) -> None:
    written = await objects.write(NAME, b"x" * 123, base=None)
    head = await objects.head(NAME)
    assert head is not None
    assert (head.version, head.writes, head.size) == (written.version, written.writes, 123)
    assert isinstance(head.last_modified, datetime)
    assert head.version_id is None  # the bucket keeps no versions


async def test_delete_and_delete_many_remove_and_ignore_the_absent(objects: Objects) -> None:
    for name in ("a.json", "b.json", "c.json"):
        await objects.write(name, b"{}", base=None)
    await objects.delete("a.json")
    await objects.delete("a.json")  # absent: not an error
    assert await objects.delete_many(["b.json", "c.json", "missing.json"]) == {}
    assert [info async for info in objects.iter_objects()] == []


# -- listing -------------------------------------------------------------------------

LAYOUT = ["a.json", "a/x.json", "b.json", "c.json", "f/x.json", "f/y.json", "f/z/deep.json"]


async def names(objects: Objects, folder: str = "", **options: Any) -> list[str]:
    return [info.name async for info in objects.iter_objects(folder, **options)]


async def test_iter_objects_lists_a_folder_or_everything_under_it(objects: Objects) -> None:
    for name in reversed(LAYOUT):
        await objects.write(name, name.encode(), base=None)

    assert await names(objects) == ["a.json", "b.json", "c.json"]
    assert await names(objects, recursive=True) == LAYOUT
    assert await names(objects, "f/") == ["f/x.json", "f/y.json"]
    assert await names(objects, "f/", recursive=True) == ["f/x.json", "f/y.json", "f/z/deep.json"]
    assert await names(objects, after="a.json") == ["b.json", "c.json"]
    assert await names(objects, "f/", after="f/x.json", recursive=True) == [
        "f/y.json",
        "f/z/deep.json",
    ]
    # On S3 the folder a/ takes a place of a two-key page: the listing goes on past it.
    assert await names(objects, limit=2) == ["a.json", "b.json"]
    assert await names(objects, after="a.json", limit=1) == ["b.json"]
    assert await names(objects, limit=0) == []
    with pytest.raises(ConfigurationError):
        await names(objects, limit=-1)

    (info,) = [info async for info in objects.iter_objects("f/", limit=1)]
    head = await objects.head("f/x.json")
    assert head is not None
    assert (info.key, info.size, info.etag) == (objects.key("f/x.json"), 8, head.version)


async def test_iter_objects_pages_past_a_thousand() -> None:
    objects = InMemoryObjects()  # on S3, tests/test_listing.py lists 5,000 sessions
    for number in range(2500):
        await objects.write(f"{number:05d}", b"", base=None)
    listed = await names(objects)
    assert listed == [f"{number:05d}" for number in range(2500)]
    assert await names(objects, after="00999", limit=1001) == listed[1000:2001]


# -- documents and their errors ------------------------------------------------------


async def test_a_model_codec_round_trips_through_update(objects: Objects) -> None:
    def add(ledger: Ledger | None) -> Ledger:
        ledger = ledger or Ledger()
        ledger.entries.append(f"entry {len(ledger.entries)}")
        return ledger

    await objects.update(NAME, add, codec=LEDGER)
    updated = await objects.update(NAME, add, codec=LEDGER)

    stored = await objects.read(NAME)
    assert stored is not None
    assert updated.document == Ledger(entries=["entry 0", "entry 1"])
    assert stored.body == updated.document.model_dump_json().encode()
    assert LEDGER.decode(stored.body) == updated.document
    assert updated.version == StoredVersion(stored.version, stored.writes)


class Strict:
    """A codec of its own: ASCII text only, refused with a ValueError either way."""

    def decode(self, body: bytes) -> str:
        return body.decode("ascii")  # UnicodeDecodeError is a ValueError

    def encode(self, document: str) -> bytes:
        return document.encode("ascii")


@pytest.mark.parametrize(
    ("body", "codec", "problem"),
    [
        (b"{not json", LEDGER, "Invalid JSON"),
        (b'{"entries": 3}', LEDGER, "at entries"),
        ("é".encode(), Strict(), "ascii"),
    ],
    ids=["not-json", "wrong-shape", "own-codec"],
)
async def test_a_corrupt_document_is_an_error_naming_bucket_and_key(
    objects: Objects, body: bytes, codec: Codec[Any], problem: str
) -> None:
    await objects.write(NAME, body, base=None)
    calls: list[object] = []
    with pytest.raises(CorruptSessionError) as caught:
        await objects.update(NAME, calls.append, codec=codec)
    error = caught.value
    assert calls == []
    assert error.key == objects.key(NAME)
    assert error.bucket == objects.bucket_name
    if isinstance(objects, S3Objects):
        assert error.bucket == objects.bucket
        assert f"bucket {objects.bucket!r}" in str(error)
    assert problem in str(error)
    assert error.raw == body
    stored = await objects.read(NAME)
    assert stored is not None
    assert stored.body == body  # left in place


async def test_a_document_the_codec_cannot_encode_is_refused_before_any_write(
    objects: Objects,
) -> None:
    with pytest.raises(InvalidSessionError) as caught:
        await objects.update(NAME, lambda _: "ünïcode", codec=Strict())
    assert caught.value.key == objects.key(NAME)
    assert await objects.read(NAME) is None


async def test_a_too_large_body_is_refused_and_a_too_large_object_not_read(
    objects: Objects,
) -> None:
    await objects.write(NAME, b"x" * 100, base=None)
    objects.max_object_bytes = 64
    with pytest.raises(SessionTooLargeError) as caught:
        await objects.read(NAME)
    assert caught.value.key == objects.key(NAME)
    with pytest.raises(SessionTooLargeError):
        await objects.write("other.json", b"x" * 65, base=None)
    with pytest.raises(SessionTooLargeError):
        await objects.update("other.json", lambda _: b"x" * 65)
    assert await objects.read("other.json") is None
    await objects.write("other.json", b"x" * 64, base=None)  # the limit itself is fine


async def test_a_write_over_a_superseded_version_is_refused_without_a_request(
    objects: Objects,
) -> None:
    stored = await objects.write(NAME, b"current", base=None)
    superseded = StoredVersion(SUPERSEDED, stored.writes)
    with pytest.raises(SessionConflictError):
        await objects.write(NAME, b"over it", base=superseded)
    with pytest.raises(SessionConflictError):
        await objects.write(NAME, b"over it", base=superseded, idempotency_key="k")
    current = await objects.read(NAME)
    assert current is not None
    assert current.body == b"current"


async def test_an_update_whose_lost_write_was_built_on_comes_back_superseded(
    moto_url: str, bucket: str
) -> None:
    # Our PUT lands, its answer is lost, a rival builds on it: update() succeeds
    # (the history shows our write) but hands back a version no write can go over.
    def append(text: bytes) -> Callable[[bytes | None], bytes]:
        return lambda body: (body or b"") + text

    async with s3_objects(moto_url, bucket) as direct:
        await direct.update(NAME, append(b"1"))

        async def rival() -> None:
            await direct.update(NAME, append(b"-rival"))

        proxy = FaultProxy(
            moto_url, {}, script=[Fault.RESET_AFTER], methods={"PUT"}, after_applied=rival
        )
        async with proxy as url, s3_objects(url, bucket) as victim:
            updated = await victim.update(NAME, append(b"-ours"))
            assert updated.version.version == SUPERSEDED
            assert updated.document == b"1-ours"
            puts = proxy.by_method["PUT"]
            with pytest.raises(SessionConflictError):
                await victim.write(NAME, updated.document + b"-again", base=updated.version)
            assert proxy.by_method["PUT"] == puts
        stored = await direct.read(NAME)
    assert proxy.injected[Fault.RESET_AFTER] == 1
    assert stored is not None
    assert stored.body == b"1-ours-rival"


# -- idempotency keys ----------------------------------------------------------------


async def test_an_idempotency_key_applies_once_across_processes(peers: Peers) -> None:
    calls: list[int] = []

    def add(ledger: Ledger | None) -> Ledger:
        calls.append(1)
        ledger = ledger or Ledger()
        ledger.entries.append("once")
        return ledger

    first = await (await peers()).update(NAME, add, codec=LEDGER, idempotency_key="request-1")
    again = await (await peers()).update(NAME, add, codec=LEDGER, idempotency_key="request-1")
    assert calls == [1]
    assert again == first
    raw = await (await peers()).update(NAME, lambda body: b"", idempotency_key="request-1")
    assert raw.document == first.document.model_dump_json().encode()  # stored, as bytes


async def test_concurrent_duplicates_with_one_key_both_return_what_is_stored(
    peers: Peers,
) -> None:
    # Both read the same version; A stores first. B's conditional write meets A's,
    # whose history carries the same key: B must hand back A's document, not its own.
    a, b = await peers(), await peers()
    await a.write(NAME, Ledger(entries=["hi"]).model_dump_json().encode(), base=None)
    a_stored, b_read = asyncio.Event(), asyncio.Event()

    async def by_a(ledger: Ledger | None) -> Ledger:
        assert ledger is not None
        await b_read.wait()
        ledger.entries.append("drafted by A")
        return ledger

    async def by_b(ledger: Ledger | None) -> Ledger:
        assert ledger is not None
        b_read.set()
        await a_stored.wait()
        ledger.entries.append("drafted by B")
        return ledger

    async def run_a() -> Any:
        try:
            return await a.update(NAME, by_a, codec=LEDGER, idempotency_key="msg-1")
        finally:
            a_stored.set()

    from_a, from_b = await asyncio.gather(
        run_a(), b.update(NAME, by_b, codec=LEDGER, idempotency_key="msg-1")
    )

    stored = await a.read(NAME)
    assert stored is not None
    assert LEDGER.decode(stored.body) == Ledger(entries=["hi", "drafted by A"])
    assert from_a.document == from_b.document == LEDGER.decode(stored.body)
    assert from_a.version == from_b.version == StoredVersion(stored.version, stored.writes)
    # What B holds is what is stored, so building on it keeps A's change.
    from_b.document.entries.append("follow-up")
    await b.write(NAME, LEDGER.encode(from_b.document), base=from_b.version)
    final = await a.read(NAME)
    assert final is not None
    assert LEDGER.decode(final.body).entries == ["hi", "drafted by A", "follow-up"]


SID = SessionId(4, "dup")


def contents(session: AgentSession) -> list[object]:
    return [getattr(message, "content", None) for message in session.chat_messages]


@pytest.fixture(params=["memory", "s3"])
async def two_stores(
    request: pytest.FixtureRequest, moto_url: str, bucket: str
) -> AsyncIterator[tuple[SessionStore, SessionStore]]:
    if request.param == "memory":
        memory = InMemorySessionStore()
        yield memory, memory.peer()
        return
    stores = [S3SessionStore(bucket, endpoint_url=moto_url, region_name=REGION) for _ in range(2)]
    async with stores[0], stores[1]:
        yield stores[0], stores[1]


async def test_a_duplicate_delivery_never_returns_its_unsaved_session(
    two_stores: tuple[SessionStore, SessionStore],
) -> None:
    # ../shared/repro/round3/t04: an SQS message delivered twice, both consumers at
    # once. B got back its own, never stored, reply, and its next save() (over the
    # stored version's ETag) replaced A's acknowledged reply.
    store_a, store_b = two_stores
    await store_a.save(AgentSession(id=SID, chat_messages=[UserMessage(content="hi")]))
    a_saved, b_loaded = asyncio.Event(), asyncio.Event()

    async def turn_a(session: AgentSession | None) -> AgentSession:
        assert session is not None
        await b_loaded.wait()
        session.chat_messages.append(AssistantMessage(content="reply drafted by A"))
        return session

    async def turn_b(session: AgentSession | None) -> AgentSession:
        assert session is not None
        b_loaded.set()
        await a_saved.wait()  # B's turn takes longer: A saves first
        session.chat_messages.append(AssistantMessage(content="reply drafted by B"))
        return session

    async def run_a() -> AgentSession:
        try:
            return await store_a.update(SID, turn_a, idempotency_key="msg-123")
        finally:
            a_saved.set()

    from_a, from_b = await asyncio.gather(
        run_a(), store_b.update(SID, turn_b, idempotency_key="msg-123")
    )

    stored = await store_a.load(SID)
    assert stored is not None
    replies = ["hi", "reply drafted by A"]
    assert contents(stored) == replies
    assert from_a == from_b == stored
    from_b.chat_messages.append(UserMessage(content="follow-up via B"))
    await store_b.save(from_b)  # B holds the stored version: its save keeps A's reply
    final = await store_a.load(SID)
    assert final is not None
    assert contents(final) == [*replies, "follow-up via B"]


# -- rival writers, a quarter of the PUT answers lost ------------------------------------


@dataclass(frozen=True)
class Kind:
    """A document of one kind: its name, its codec, how a change adds a tag, the tags
    it holds."""

    name: str
    codec: Codec[Any]
    add: Callable[[Any, str], Any]
    tags: Callable[[bytes], list[str]]


def add_entry(ledger: Ledger | None, tag: str) -> Ledger:
    ledger = ledger or Ledger()
    ledger.entries.append(tag)
    return ledger


KINDS = [
    Kind(NAME, LEDGER, add_entry, lambda body: LEDGER.decode(body).entries),
    Kind(
        "docs/tags.txt",
        BYTES,
        lambda body, tag: (body or b"") + tag.encode() + b"\n",
        lambda body: body.decode().split(),
    ),
]


@dataclass
class Outcomes:
    acknowledged: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # SessionConflictError: not stored
    unknown: list[str] = field(default_factory=list)
    other: Counter[str] = field(default_factory=Counter)
    calls: int = 0  # of fn: more than the updates when rivals made them retry


async def rivals(writers: list[Objects], tasks: int, turns: int) -> dict[str, Outcomes]:
    """`tasks` tasks over the writers; in each of `turns` turns a task updates every
    kind of document at once, each update adding a tag of its own. `fn` yields to
    the loop between the read and the write, so that rivals in memory conflict too."""
    outcomes = {kind.name: Outcomes() for kind in KINDS}

    async def update(objects: Objects, kind: Kind, tag: str) -> None:
        seen = outcomes[kind.name]

        async def change(document: Any) -> Any:
            seen.calls += 1
            await asyncio.sleep(0)
            return kind.add(document, tag)

        try:
            await objects.update(kind.name, change, codec=kind.codec)
            seen.acknowledged.append(tag)
        except SessionConflictError:
            seen.refused.append(tag)
        except WriteOutcomeUnknownError:
            seen.unknown.append(tag)
        except SessionStoreError as exc:
            seen.other[type(exc).__name__] += 1

    async def worker(objects: Objects, task: int) -> None:
        rng = random.Random(task)
        for turn in range(turns):
            await asyncio.sleep(rng.uniform(0, 0.01))
            await asyncio.gather(*(update(objects, kind, f"t{task}-{turn}") for kind in KINDS))

    await asyncio.gather(*(worker(writers[task % len(writers)], task) for task in range(tasks)))
    return outcomes


async def judge(objects: Objects, outcomes: dict[str, Outcomes]) -> dict[str, dict[str, Any]]:
    """What became of each kind's changes, from what is stored."""
    figures = {}
    for kind in KINDS:
        stored = await objects.read(kind.name)
        assert stored is not None
        tags = Counter(kind.tags(stored.body))
        seen = outcomes[kind.name]
        figures[kind.name] = {
            "fn_calls": seen.calls,
            "succeeded": len(seen.acknowledged),
            "conflicts": len(seen.refused),
            "unknown": len(seen.unknown),
            "other_errors": dict(seen.other),
            "applied_twice": sum(1 for count in tags.values() if count > 1),
            "acknowledged_missing": sum(1 for tag in seen.acknowledged if tag not in tags),
            "conflicts_applied": sum(1 for tag in seen.refused if tag in tags),
        }
    return figures


def assert_exactly_once(figures: dict[str, dict[str, Any]], updates: int) -> None:
    for kind in figures.values():
        assert kind["fn_calls"] > updates  # rivals conflicted, and retried
        assert kind["applied_twice"] == 0
        assert kind["acknowledged_missing"] == 0
        assert kind["conflicts_applied"] == 0
        assert kind["other_errors"] == {}
        assert kind["succeeded"] >= 0.9 * updates


TASKS, TURNS = 12, 6


async def test_rival_writers_on_s3_with_lost_answers_apply_each_change_once(
    moto_url: str, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # 12 tasks over 4 processes, 6 turns each, on a pydantic and a bytes document at
    # once; a quarter of the PUT answers are lost after the PUT landed.
    proxy = FaultProxy(moto_url, {Fault.RESET_AFTER: 0.25}, methods={"PUT"}, seed=18)
    async with proxy as url:
        writers = [s3_objects(url, bucket) for _ in range(4)]
        for writer in writers:
            await writer.open()
        try:
            outcomes = await rivals(list(writers), TASKS, TURNS)
        finally:
            for writer in writers:
                await writer.close()
    async with s3_objects(moto_url, bucket) as direct:
        figures = await judge(direct, outcomes)
    puts, lost = proxy.by_method["PUT"], proxy.injected[Fault.RESET_AFTER]
    with capsys.disabled():
        print(f"\nlost-answer run (S3, {puts} PUTs, {lost} answers lost): {json.dumps(figures)}")
    assert lost >= 0.2 * puts  # the losses were real
    assert_exactly_once(figures, TASKS * TURNS)


async def test_rival_writers_in_memory_apply_each_change_once() -> None:
    memory = InMemoryObjects()
    outcomes = await rivals([memory.peer() for _ in range(4)], TASKS, TURNS)
    assert_exactly_once(await judge(memory, outcomes), TASKS * TURNS)
