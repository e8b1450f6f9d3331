"""`S3SessionStore`'s safety options and its answers to bad input."""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import aioboto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3store import (
    AgentSession,
    ConfigurationError,
    CorruptSessionError,
    InMemorySessionStore,
    InvalidSessionIdError,
    S3SessionStore,
    SessionId,
    SessionTooLargeError,
    UserMessage,
)
from tests.conftest import REGION
from tests.faultproxy import FaultProxy

if TYPE_CHECKING:
    from botocore.awsrequest import AWSPreparedRequest
    from types_aiobotocore_s3 import S3Client

KEY = "sessions/1.json"


def big_session(characters: int) -> AgentSession:
    return AgentSession(id=SessionId(1), chat_messages=[UserMessage(content="x" * characters)])


async def test_saves_carry_a_sha256_checksum_that_s3_keeps(
    s3_store: S3SessionStore, s3: S3Client, bucket: str
) -> None:
    session = big_session(100)
    await s3_store.save(session)
    head = await s3.head_object(Bucket=bucket, Key=KEY, ChecksumMode="ENABLED")
    expected = base64.b64encode(hashlib.sha256(session.model_dump_json().encode()).digest())
    assert head["ChecksumSHA256"] == expected.decode()


@pytest.mark.parametrize("kind", ["memory", "s3"])
async def test_a_session_over_the_limit_is_refused_before_any_request(
    moto_url: str, bucket: str, kind: str
) -> None:
    proxy = FaultProxy(moto_url, {})
    async with proxy as url:
        store: InMemorySessionStore | S3SessionStore = (
            InMemorySessionStore(max_session_bytes=1000)
            if kind == "memory"
            else S3SessionStore(bucket, endpoint_url=url, max_session_bytes=1000)
        )
        async with _open(store):
            await store.save(big_session(500))
            requests_before = proxy.requests
            with pytest.raises(SessionTooLargeError) as caught:
                await store.save(big_session(2000))
            assert proxy.requests == requests_before
            loaded = await store.load(SessionId(1))
    assert loaded == big_session(500)  # the stored snapshot is untouched
    assert caught.value.key == KEY
    assert "max_session_bytes" in str(caught.value)
    if kind == "s3":
        assert bucket in str(caught.value)


async def test_an_object_over_the_limit_is_not_read(
    moto_url: str, bucket: str, s3: S3Client
) -> None:
    await s3.put_object(Bucket=bucket, Key=KEY, Body=b" " * 5000)
    async with S3SessionStore(bucket, endpoint_url=moto_url, max_session_bytes=1000) as store:
        with pytest.raises(SessionTooLargeError, match="5,000 bytes") as caught:
            await store.load(SessionId(1))
        assert (caught.value.bucket, caught.value.key) == (bucket, KEY)
        assert await store.list() == [SessionId(1)]


async def test_a_multi_megabyte_blob_is_corrupt_and_listing_goes_on(
    s3_store: S3SessionStore, s3: S3Client, bucket: str
) -> None:
    blob = os.urandom(3 * 1024 * 1024)
    await s3.put_object(Bucket=bucket, Key=KEY, Body=blob)
    await s3_store.save(AgentSession(id=SessionId(2)))
    with pytest.raises(CorruptSessionError) as caught:
        await s3_store.load(SessionId(1))
    assert caught.value.raw == blob
    assert await s3_store.list() == [SessionId(1), SessionId(2)]
    assert await s3_store.load(SessionId(2)) == AgentSession(id=SessionId(2))


async def test_gzip_above_a_threshold_is_stored_encoded_and_read_transparently(
    moto_url: str, bucket: str, s3: S3Client
) -> None:
    small, large = AgentSession(id=SessionId(2)), big_session(50_000)
    async with S3SessionStore(bucket, endpoint_url=moto_url, gzip_above_bytes=4096) as store:
        await store.save(small)
        await store.save(large)
        assert await store.load(SessionId(1)) == large
        large.chat_messages.append(UserMessage(content="more"))
        await store.save(large)  # conditional writes work on compressed objects too
    raw = await s3.get_object(Bucket=bucket, Key=KEY)
    body = await raw["Body"].read()
    assert raw["ContentEncoding"] == "gzip"
    assert len(body) < 5_000
    assert gzip.decompress(body) == large.model_dump_json().encode()
    plain = await s3.get_object(Bucket=bucket, Key="sessions/2.json")
    assert "ContentEncoding" not in plain
    async with S3SessionStore(bucket, endpoint_url=moto_url) as reader:  # gzip off: still reads
        assert await reader.load(SessionId(1)) == large


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"not gzip at all", CorruptSessionError),
        (gzip.compress(b'{"id": {"id": 1}}')[:-10], CorruptSessionError),
        (gzip.compress(b" " * 3_000_000), SessionTooLargeError),  # a small bomb
    ],
    ids=["garbage", "truncated", "bomb"],
)
async def test_bad_gzip_objects_raise_typed_errors(
    s3_store: S3SessionStore, s3: S3Client, bucket: str, body: bytes, error: type[Exception]
) -> None:
    await s3.put_object(Bucket=bucket, Key=KEY, Body=body, ContentEncoding="gzip")
    s3_store.max_session_bytes = 1_000_000
    with pytest.raises(error) as caught:
        await s3_store.load(SessionId(1))
    assert bucket in str(caught.value)
    assert KEY in str(caught.value)


