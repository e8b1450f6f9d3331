"""Listing at scale: iter_ids/iter_info page as they are consumed, `ls --limit`,
`stats` and `export --after` send only the requests they need, and an export's
memory stays flat however many sessions there are.

The 5,000 sessions are written into moto's own backend, which runs in this process:
5,000 PUTs over HTTP take some 40 s on a loaded two-core machine, this a second.
"""

from __future__ import annotations

import asyncio
import io
import json
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner, Result

from s3store import (
    AgentSession,
    InMemorySessionStore,
    S3SessionStore,
    SessionId,
    SessionStore,
    UserMessage,
)
from s3store.cli import cli
from s3store.events import TextDelta
from s3store.keys import key_name, session_key
from s3store.operations import export_sessions
from tests.conftest import REGION
from tests.faultproxy import FaultProxy

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

SESSIONS = 5000
LARGEST = SessionId(4242, "largest")
SEEDS_MOTO = pytest.mark.moto_only("the sessions are written into moto's backend directly")


@dataclass(frozen=True)
class Sessions:
    """`SESSIONS` sessions: their ids in key order and their bytes."""

    ids: list[SessionId]
    bodies: dict[SessionId, bytes]


def session_body(session_id: SessionId) -> bytes:
    session = AgentSession(id=session_id)
    if session_id == LARGEST:
        session.chat_messages.append(UserMessage(content="x" * 2000))
    return session.model_dump_json().encode()


@pytest.fixture(scope="module")
def sessions() -> Sessions:
    ids = [SessionId(number) for number in range(SESSIONS) if number != LARGEST.id] + [LARGEST]
    ids.sort(key=lambda session_id: session_key("sessions/", session_id))
    return Sessions(ids, {session_id: session_body(session_id) for session_id in ids})


