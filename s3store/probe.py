"""What an S3 server does with the requests s3store relies on.

    python -m s3store.probe ENDPOINT [--kms-key-id KEY] [--name NAME]

Creates a bucket of its own at ENDPOINT (credentials and region from the usual AWS
environment), sends each request below, prints one Markdown table row per behaviour
with what the server answered (in bold where AWS S3 documents something else), then
deletes the bucket and everything in it. Exit status: 0 when every behaviour probed
is AWS's, 1 when one differs, 2 when the server cannot be reached or refuses the
credentials.

The line under the table says whether optimistic concurrency (the default) can work
on this server: it needs conditional create and conditional replace as AWS does them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import hashlib
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aioboto3
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError, FlexibleChecksumError

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


@dataclass(frozen=True)
class Finding:
    """What the server answered, and whether AWS S3 documents the same (None: not probed)."""

    seen: str
    as_aws: bool | None


Check = Callable[["S3Client", str, "str | None"], Awaitable[Finding]]


def _status(exc: ClientError) -> str:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
    code = exc.response.get("Error", {}).get("Code", "")
    return f"{status} {code}" if code and code != str(status) else str(status)


async def _exists(s3: S3Client, bucket: str, key: str) -> bool:
    try:
        await s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            return False
        raise
    return True


async def conditional_create(s3: S3Client, bucket: str, kms_key_id: str | None) -> Finding:
    await s3.put_object(Bucket=bucket, Key="create", Body=b"1", IfNoneMatch="*")
    try:
        await s3.put_object(Bucket=bucket, Key="create", Body=b"2", IfNoneMatch="*")
    except ClientError as exc:
        return Finding(_status(exc), _status(exc).startswith("412"))
    return Finding("200: overwritten", False)


async def conditional_replace(s3: S3Client, bucket: str, kms_key_id: str | None) -> Finding:
    # botocore sends the ETag as S3 gave it: in double quotes, as HTTP spells it.
    first = (await s3.put_object(Bucket=bucket, Key="replace", Body=b"1"))["ETag"]
    try:
        await s3.put_object(Bucket=bucket, Key="replace", Body=b"2", IfMatch=first)
    except ClientError as exc:
        return Finding(f"current ETag: {_status(exc)}", False)
    try:
        await s3.put_object(Bucket=bucket, Key="replace", Body=b"3", IfMatch=first)
    except ClientError as exc:
        return Finding(f"current: 200; stale: {_status(exc)}", _status(exc).startswith("412"))
    return Finding("current: 200; stale: 200, overwritten", False)


async def if_match_missing(s3: S3Client, bucket: str, kms_key_id: str | None) -> Finding:
    try:
        await s3.put_object(Bucket=bucket, Key="missing", Body=b"1", IfMatch='"0"')
    except ClientError as exc:
        return Finding(_status(exc), _status(exc) == "404 NoSuchKey")
    return Finding("200: created", False)


async def not_modified(s3: S3Client, bucket: str, kms_key_id: str | None) -> Finding:
    etag = (await s3.put_object(Bucket=bucket, Key="cached", Body=b"1"))["ETag"]
    try:
        await s3.get_object(Bucket=bucket, Key="cached", IfNoneMatch=etag)
    except ClientError as exc:
        return Finding(_status(exc), _status(exc) == "304")
    return Finding("200: body sent again", False)


async def wrong_checksum(s3: S3Client, bucket: str, kms_key_id: str | None) -> Finding:
    other = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    try:
        await s3.put_object(Bucket=bucket, Key="damaged", Body=b"body", ChecksumSHA256=other)
        answer = "200"
    except ClientError as exc:
        answer = _status(exc)
    stored = await _exists(s3, bucket, "damaged")
    refused = answer.startswith("400") and not stored
    return Finding(f"{answer}, {'stored' if stored else 'nothing stored'}", refused)


async def checksum_returned(s3: S3Client, bucket: str, kms_key_id: str | None) -> Finding:
    body = b"body"
    expected = base64.b64encode(hashlib.sha256(body).digest()).decode()
    await s3.put_object(Bucket=bucket, Key="checked", Body=body, ChecksumAlgorithm="SHA256")
    answer = await s3.get_object(Bucket=bucket, Key="checked", ChecksumMode="ENABLED")
    stream = answer["Body"]
    try:
        async with stream:
            await stream.read()  # botocore checks the body against a returned checksum
    except FlexibleChecksumError:
        return Finding("a wrong one returned", False)
    if answer.get("ChecksumSHA256") != expected:
        return Finding(f"{'not' if 'ChecksumSHA256' not in answer else 'wrongly'} returned", False)
    return Finding("returned", True)


async def metadata_kept(s3: S3Client, bucket: str, kms_key_id: str | None) -> Finding:
    await s3.put_object(
        Bucket=bucket,
        Key="described",
        Body=gzip.compress(b"{}"),
        ContentEncoding="gzip",
        Metadata={"probe": "1"},
    )
    head = await s3.head_object(Bucket=bucket, Key="described")
    lost = [
        name
        for name, kept in (
            ("user metadata", head.get("Metadata") == {"probe": "1"}),
            ("Content-Encoding", head.get("ContentEncoding") == "gzip"),
        )
        if not kept
    ]
    return Finding(f"{' and '.join(lost)} lost" if lost else "kept", not lost)


async def versioning(s3: S3Client, bucket: str, kms_key_id: str | None) -> Finding:
    await s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = (await s3.put_object(Bucket=bucket, Key="versioned", Body=b"1")).get("VersionId")
    if first is None:
        return Finding("no version id", False)
    await s3.put_object(Bucket=bucket, Key="versioned", Body=b"2")
    await s3.delete_object(Bucket=bucket, Key="versioned")
    old = await s3.get_object(Bucket=bucket, Key="versioned", VersionId=first)
    stream = old["Body"]
    async with stream:
        read_back = await stream.read() == b"1"
    listed = await s3.list_object_versions(Bucket=bucket, Prefix="versioned")
    marker = any(item.get("Key") == "versioned" for item in listed.get("DeleteMarkers", ()))
    seen = (
        f"old version {'read back' if read_back else 'lost'}; "
        f"delete marker {'listed' if marker else 'not listed'}"
    )
    return Finding(seen, read_back and marker)


async def sse_kms(s3: S3Client, bucket: str, kms_key_id: str | None) -> Finding:
    if kms_key_id is None:
        return Finding("not probed (no --kms-key-id)", None)
    await s3.put_object(
        Bucket=bucket,
        Key="encrypted",
        Body=b"1",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=kms_key_id,
    )
    head = await s3.head_object(Bucket=bucket, Key="encrypted")
    encrypted = head.get("ServerSideEncryption") == "aws:kms"
    key_named = kms_key_id in head.get("SSEKMSKeyId", "")
    if encrypted and key_named:
        return Finding("stored encrypted, key named", True)
    return Finding(f"ServerSideEncryption: {head.get('ServerSideEncryption')}", False)


async def unknown_kms_key(s3: S3Client, bucket: str, kms_key_id: str | None) -> Finding:
    try:
        await s3.put_object(
            Bucket=bucket,
            Key="unknown-key",
            Body=b"1",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=str(uuid.uuid4()),
        )
        answer = "200"
    except ClientError as exc:
        answer = _status(exc)
    stored = await _exists(s3, bucket, "unknown-key")
    return Finding(f"{answer}, {'stored' if stored else 'nothing stored'}", not stored)


CHECKS: dict[str, Check] = {
    "conditional create (`If-None-Match: *`) of an existing key": conditional_create,
    "conditional replace (`If-Match`, the quoted ETag): current, then stale": conditional_replace,
    "`If-Match` on a missing key": if_match_missing,
    "GET with `If-None-Match` of the current ETag": not_modified,
    "PUT whose SHA-256 does not match its body": wrong_checksum,
    "SHA-256 checksum on GET (`ChecksumMode`)": checksum_returned,
    "user metadata and `Content-Encoding`": metadata_kept,
    "versioning: an old version, a delete marker": versioning,
    "SSE-KMS with an existing key": sse_kms,
    "SSE-KMS with an unknown key": unknown_kms_key,
}

# What optimistic concurrency, the store's default, cannot do without.
OPTIMISTIC_NEEDS = (conditional_create, conditional_replace)


async def probe(s3: S3Client, *, kms_key_id: str | None = None) -> dict[str, Finding]:
    """Every check of CHECKS on a bucket of its own, removed afterwards."""
    bucket = f"s3store-probe-{uuid.uuid4().hex[:16]}"
    await s3.create_bucket(Bucket=bucket)
    try:
        findings = {}
        for name, check in CHECKS.items():
            try:
                findings[name] = await check(s3, bucket, kms_key_id)
            except ClientError as exc:
                findings[name] = Finding(f"error: {_status(exc)}", False)
        return findings
    finally:
        await _remove(s3, bucket)


async def _remove(s3: S3Client, bucket: str) -> None:
    listed = await s3.list_object_versions(Bucket=bucket)
    for item in [*listed.get("Versions", ()), *listed.get("DeleteMarkers", ())]:
        await s3.delete_object(Bucket=bucket, Key=item["Key"], VersionId=item["VersionId"])
    await s3.delete_bucket(Bucket=bucket)


def optimistic_verdict(findings: dict[str, Finding]) -> str:
    names = {check: name for name, check in CHECKS.items()}
    missing = [names[check] for check in OPTIMISTIC_NEEDS if not findings[names[check]].as_aws]
    if not missing:
        return "optimistic concurrency (the default): works on this server"
    return (
        f"optimistic concurrency (the default) cannot work here ({'; '.join(missing)}): "
        'use S3SessionStore(..., concurrency="last-writer-wins")'
    )


def table(label: str, findings: dict[str, Finding]) -> str:
    rows = [f"| behaviour | {label} |", "| --- | --- |"]
    for name, finding in findings.items():
        seen = f"**{finding.seen}**" if finding.as_aws is False else finding.seen
        rows.append(f"| {name} | {seen} |")
    return "\n".join(rows)


async def _run(endpoint: str, kms_key_id: str | None) -> dict[str, Finding]:
    # One attempt per request: the server's own answer to each, never a retry's.
    config = AioConfig(retries={"mode": "standard", "total_max_attempts": 1})
    async with aioboto3.Session().client("s3", endpoint_url=endpoint, config=config) as s3:
        return await probe(s3, kms_key_id=kms_key_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m s3store.probe",
        description="What an S3 server does with the requests s3store relies on.",
    )
    parser.add_argument("endpoint", help="the server's URL, e.g. http://127.0.0.1:7480")
    parser.add_argument("--kms-key-id", help="a KMS key the server knows, for the SSE-KMS row")
    parser.add_argument("--name", help="the table's column title (default: the endpoint)")
    arguments = parser.parse_args(argv)
    try:
        findings = asyncio.run(_run(arguments.endpoint, arguments.kms_key_id))
    except (BotoCoreError, ClientError) as exc:
        print(f"s3store.probe: {arguments.endpoint}: {exc}", file=sys.stderr)
        return 2
    print(table(arguments.name or arguments.endpoint, findings))
    print()
    print(optimistic_verdict(findings))
    return 0 if all(finding.as_aws is not False for finding in findings.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
