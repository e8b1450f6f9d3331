"""Under faults, an acknowledged save survives and a load is valid or a typed error."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
from botocore.config import Config

from s3store import (
    AgentSession,
    CorruptSessionError,
    S3SessionStore,
    SessionConflictError,
    SessionId,
    SessionStoreError,
    StorageError,
    UserMessage,
)
from tests.conftest import REGION
from tests.faultproxy import Fault, FaultProxy

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

KEY = "sessions/1.json"
# Short timeouts keep stalls cheap; botocore's standard mode retries them.
FAST = Config(connect_timeout=0.5, read_timeout=0.5)


def faulty_store(url: str, bucket: str, **options: object) -> S3SessionStore:
    return S3SessionStore(
        bucket,
        endpoint_url=url,
        region_name=REGION,
        config=FAST,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
async def direct(moto_url: str, bucket: str) -> AsyncIterator[S3SessionStore]:
    """A store that talks to moto without the proxy, to set things up and check them."""
    async with S3SessionStore(bucket, endpoint_url=moto_url, region_name=REGION) as store:
        yield store


def session(number: int = 1, text: str = "hello") -> AgentSession:
    return AgentSession(id=SessionId(number), chat_messages=[UserMessage(content=text)])


@pytest.mark.parametrize(
    ("fault", "code"), [(Fault.SLOWDOWN_503, "SlowDown"), (Fault.ERROR_500, "InternalError")]
)
async def test_persistent_server_errors_are_retried_then_reported(
    moto_url: str, bucket: str, fault: Fault, code: str
) -> None:
    proxy = FaultProxy(moto_url, {fault: 1.0})
    async with proxy as url, faulty_store(url, bucket, max_attempts=3) as store:
        with pytest.raises(StorageError) as caught:
            await store.save(session())
    error = caught.value
    assert (error.code, error.operation, error.bucket, error.key) == (
        code,
        "PutObject",
        bucket,
        KEY,
    )
    assert "after 3 attempt(s)" in str(error)
    assert bucket in str(error)
    assert KEY in str(error)
    assert proxy.requests == 3


async def test_transient_server_errors_are_retried_away(
    moto_url: str, bucket: str, direct: S3SessionStore
) -> None:
    script = [Fault.SLOWDOWN_503, Fault.ERROR_500, None, Fault.SLOWDOWN_503, None]
    async with FaultProxy(moto_url, {}, script=script) as url, faulty_store(url, bucket) as store:
        await store.save(session())
        assert await store.load(SessionId(1)) == session()
    assert await direct.load(SessionId(1)) == session()


async def test_a_racing_conditional_write_409_is_a_conflict(moto_url: str, bucket: str) -> None:
    async with (
        FaultProxy(moto_url, {}, script=[Fault.CONFLICT_409]) as url,
        faulty_store(url, bucket) as store,
    ):
        with pytest.raises(SessionConflictError) as caught:
            await store.save(session())
    assert caught.value.key == KEY
    assert bucket in str(caught.value)


@pytest.mark.parametrize("existing", [False, True], ids=["create", "replace"])
async def test_a_save_whose_answer_was_lost_is_recognised_on_retry(
    moto_url: str, bucket: str, direct: S3SessionStore, existing: bool
) -> None:
    # The PUT lands, the connection drops before its answer, and botocore's retry
    # meets our own write: 412. The store must find its bytes there and succeed.
    if existing:
        await direct.save(session(text="first"))
    # With a session to replace, a fault-free GET comes before the PUT.
    script = [None, Fault.RESET_AFTER] if existing else [Fault.RESET_AFTER]
    proxy = FaultProxy(moto_url, {}, script=script)
    async with proxy as url, faulty_store(url, bucket) as store:
        target = await store.load(SessionId(1)) if existing else session(text="first")
        assert target is not None
        target.chat_messages.append(UserMessage(content="second"))
        await store.save(target)
        target.chat_messages.append(UserMessage(content="third"))
        await store.save(target)  # the version it carries is the one S3 holds
    assert proxy.injected[Fault.RESET_AFTER] == 1
    assert await direct.load(SessionId(1)) == target


async def test_a_truncated_body_is_read_again(
    moto_url: str, bucket: str, direct: S3SessionStore
) -> None:
    await direct.save(session())
    async with (
        FaultProxy(moto_url, {}, script=[Fault.TRUNCATE, Fault.ALTER]) as url,
        faulty_store(url, bucket) as store,
    ):
        assert await store.load(SessionId(1)) == session()


@pytest.mark.parametrize("fault", [Fault.TRUNCATE, Fault.ALTER])
async def test_a_body_damaged_every_time_never_becomes_a_session(
    moto_url: str, bucket: str, direct: S3SessionStore, fault: Fault
) -> None:
    await direct.save(session(text="x" * 5000))
    async with (
        FaultProxy(moto_url, {fault: 1.0}) as url,
        faulty_store(url, bucket, max_attempts=2) as store,
    ):
        with pytest.raises(CorruptSessionError) as caught:
            await store.load(SessionId(1))
    assert (caught.value.bucket, caught.value.key) == (bucket, KEY)
    assert "2 reads" in str(caught.value)
    assert await direct.load(SessionId(1)) == session(text="x" * 5000)  # untouched


async def test_stalls_past_the_read_timeout_give_a_storage_error(
    moto_url: str, bucket: str
) -> None:
    async with (
        FaultProxy(moto_url, {Fault.STALL: 1.0}, stall=1.0) as url,
        faulty_store(url, bucket, max_attempts=2) as store,
    ):
        with pytest.raises(StorageError) as caught:
            await store.load(SessionId(1))
    assert "after up to 2 attempts" in str(caught.value)
    assert (caught.value.bucket, caught.value.key) == (bucket, KEY)


async def test_a_cancelled_save_leaves_the_old_or_the_new_snapshot(
    moto_url: str, bucket: str, s3: S3Client, direct: S3SessionStore
) -> None:
    old = session(text="old")
    await direct.save(old)
    old_body = await (await s3.get_object(Bucket=bucket, Key=KEY))["Body"].read()
    new = session(text="n" * 200_000)
    new_body = new.model_dump_json().encode()
    outcomes: Counter[str] = Counter()
    # Every request waits 20 ms in the proxy: cancel before, during and after it.
    async with (
        FaultProxy(moto_url, {Fault.LATENCY: 1.0}, latency=0.02) as url,
        faulty_store(url, bucket, concurrency="last-writer-wins") as store,
    ):
        for step in range(24):
            await s3.put_object(Bucket=bucket, Key=KEY, Body=old_body)
            save = asyncio.create_task(store.save(new))
            await asyncio.sleep(step * 0.002)
            save.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await save
            await asyncio.sleep(0.05)  # let a request already on its way land
            stored = await (await s3.get_object(Bucket=bucket, Key=KEY))["Body"].read()
            assert stored in (old_body, new_body)
            outcomes["new" if stored == new_body else "old"] += 1
        await store.save(new)  # the store still works after all those cancellations
    assert outcomes["old"] > 0
    assert await direct.load(SessionId(1)) == new


MIXED_RATES = {
    Fault.ERROR_500: 0.03,
    Fault.SLOWDOWN_503: 0.03,
    Fault.RESET_BEFORE: 0.03,
    Fault.RESET_AFTER: 0.03,
    Fault.TRUNCATE: 0.03,
    Fault.LATENCY: 0.03,
    Fault.STALL: 0.02,
}


class Model:
    """What the bucket may hold for each session, from what the store acknowledged.

    After a failed write the outcome is unknown: either state is allowed until a
    successful load tells which one S3 kept.
    """

    def __init__(self) -> None:
        self.allowed: dict[SessionId, set[bytes | None]] = {}

    def acknowledged(self, session_id: SessionId, state: bytes | None) -> None:
        self.allowed[session_id] = {state}

    def unknown(self, session_id: SessionId, *attempted: bytes | None) -> None:
        self.allowed.setdefault(session_id, {None}).update(attempted)


async def test_a_mixed_workload_through_20_percent_faults_loses_nothing(
    moto_url: str, bucket: str, s3: S3Client, capsys: pytest.CaptureFixture[str]
) -> None:
    model = Model()
    operations: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    ids = [SessionId(number, f"user-{number}") for number in range(24)]
    for session_id in ids:
        model.acknowledged(session_id, None)

    def encode(value: AgentSession) -> bytes:
        return value.model_dump_json().encode()

    async def worker(store: S3SessionStore, mine: list[SessionId], seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(30):
            session_id = rng.choice(mine)
            kind = rng.choice(["save", "update", "update", "load", "load", "list", "delete"])
            operations[kind] += 1
            attempted: list[bytes] = []
            try:
                if kind == "save":  # a plain save of a fresh copy, as a first turn does
                    fresh = AgentSession(id=session_id, chat_messages=[UserMessage(content="new")])
                    attempted.append(encode(fresh))
                    existing = await store.load(session_id)
                    if existing is None:
                        await store.save(fresh)
                        model.acknowledged(session_id, encode(fresh))
                elif kind == "update":

                    def turn(
                        current: AgentSession | None,
                        sid: SessionId = session_id,
                        log: list[bytes] = attempted,
                    ) -> AgentSession:
                        current = current or AgentSession(id=sid)
                        current.chat_messages.append(UserMessage(content=f"t{rng.random()}"))
                        log.append(encode(current))
                        return current

                    saved = await store.update(session_id, turn, attempts=4)
                    model.acknowledged(session_id, encode(saved))
                elif kind == "load":
                    loaded = await store.load(session_id)
                    state = None if loaded is None else encode(loaded)
                    assert state in model.allowed[session_id], (
                        f"load of {session_id} invented state"
                    )
                    model.acknowledged(session_id, state)
                elif kind == "list":
                    listed = set(await store.list())
                    for other in mine:  # others' writes may be in flight right now
                        if model.allowed[other] == {None}:
                            assert other not in listed
                        elif None not in model.allowed[other]:
                            assert other in listed
                else:
                    await store.delete(session_id)
                    model.acknowledged(session_id, None)
            except SessionStoreError as exc:
                errors[type(exc).__name__] += 1
                if kind in ("save", "update"):
                    model.unknown(session_id, *attempted)
                elif kind == "delete":
                    model.unknown(session_id, None)

    proxy = FaultProxy(moto_url, MIXED_RATES, stall=1.0, seed=20)
    async with proxy as url, faulty_store(url, bucket) as store:
        await asyncio.gather(*(worker(store, ids[w::6], seed=w) for w in range(6)))

    lost = corrupted = applied_twice = 0
    listing = await s3.list_objects_v2(Bucket=bucket, Prefix="sessions/")
    stored: dict[str, bytes] = {}
    for item in listing.get("Contents", []):
        body = await (await s3.get_object(Bucket=bucket, Key=item["Key"]))["Body"].read()
        try:
            parsed = AgentSession.model_validate_json(body)
        except ValueError:
            corrupted += 1
        else:  # each update's message is unique: twice means one change applied twice
            turns = Counter(m.content for m in parsed.chat_messages if m.content != "new")  # type: ignore[union-attr]
            applied_twice += sum(1 for count in turns.values() if count > 1)
        stored[item["Key"]] = body
    for session_id in ids:
        key = f"sessions/{session_id.id}(user-{session_id.id}).json"
        if stored.get(key) not in model.allowed[session_id]:
            lost += 1
    figures = {
        "operations": sum(operations.values()),
        "by_kind": dict(operations),
        "requests": proxy.requests,
        "faults": {fault.value: count for fault, count in proxy.injected.items() if count},
        "errors_surfaced": dict(errors),
        "lost": lost,
        "corrupted": corrupted,
        "applied_twice": applied_twice,
    }
    with capsys.disabled():
        print(f"\nfault run: {json.dumps(figures)}")
    assert sum(proxy.injected.values()) >= 0.15 * proxy.requests  # the faults were real
    assert (lost, corrupted, applied_twice) == (0, 0, 0)