def seed_moto(bucket: str, objects: Iterable[tuple[str, bytes]]) -> None:
    """Store objects in the suite's moto server without a request (setup only)."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for key, body in objects:
        backend.put_object(bucket, key, body)


@pytest.fixture(scope="module")
async def seeded(s3: S3Client, sessions: Sessions) -> str:
    """A bucket holding the sessions (only tests marked SEEDS_MOTO may use it)."""
    bucket = f"test-{uuid.uuid4().hex[:20]}"
    await s3.create_bucket(Bucket=bucket)
    seed_moto(bucket, ((session_key("sessions/", i), body) for i, body in sessions.bodies.items()))
    return bucket


@pytest.fixture(scope="module")
async def memory_store(sessions: Sessions) -> InMemorySessionStore:
    memory = InMemorySessionStore()
    for session_id, body in sessions.bodies.items():
        await memory.objects.write(memory.name(session_id), body, base=None)
    return memory


@pytest.fixture(scope="module")
async def seeded_store(seeded: str, moto_url: str) -> AsyncIterator[S3SessionStore]:
    async with S3SessionStore(seeded, endpoint_url=moto_url, region_name=REGION) as store:
        yield store


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("memory_store", id="memory"),
        pytest.param("seeded_store", id="s3", marks=SEEDS_MOTO),
    ],
)
def big_store(request: pytest.FixtureRequest) -> SessionStore:
    """The sessions, in memory or in the seeded bucket."""
    store: SessionStore = request.getfixturevalue(request.param)
    return store


@asynccontextmanager
async def list_requests(store: SessionStore) -> AsyncIterator[list[str]]:
    """The ListObjectsV2 requests an S3 store sends in the block (none in memory)."""
    sent: list[str] = []
    if not isinstance(store, S3SessionStore):
        yield sent
        return
    client = await store.s3.client()

    def count(params: dict[str, Any], **_: Any) -> None:
        sent.append(params.get("StartAfter") or params.get("ContinuationToken") or "")

    client.meta.events.register("before-call.s3.ListObjectsV2", count)
    try:
        yield sent
    finally:
        client.meta.events.unregister("before-call.s3.ListObjectsV2", count)


def expect_requests(store: SessionStore, sent: list[str], count: int) -> None:
    if isinstance(store, S3SessionStore):
        assert len(sent) == count, sent


# -- the library -----------------------------------------------------------------------


async def test_list_is_iter_ids_collected(big_store: SessionStore, sessions: Sessions) -> None:
    async with list_requests(big_store) as sent:
        iterated = [session_id async for session_id in big_store.iter_ids()]
    expect_requests(big_store, sent, 5)
    assert iterated == sessions.ids
    assert await big_store.list() == iterated


async def test_iter_ids_after_an_id_gives_the_next_ones_in_one_request(
    big_store: SessionStore, sessions: Sessions
) -> None:
    middle = sessions.ids.index(SessionId(1234))
    async with list_requests(big_store) as sent:
        following = [i async for i in big_store.iter_ids(after=SessionId(1234), limit=3)]
    expect_requests(big_store, sent, 1)
    assert following == sessions.ids[middle + 1 : middle + 4]
    async with list_requests(big_store) as sent:
        assert [i async for i in big_store.iter_ids(after=sessions.ids[-2], limit=3)] == [
            sessions.ids[-1]
        ]
        assert [i async for i in big_store.iter_ids(after=sessions.ids[-1])] == []
        assert [i async for i in big_store.iter_ids(limit=0)] == []
    expect_requests(big_store, sent, 2)  # limit=0 asks nothing


async def test_iter_info_fetches_a_page_only_when_it_is_reached(
    big_store: SessionStore, sessions: Sessions
) -> None:
    listed: list[SessionId] = []
    async with list_requests(big_store) as sent:
        async for info in big_store.iter_info():
            listed.append(info.session_id)
            if len(listed) == 1000:
                expect_requests(big_store, sent, 1)
            if len(listed) == 1001:
                break
    expect_requests(big_store, sent, 2)
    assert listed == sessions.ids[:1001]


async def test_iter_info_skips_foreign_objects_and_event_folders_and_fills_its_limit(
    store: SessionStore,
) -> None:
    ids = [SessionId(number) for number in range(1, 6)]
    for session_id in ids:
        await store.save(AgentSession(id=session_id))
    for session_id in ids[:2]:  # 1/events/ and 2/events/: folders among the sessions
        await store.append_event(session_id, TextDelta(session_id=session_id, text="x"))
    for name in ("1-notes.json", "2.json.bak", "README.md"):  # before, between and after
        await store.objects.write(name, b"not a session", base=None)

    first = [info async for info in store.iter_info(limit=3)]
    assert [info.session_id for info in first] == ids[:3]
    assert [info.key for info in first] == [store.objects.key(store.name(i)) for i in ids[:3]]
    assert [i async for i in store.iter_ids(after=ids[0], limit=2)] == ids[1:3]
    assert [i async for i in store.iter_ids(after=ids[1], limit=1)] == ids[2:3]
    assert [i async for i in store.iter_ids(limit=10)] == ids
    assert await store.list() == ids


# -- the command line ------------------------------------------------------------------


async def invoke(*args: str, env: dict[str, str | None]) -> Result:
    """Run the command in a thread: it calls asyncio.run(), which needs a thread with no loop."""
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env)


def environment(url: str, bucket: str) -> dict[str, str | None]:
    return {"S3STORE_BUCKET": bucket, "AWS_ENDPOINT_URL": url, "S3STORE_PREFIX": None}


@SEEDS_MOTO
async def test_ls_with_a_limit_lists_no_further_than_it(
    moto_url: str, seeded: str, sessions: Sessions
) -> None:
    requests = []
    for limit in (10, 1001):
        proxy = FaultProxy(moto_url, {})
        async with proxy as url:
            result = await invoke("ls", "--limit", str(limit), env=environment(url, seeded))
        assert result.exit_code == 0, result.output
        requests.append(dict(proxy.by_method))
        rows = [line.split("\t")[0] for line in result.stdout.splitlines()]
        assert rows == [key_name(session_id) for session_id in sessions.ids[:limit]]
        assert f"--after {rows[-1]}" in result.stderr
    assert requests == [{"GET": 1}, {"GET": 2}]  # ListObjectsV2 and nothing else


@SEEDS_MOTO
async def test_stats_counts_every_session_from_the_listing_alone(
    moto_url: str, seeded: str, sessions: Sessions
) -> None:
    proxy = FaultProxy(moto_url, {})
    async with proxy as url:
        result = await invoke("stats", "--json", env=environment(url, seeded))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "location": f"s3://{seeded}/sessions/",
        "sessions": SESSIONS,
        "total_bytes": sum(len(body) for body in sessions.bodies.values()),
        "largest": {"id": key_name(LARGEST), "size": len(sessions.bodies[LARGEST])},
    }
    assert dict(proxy.by_method) == {"GET": SESSIONS // 1000}  # one ListObjectsV2 a page


@SEEDS_MOTO
async def test_export_after_an_id_holds_exactly_the_sessions_after_it(
    moto_url: str, seeded: str, sessions: Sessions, tmp_path: Path
) -> None:
    after, rest = sessions.ids[-11], sessions.ids[-10:]
    out = tmp_path / "rest.jsonl"
    proxy = FaultProxy(moto_url, {})
    async with proxy as url:
        result = await invoke(
            "export",
            "--json",
            "--after",
            key_name(after),
            str(out),
            env=environment(url, seeded),
        )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sessions"] == 10
    assert out.read_bytes() == b"".join(sessions.bodies[session_id] + b"\n" for session_id in rest)
    assert dict(proxy.by_method) == {"GET": 1 + 10}  # one listing, one read per session


# -- memory ----------------------------------------------------------------------------


class Discard(io.BytesIO):
    """A file that keeps nothing written to it."""

    def write(self, data: Any) -> int:
        return len(data)


async def export_peak(sessions: int) -> int:
    """The peak of memory allocated while exporting `sessions` sessions to a null sink."""
    store = InMemorySessionStore()
    for number in range(sessions):
        session_id = SessionId(number)
        await store.objects.write(store.name(session_id), session_body(session_id), base=None)
    tracemalloc.start()
    try:
        # export_sessions() is annotated for S3 stores, but needs only a SessionStore.
        result = await export_sessions(store, Discard(), concurrency=16)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.sessions == sessions
    return peak


async def test_an_export_takes_no_more_memory_for_ten_times_the_sessions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # What an export holds is its window of reads in flight and one listing page,
    # however many sessions there are. In memory, so that the server's allocations
    # (moto runs in this process) do not count, and 20,000 reads take seconds, not
    # minutes; benchmarks/cases/listing_scale.py measures the same over HTTP.
    small, large = await export_peak(2_000), await export_peak(20_000)
    with capsys.disabled():
        print(f"\nexport peak: {small:,} B for 2,000 sessions, {large:,} B for 20,000")
    assert large < 1.5 * small + 256 * 1024
