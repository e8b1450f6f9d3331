"""Checksums end to end: a body damaged on its way to S3 is refused by S3, and nothing is stored.

The store sends each PUT with the SHA-256 of the body it means to store; the fault
proxy flips one bit of the body on the way, after the checksum was computed. A
server that verifies checksums refuses it (LocalStack, AWS); moto stores it, and
the store's own check on load is then what refuses it.
"""

from __future__ import annotations

import pytest

from s3store import (
    AgentSession,
    CorruptSessionError,
    S3SessionStore,
    SessionId,
    SessionStoreError,
    UserMessage,
)
from tests.conftest import REGION, SERVER
from tests.faultproxy import Fault, FaultProxy

SID = SessionId(1)
SESSION = AgentSession(id=SID, chat_messages=[UserMessage(content="x" * 2000)])


async def save_through_a_damaging_proxy(url: str, bucket: str) -> FaultProxy:
    proxy = FaultProxy(url, {Fault.ALTER_REQUEST: 1.0}, methods={"PUT"})
    async with (
        proxy as proxied,
        S3SessionStore(bucket, endpoint_url=proxied, region_name=REGION) as store,
    ):
        await store.save(SESSION)
    return proxy


@pytest.mark.xfail(
    SERVER == "moto",
    raises=pytest.fail.Exception,
    strict=True,
    reason="moto does not verify checksums: a PUT whose body does not match its "
    "x-amz-checksum-sha256 is stored, with the wrong checksum (LocalStack refuses it)",
)
async def test_a_body_altered_in_flight_is_refused_and_nothing_is_stored(
    moto_url: str, bucket: str
) -> None:
    with pytest.raises(SessionStoreError) as caught:
        await save_through_a_damaging_proxy(moto_url, bucket)
    assert "BadDigest" in str(caught.value)  # the checksum's error, not the signature's
    assert bucket in str(caught.value)
    async with S3SessionStore(bucket, endpoint_url=moto_url, region_name=REGION) as direct:
        assert await direct.load(SID) is None


@pytest.mark.skipif(
    SERVER != "moto",
    reason=f"{SERVER} refuses the damaged PUT (the test above): there is nothing to load",
)
async def test_a_damaged_body_a_server_stored_anyway_is_refused_on_load(
    moto_url: str, bucket: str
) -> None:
    proxy = await save_through_a_damaging_proxy(moto_url, bucket)
    assert proxy.injected[Fault.ALTER_REQUEST] == 1
    async with S3SessionStore(bucket, endpoint_url=moto_url, region_name=REGION) as direct:
        with pytest.raises(CorruptSessionError) as caught:
            await direct.load(SID)
    assert bucket in str(caught.value)
    assert "1.json" in str(caught.value)
