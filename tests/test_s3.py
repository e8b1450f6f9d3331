"""What only `S3SessionStore` does: its objects, the errors S3 gives, its client's life."""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING

import aioboto3
import pytest

from s3store import (
    AccessDeniedError,
    AgentSession,
    BucketNotFoundError,
    ConfigurationError,
    CorruptSessionError,
    S3SessionStore,
    SessionId,
    UserMessage,
)
from tests.conftest import REGION
from tests.test_models import GOLDEN

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


async def test_a_saved_session_is_plain_json_any_client_reads(
    s3_store: S3SessionStore, s3: S3Client, bucket: str
) -> None:
    session = AgentSession(id=SessionId(7, "a/b"), chat_messages=[UserMessage(content="hi")])
    await s3_store.save(session)
    raw = await s3.get_object(Bucket=bucket, Key="sessions/7(a%2Fb).json")
    assert raw["ContentType"] == "application/json"
    body = json.loads(await raw["Body"].read())
    assert body["id"] == {"id": 7, "external_id": "a/b"}
    assert body["chat_messages"] == [{"User": {"content": "hi"}}]


async def test_a_session_the_rust_runtime_wrote_loads(
    s3_store: S3SessionStore, s3: S3Client, bucket: str
) -> None:
    written = (GOLDEN / "current-session.json").read_bytes()  # as agent-base writes it
    key = "sessions/7(user-7).json"
    await s3.put_object(Bucket=bucket, Key=key, Body=written)
    session = await s3_store.load(SessionId(7, "user-7"))
    assert session is not None
    assert await s3_store.list() == [SessionId(7, "user-7")]
    session.chat_messages.append(UserMessage(content="from Python"))
    await s3_store.save(session)
    session.chat_messages.pop()
    await s3_store.save(session)
    body = await (await s3.get_object(Bucket=bucket, Key=key))["Body"].read()
    assert body == written  # what agent-base wrote, agent-base gets back


@pytest.mark.parametrize(
    "body",
    [b"", b"\xff\xfe garbage", b'{"some": "other json"}', b"[1, 2]", b'{"id": {"id": 8}}'],
    ids=["empty", "garbage", "other-json", "array", "another-session"],
)
async def test_a_corrupt_object_raises_and_is_left_in_place(
    s3_store: S3SessionStore, s3: S3Client, bucket: str, body: bytes
) -> None:
    await s3.put_object(Bucket=bucket, Key="sessions/7.json", Body=body)
    with pytest.raises(CorruptSessionError) as caught:
        await s3_store.load(SessionId(7))
    assert caught.value.raw == body
    assert caught.value.bucket == bucket
    assert caught.value.key == "sessions/7.json"
    assert bucket in str(caught.value)
    assert "sessions/7.json" in str(caught.value)
    assert await s3_store.list() == [SessionId(7)]  # still there, still listed


async def test_list_skips_and_logs_names_it_does_not_write(
    s3_store: S3SessionStore, s3: S3Client, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    await s3_store.save(AgentSession(id=SessionId(1)))
    for key in ["sessions/notes.txt", "sessions/01.json", "sessions/sub/2.json", "other/3.json"]:
        await s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
    with caplog.at_level(logging.DEBUG, logger="s3store"):  # the first as a warning
        assert await s3_store.list() == [SessionId(1)]
    skipped = " ".join(record.getMessage() for record in caplog.records)
    assert "sessions/notes.txt" in skipped
    assert "sessions/01.json" in skipped
    assert "sub/2.json" not in skipped  # a sub-folder is not looked into at all


async def test_the_bucket_root_can_hold_the_sessions(moto_url: str, bucket: str) -> None:
    async with S3SessionStore(bucket, prefix="", endpoint_url=moto_url) as store:
        await store.save(AgentSession(id=SessionId(3, "x")))
        assert await store.list() == [SessionId(3, "x")]
        assert await store.load(SessionId(3, "x")) is not None


async def test_a_missing_bucket_raises_bucket_not_found(moto_url: str) -> None:
    async with S3SessionStore("no-such-bucket-here", endpoint_url=moto_url) as store:
        for operation in (
            store.save(AgentSession(id=SessionId(1))),
            store.load(SessionId(1)),
            store.list(),
        ):
            with pytest.raises(BucketNotFoundError, match="no-such-bucket-here"):
                await operation


@contextmanager
def iam_enforced(moto_url: str) -> Iterator[None]:
    """moto checks every request's credentials and IAM policies while this is open."""

    def reset_auth(body: bytes) -> None:
        request = urllib.request.Request(
            f"{moto_url}/moto-api/reset-auth",
            data=body,
            headers={"Content-Type": "text/plain"},
            method="POST",
        )
        urllib.request.urlopen(request).close()

    reset_auth(b"0")
    try:
        yield
    finally:
        reset_auth(b"inf")


@asynccontextmanager
async def reader_credentials(
    moto_url: str, bucket: str, actions: tuple[str, ...] = ("s3:GetObject", "s3:ListBucket")
) -> AsyncIterator[aioboto3.Session]:
    """An IAM user that may only do `actions` (by default: read the bucket's objects)."""
    async with aioboto3.Session().client("iam", endpoint_url=moto_url) as iam:
        user = f"reader-{len(actions)}-{bucket}"
        await iam.create_user(UserName=user)
        await iam.put_user_policy(
            UserName=user,
            PolicyName="read-only",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": list(actions),
                            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                        }
                    ],
                }
            ),
        )
        key = (await iam.create_access_key(UserName=user))["AccessKey"]
    yield aioboto3.Session(
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        region_name=REGION,
    )


