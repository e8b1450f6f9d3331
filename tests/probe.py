"""What an S3 server does with the requests s3store relies on: `python -m tests.probe URL`.

Creates a bucket of its own on the server at URL (test credentials from the
environment), sends each request below and prints one Markdown table row per
behaviour: what the server answered, and whether that is what AWS S3 does.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aioboto3
from botocore.exceptions import ClientError

Check = Callable[[Any, str], Awaitable[tuple[str, bool]]]


def _status(exc: ClientError) -> str:
    code = exc.response.get("Error", {}).get("Code", "")
    return f"{exc.response['ResponseMetadata']['HTTPStatusCode']} {code}".strip()


async def conditional_create(s3: Any, bucket: str) -> tuple[str, bool]:
    await s3.put_object(Bucket=bucket, Key="a", Body=b"1", IfNoneMatch="*")
    try:
        await s3.put_object(Bucket=bucket, Key="a", Body=b"2", IfNoneMatch="*")
    except ClientError as exc:
        return f"second create: {_status(exc)}", _status(exc).startswith("412")
    return "second create: 200 (overwrote)", False


async def conditional_replace(s3: Any, bucket: str) -> tuple[str, bool]:
    etag = (await s3.put_object(Bucket=bucket, Key="b", Body=b"1"))["ETag"]  # quoted
    await s3.put_object(Bucket=bucket, Key="b", Body=b"2", IfMatch=etag)
    try:
        await s3.put_object(Bucket=bucket, Key="b", Body=b"3", IfMatch=etag)
    except ClientError as exc:
        return f"current ETag: 200; stale: {_status(exc)}", _status(exc).startswith("412")
    return "stale ETag: 200 (overwrote)", False


async def if_match_missing(s3: Any, bucket: str) -> tuple[str, bool]:
    try:
        await s3.put_object(Bucket=bucket, Key="missing", Body=b"1", IfMatch='"abc"')
    except ClientError as exc:
        return _status(exc), _status(exc).startswith("404")
    return "200 (created)", False


async def not_modified(s3: Any, bucket: str) -> tuple[str, bool]:
    etag = (await s3.put_object(Bucket=bucket, Key="c", Body=b"1"))["ETag"]
    try:
        await s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    except ClientError as exc:
        return _status(exc), _status(exc).startswith("304")
    return "200 (body sent again)", False


async def checksum(s3: Any, bucket: str) -> tuple[str, bool]:
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    try:
        await s3.put_object(Bucket=bucket, Key="d", Body=b"body", ChecksumSHA256=wrong)
        refused = "wrong checksum: 200 (stored)"
    except ClientError as exc:
        refused = f"wrong checksum: {_status(exc)}"
    await s3.put_object(Bucket=bucket, Key="e", Body=b"body", ChecksumAlgorithm="SHA256")
    head = await s3.head_object(Bucket=bucket, Key="e", ChecksumMode="ENABLED")
    returned = "returned" if head.get("ChecksumSHA256") else "not returned"
    return f"{refused}; {returned}", refused.startswith("wrong checksum: 400") and head.get(
        "ChecksumSHA256"
    ) is not None


async def versioning(s3: Any, bucket: str) -> tuple[str, bool]:
    await s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = await s3.put_object(Bucket=bucket, Key="f", Body=b"1")
    await s3.put_object(Bucket=bucket, Key="f", Body=b"2")
    old = await s3.get_object(Bucket=bucket, Key="f", VersionId=first["VersionId"])
    body = await old["Body"].read()
    return f"old version read back: {body == b'1'}", body == b"1"


async def sse_kms(s3: Any, bucket: str) -> tuple[str, bool]:
    try:
        await s3.put_object(
            Bucket=bucket,
            Key="g",
            Body=b"1",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId="arn:aws:kms:us-east-1:000000000000:key/no-such-key",
        )
    except ClientError as exc:
        return f"unknown key: {_status(exc)}", True
    return "unknown key: 200 (not validated)", False


CHECKS: dict[str, Check] = {
    "conditional create (If-None-Match: *)": conditional_create,
    "conditional replace (If-Match, quoted ETag)": conditional_replace,
    "If-Match on a missing key": if_match_missing,
    "304 on If-None-Match": not_modified,
    "SHA-256 checksum verified and returned": checksum,
    "versioning": versioning,
    "SSE-KMS key checked": sse_kms,
}


async def probe(url: str) -> list[tuple[str, str, bool]]:
    bucket = f"probe-{uuid.uuid4().hex[:12]}"
    async with aioboto3.Session().client("s3", endpoint_url=url, region_name="us-east-1") as s3:
        await s3.create_bucket(Bucket=bucket)
        rows = []
        for name, check in CHECKS.items():
            try:
                seen, as_aws = await check(s3, bucket)
            except ClientError as exc:
                seen, as_aws = f"error: {_status(exc)}", False
            rows.append((name, seen, as_aws))
        return rows


def main() -> None:
    for name, seen, as_aws in asyncio.run(probe(sys.argv[1])):
        print(f"| {name} | {seen} | {'as AWS' if as_aws else '**differs**'} |")


if __name__ == "__main__":
    main()
