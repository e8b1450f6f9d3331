"""Each failure is labelled for what it is, and the attempt counts in messages are true."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest
from botocore.config import Config

from s3store import (
    AccessDeniedError,
    AgentSession,
    S3SessionStore,
    SessionId,
    StorageError,
)
from tests.conftest import REGION
from tests.faultproxy import Fault, FaultProxy

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

SID = SessionId(1)
FAST = Config(connect_timeout=0.5, read_timeout=0.5)


def store_at(url: str, bucket: str, **options: object) -> S3SessionStore:
    return S3SessionStore(bucket, endpoint_url=url, region_name=REGION, **options)  # type: ignore[arg-type]


async def test_a_skewed_clock_is_named_as_such_not_as_a_missing_permission(
    moto_url: str, bucket: str
) -> None:
    async with FaultProxy(moto_url, {Fault.SKEWED_403: 1.0}) as url, store_at(url, bucket) as store:
        with pytest.raises(StorageError) as caught:
            await store.load(SID)
    assert not isinstance(caught.value, AccessDeniedError)
    assert caught.value.code == "RequestTimeTooSkewed"
    assert "clock" in str(caught.value)
    assert "grant" not in str(caught.value)


async def test_unknown_keys_are_named_as_such(moto_url: str, bucket: str) -> None:
    proxy = FaultProxy(moto_url, {Fault.UNKNOWN_KEY_403: 1.0})
    async with proxy as url, store_at(url, bucket) as store:
        with pytest.raises(AccessDeniedError) as caught:
            await store.save(AgentSession(id=SID))
    assert "access key" in str(caught.value)
    assert "grant" not in str(caught.value)


@pytest.mark.parametrize(
    ("retries", "attempts"),
    [
        (None, 4),
        ({"max_attempts": 1}, 2),  # botocore's max_attempts counts retries
        ({"total_max_attempts": 3}, 3),
    ],
    ids=["default", "max_attempts", "total_max_attempts"],
)
async def test_a_users_retry_settings_keep_standard_mode_and_true_counts(
    moto_url: str, bucket: str, retries: dict[str, int] | None, attempts: int
) -> None:
    # A 502 is retried in standard mode and not in botocore's legacy mode, which a
    # user's Config(retries=...) used to fall back to.
    config = Config(retries=retries) if retries else None  # type: ignore[arg-type]
    proxy = FaultProxy(moto_url, {Fault.BAD_GATEWAY_502: 1.0})
    async with proxy as url, store_at(url, bucket, config=config) as store:
        with pytest.raises(StorageError) as caught:
            await store.load(SID)
    assert proxy.requests == attempts
    assert f"after {attempts} attempt(s)" in str(caught.value)


async def test_a_body_that_stalls_is_read_again(moto_url: str, bucket: str) -> None:
    async with store_at(moto_url, bucket) as direct:
        await direct.save(AgentSession(id=SID))
    proxy = FaultProxy(moto_url, {}, script=[Fault.STALL_BODY], methods={"GET"}, stall=1.0)
    async with proxy as url, store_at(url, bucket, config=FAST) as store:
        assert await store.load(SID) == AgentSession(id=SID)
    assert proxy.injected[Fault.STALL_BODY] == 1
    assert proxy.by_method["GET"] == 2


async def test_a_body_that_always_stalls_says_how_often_it_was_read(
    moto_url: str, bucket: str
) -> None:
    async with store_at(moto_url, bucket) as direct:
        await direct.save(AgentSession(id=SID))
    proxy = FaultProxy(moto_url, {Fault.STALL_BODY: 1.0}, methods={"GET"}, stall=1.0)
    async with proxy as url, store_at(url, bucket, config=FAST, max_attempts=2) as store:
        with pytest.raises(StorageError) as caught:
            await store.load(SID)
    assert proxy.by_method["GET"] == 2
    assert "timed out in each of 2 reads" in str(caught.value)
    assert caught.value.key == "sessions/1.json"


async def test_list_warns_of_foreign_objects_once_per_store(
    moto_url: str, bucket: str, s3: S3Client, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("notes.txt", "1.json.bak", "01.json"):
        await s3.put_object(Bucket=bucket, Key=f"sessions/{name}", Body=b"x")
    async with store_at(moto_url, bucket) as store:
        await store.save(AgentSession(id=SID))
        with caplog.at_level(logging.DEBUG, logger="s3store"):
            for _ in range(3):
                assert await store.list() == [SID]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG and "skipped" in r.message]
    assert len(warnings) == 1
    assert "sessions/" in warnings[0].message
    assert len(debug) == 3 * 3 - 1