@pytest.mark.moto_only("IAM enforcement is a paid LocalStack feature")
async def test_a_denied_request_raises_access_denied(moto_url: str, bucket: str) -> None:
    async with reader_credentials(moto_url, bucket) as reader:
        with iam_enforced(moto_url):
            async with S3SessionStore(bucket, session=reader, endpoint_url=moto_url) as store:
                assert await store.load(SessionId(1)) is None  # reading is allowed
                with pytest.raises(AccessDeniedError) as caught:
                    await store.save(AgentSession(id=SessionId(1)))
    assert caught.value.key == "sessions/1.json"
    assert bucket in str(caught.value)
    assert "PutObject" in str(caught.value)


@pytest.mark.moto_only("IAM enforcement is a paid LocalStack feature")
async def test_purge_without_the_right_to_erase_raises_access_denied(
    s3_store: S3SessionStore, s3: S3Client, moto_url: str, bucket: str
) -> None:
    await s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    await s3_store.save(AgentSession(id=SessionId(1)))
    rights = ("s3:GetObject", "s3:PutObject", "s3:ListBucket", "s3:ListBucketVersions")
    async with reader_credentials(moto_url, bucket, rights) as agent:
        with iam_enforced(moto_url):
            async with S3SessionStore(bucket, session=agent, endpoint_url=moto_url) as store:
                with pytest.raises(AccessDeniedError) as caught:
                    await store.purge(SessionId(1))
    assert (caught.value.bucket, caught.value.key) == (bucket, "sessions/1.json")
    listing = await s3.list_object_versions(Bucket=bucket)
    assert len(listing["Versions"]) == 1  # nothing was erased


@pytest.mark.moto_only("IAM enforcement is a paid LocalStack feature")
async def test_unknown_credentials_raise_access_denied(moto_url: str, bucket: str) -> None:
    with iam_enforced(moto_url):
        async with S3SessionStore(bucket, endpoint_url=moto_url) as store:  # "testing" keys
            with pytest.raises(AccessDeniedError, match="InvalidAccessKeyId"):
                await store.load(SessionId(1))


def test_from_env_reads_bucket_and_prefix() -> None:
    store = S3SessionStore.from_env({"S3STORE_BUCKET": "bucket-1", "S3STORE_PREFIX": "agents"})
    assert (store.bucket, store.prefix) == ("bucket-1", "agents/")
    assert S3SessionStore.from_env({"S3STORE_BUCKET": "bucket-1"}).prefix == "sessions/"
    with pytest.raises(ConfigurationError, match="S3STORE_BUCKET"):
        S3SessionStore.from_env({})
    in_lambda = S3SessionStore.from_env({"S3STORE_BUCKET": "bucket-1", "AWS_REGION": "eu-west-3"})
    assert in_lambda.s3._client_options["region_name"] == "eu-west-3"


async def test_stat_and_list_info_describe_objects(
    s3_store: S3SessionStore, s3: S3Client, bucket: str
) -> None:
    assert await s3_store.stat(SessionId(1)) is None
    await s3_store.save(AgentSession(id=SessionId(1)))
    info = await s3_store.stat(SessionId(1))
    head = await s3.head_object(Bucket=bucket, Key="sessions/1.json")
    assert info is not None
    assert (info.key, info.size, info.etag) == (
        "sessions/1.json",
        head["ContentLength"],
        head["ETag"],
    )
    [listed] = await s3_store.list_info()
    assert (listed.session_id, listed.size, listed.etag) == (SessionId(1), info.size, info.etag)


async def test_purge_erases_every_version_and_marker(
    s3_store: S3SessionStore, s3: S3Client, bucket: str
) -> None:
    await s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    session = AgentSession(id=SessionId(5))
    neighbour = AgentSession(id=SessionId(50))
    for _ in range(3):
        await s3_store.save(session)
    await s3_store.save(neighbour)
    await s3_store.delete(SessionId(5))  # a delete marker; the three versions stay
    listing = await s3.list_object_versions(Bucket=bucket, Prefix="sessions/5.json")
    assert len(listing.get("Versions", [])) == 3

    purged = await s3_store.purge(SessionId(5))

    assert (purged.versions, purged.delete_markers) == (3, 1)
    listing = await s3.list_object_versions(Bucket=bucket, Prefix="sessions/5")
    left = [v["Key"] for v in [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]]
    assert left == ["sessions/50.json"]  # a neighbour sharing the prefix is untouched