async def test_sse_kms_is_sent_on_every_put(moto_url: str, bucket: str, s3: S3Client) -> None:
    async with aioboto3.Session().client("kms", endpoint_url=moto_url) as kms:
        key_id = (await kms.create_key())["KeyMetadata"]["KeyId"]
    async with S3SessionStore(bucket, endpoint_url=moto_url, kms_key_id=key_id) as store:
        await store.save(AgentSession(id=SessionId(1)))
        assert await store.load(SessionId(1)) == AgentSession(id=SessionId(1))
    head = await s3.head_object(Bucket=bucket, Key=KEY)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith(key_id)
    assert head["BucketKeyEnabled"] is True


def test_from_env_reads_the_kms_key() -> None:
    store = S3SessionStore.from_env({"S3STORE_BUCKET": "bucket-1", "S3STORE_KMS_KEY_ID": "k-1"})
    assert store.s3._encryption["SSEKMSKeyId"] == "k-1"


async def test_expected_bucket_owner_is_sent_on_every_request(moto_url: str, bucket: str) -> None:
    # moto ignores the header, so the requests themselves are looked at.
    session = aioboto3.Session()
    sent: list[tuple[str, str | None]] = []

    def record(request: AWSPreparedRequest, event_name: str, **_: object) -> None:
        owner = request.headers.get("x-amz-expected-bucket-owner")
        text = owner.decode() if isinstance(owner, bytes) else owner
        sent.append((event_name.rsplit(".", 1)[-1], text))

    session.events.register("before-send.s3", record)
    owner = "123456789012"
    async with S3SessionStore(
        bucket, session=session, endpoint_url=moto_url, expected_bucket_owner=owner
    ) as store:
        await store.save(AgentSession(id=SessionId(1)))
        await store.load(SessionId(1))
        await store.update(SessionId(1), lambda s: s or AgentSession(id=SessionId(1)))
        await store.list()
        await store.stat(SessionId(1))
        await store.purge(SessionId(1))
        await store.delete(SessionId(1))
    operations = {name for name, _ in sent}
    assert {"PutObject", "GetObject", "ListObjectsV2", "HeadObject", "DeleteObject"} <= operations
    assert {"ListObjectVersions", "DeleteObjects"} <= operations
    assert all(value == owner for _, value in sent), sent


def test_an_invalid_expected_owner_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="12-digit"):
        S3SessionStore("bucket-1", expected_bucket_owner="me")


@pytest.mark.parametrize(
    "name", ["", "ab", "Upper", "under_score", "-start", "end-", "a..b", "x" * 64, "sp ace"]
)
def test_an_invalid_bucket_name_is_refused_at_construction(name: str) -> None:
    with pytest.raises(ConfigurationError, match="not a valid S3 bucket name"):
        S3SessionStore(name)


@pytest.fixture
def no_credentials() -> Iterator[None]:
    saved = dict(os.environ)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        os.environ.pop(name, None)
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"  # no instance role to find either
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.mark.usefixtures("no_credentials")
async def test_missing_credentials_are_reported_at_open(moto_url: str, bucket: str) -> None:
    store = S3SessionStore(bucket, endpoint_url=moto_url, region_name=REGION)
    with pytest.raises(ConfigurationError, match="AWS_PROFILE") as caught:
        await store.open()
    assert bucket in str(caught.value)


hostile_text = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    st.text(alphabet=st.characters(categories=["Cc", "Cs", "Zs", "Cf"]), max_size=20),
    st.text(min_size=1500, max_size=2100),
    st.sampled_from(["\ud800", "a\udfffb", "\x00", "../../etc", "%00", "\u202e"]),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    number=st.one_of(st.integers(), st.integers(min_value=2**63, max_value=2**70)),
    external_id=st.none() | hostile_text,
)
async def test_hostile_session_ids_round_trip_or_are_refused_clearly(
    s3_store: S3SessionStore, s3: S3Client, bucket: str, number: int, external_id: str | None
) -> None:
    refusal: InvalidSessionIdError | None = None
    try:
        session_id = SessionId(number, external_id)
        await s3_store.save(AgentSession(id=session_id))
    except InvalidSessionIdError as exc:
        refusal = exc
    if refusal is not None:
        assert "id" in str(refusal)  # a clear refusal, and nothing was written
        listing = await s3.list_objects_v2(Bucket=bucket)
        assert listing.get("KeyCount", 0) == 0
        return
    loaded = await s3_store.load(session_id)
    assert loaded is not None
    assert loaded.id == session_id
    assert await s3_store.list() == [session_id]
    listing = await s3.list_objects_v2(Bucket=bucket)
    assert [item["Key"].startswith("sessions/") for item in listing["Contents"]] == [True]
    await s3_store.delete(session_id)


class _open:
    """`async with` for a store that may or may not need opening."""

    def __init__(self, store: InMemorySessionStore | S3SessionStore) -> None:
        self.store = store

    async def __aenter__(self) -> None:
        if isinstance(self.store, S3SessionStore):
            await self.store.open()

    async def __aexit__(self, *exc: object) -> None:
        if isinstance(self.store, S3SessionStore):
            await self.store.close()
