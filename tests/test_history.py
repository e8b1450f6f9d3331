"""Snapshot history in a versioned bucket: list, read and restore versions; purge erases all."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from s3store import (
    AgentSession,
    ConfigurationError,
    S3SessionStore,
    SessionConflictError,
    SessionId,
    UserMessage,
)
from s3store.events import TextDelta

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

SID = SessionId(3, "carol")


@pytest.fixture
async def versioned(s3: S3Client, bucket: str) -> str:
    await s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return bucket


def turns(count: int) -> AgentSession:
    messages = [UserMessage(content=f"turn {number}") for number in range(count)]
    return AgentSession(id=SID, chat_messages=list(messages))


async def save_three(store: S3SessionStore) -> None:
    for count in (1, 2, 3):
        session = await store.load(SID) or AgentSession(id=SID)
        session.chat_messages = turns(count).chat_messages
        await store.save(session)


async def test_history_lists_every_version_newest_first(
    versioned: str, s3_store: S3SessionStore
) -> None:
    await save_three(s3_store)
    history = await s3_store.history(SID)
    assert [version.size for version in history] == sorted(
        (version.size for version in history), reverse=True
    )
    assert [version.is_latest for version in history] == [True, False, False]
    oldest = await s3_store.load(SID, version_id=history[-1].version_id)
    assert oldest == turns(1)


async def test_a_session_saved_three_times_is_restored_to_its_first_version(
    versioned: str, s3_store: S3SessionStore
) -> None:
    await save_three(s3_store)
    first = (await s3_store.history(SID))[-1]
    restored = await s3_store.restore(SID, first.version_id)
    assert restored == turns(1)
    assert await s3_store.load(SID) == turns(1)
    assert len(await s3_store.history(SID)) == 4  # a new version; the others stay


async def test_a_version_read_from_history_never_saves_over_newer_changes(
    versioned: str, s3_store: S3SessionStore, moto_url: str
) -> None:
    await save_three(s3_store)
    first = (await s3_store.history(SID))[-1]
    old = await s3_store.load(SID, version_id=first.version_id)
    assert old is not None
    async with S3SessionStore(versioned, endpoint_url=moto_url) as other:
        await other.update(SID, lambda session: session or AgentSession(id=SID))
        current = await other.load(SID)
        assert current is not None
        current.total_tool_calls = 9
        await other.save(current)
    with pytest.raises(SessionConflictError):
        await s3_store.save(old)  # a version read from history saves over nothing newer
    assert (await s3_store.load(SID)).total_tool_calls == 9  # type: ignore[union-attr]


async def test_history_in_an_unversioned_bucket_says_so(s3_store: S3SessionStore) -> None:
    await s3_store.save(AgentSession(id=SID))
    with pytest.raises(ConfigurationError, match="versioning"):
        await s3_store.history(SID)


async def test_purge_leaves_no_object_version_or_marker_of_the_session_or_its_events(
    versioned: str, s3_store: S3SessionStore, s3: S3Client
) -> None:
    await save_three(s3_store)
    for number in range(3):
        await s3_store.append_event(SID, TextDelta(session_id=SID, text=str(number)))
    await s3_store.delete(SID)  # a delete marker too
    await s3_store.save(AgentSession(id=SessionId(30)))  # shares the prefix "3": untouched

    purged = await s3_store.purge(SID)

    assert (purged.versions, purged.delete_markers, purged.events) == (3, 1, 3)
    listing = await s3.list_object_versions(Bucket=versioned)
    left = [
        item["Key"] for item in (*listing.get("Versions", ()), *listing.get("DeleteMarkers", ()))
    ]
    assert left == ["sessions/30.json"]
