"""What an S3 server does with the requests s3store relies on.

    python -m s3store.probe ENDPOINT [--kms-key-id KEY] [--name NAME]

Creates a bucket of its own at ENDPOINT (credentials and region from the usual AWS
environment), sends each request below, prints one Markdown table row per behaviour
with what the server answered (in bold where AWS S3 documents something else), then
deletes the bucket and everything in it. A request the server does not implement
(501, such as versioning on some servers) makes its row "not implemented: ...";
without versioning, the cleanup deletes the objects by key.

Exit status: 0 when every behaviour probed is AWS's, 1 when one differs, 2 when
nothing could be probed (the server cannot be reached, or refuses the credentials or
the bucket), 3 when the table is printed but something the probe created could not
be deleted: the line on stderr names it, to delete by hand.

Whatever the server answers is untrusted: an error, a malformed or cut-short answer
is a row ("error: ...") or the line on stderr, on one line with control characters
escaped, never a traceback.

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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aioboto3
import aiohttp
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError, FlexibleChecksumError
from botocore.parsers import ResponseParserError

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import (
        ListObjectsV2RequestTypeDef,
        ListObjectVersionsRequestTypeDef,
    )


@dataclass(frozen=True)
class Finding:
    """What the server answered, and whether AWS S3 documents the same (None: not probed)."""

    seen: str
    as_aws: bool | None


@dataclass(frozen=True)
class Report:
    """The findings, and what the probe created but could not delete (empty: nothing)."""

    findings: dict[str, Finding]
    left_behind: tuple[str, ...] = ()


Check = Callable[["S3Client", str, "str | None"], Awaitable[Finding]]


class UnexpectedAnswer(Exception):
    """A server's answer without something every S3 answer of its kind has."""


# What a request can end in when the server answers something other than S3 would:
# an error status, an answer botocore cannot parse (ResponseParserError, or ValueError
# for a number or a date that is not one), a body cut short (aiohttp), a field missing.
ANSWER_ERRORS: tuple[type[Exception], ...] = (
    ClientError,
    BotoCoreError,
    ResponseParserError,
    aiohttp.ClientError,
    ValueError,
    UnexpectedAnswer,
)

_PAGES = 10  # pages of a listing read at most: the probe writes a dozen objects


def _untrusted(text: object, limit: int = 200) -> str:
    """Text the server chose, made safe to print: one line, control characters
    escaped (no terminal escape sequence gets through), at most `limit` characters."""
    shown = "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in str(text)[: limit + 1]
    )
    return shown if len(shown) <= limit else f"{shown[: limit - 3]}..."


def _status(exc: ClientError) -> str:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
    code = _untrusted(exc.response.get("Error", {}).get("Code", ""), 60)
    return f"{status} {code}" if code and code != str(status) else str(status)


def _not_implemented(exc: ClientError) -> bool:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status == 501 or exc.response.get("Error", {}).get("Code") == "NotImplemented"


def _describe(exc: Exception) -> str:
    """What went wrong with a request, in one line, for a row or the line on stderr."""
    if isinstance(exc, ClientError):
        return f"{_untrusted(exc.operation_name, 60)} answered {_status(exc)}"
    return f"{type(exc).__name__}: {_untrusted(exc)}"


def _field(answer: Mapping[str, Any], name: str, operation: str) -> str:
    value = answer.get(name)
    if not isinstance(value, str) or not value:
        raise UnexpectedAnswer(f"{operation} answered without {name}")
    return value


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
    first = _field(
        await s3.put_object(Bucket=bucket, Key="replace", Body=b"1"), "ETag", "PutObject"
    )
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
    etag = _field(await s3.put_object(Bucket=bucket, Key="cached", Body=b"1"), "ETag", "PutObject")
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
    return Finding(f"ServerSideEncryption: {_untrusted(head.get('ServerSideEncryption'))}", False)


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


async def probe(s3: S3Client, *, kms_key_id: str | None = None) -> Report:
    """Every check of CHECKS on a bucket of its own, removed afterwards (what could not
    be is in `left_behind`). Raises one of ANSWER_ERRORS if the bucket cannot be created."""
    bucket = f"s3store-probe-{uuid.uuid4().hex[:16]}"
    await s3.create_bucket(Bucket=bucket)
    findings = {}
    try:
        for name, check in CHECKS.items():
            try:
                findings[name] = await check(s3, bucket, kms_key_id)
            except ANSWER_ERRORS as exc:
                if isinstance(exc, ClientError) and _not_implemented(exc):
                    findings[name] = Finding(f"not implemented: {_describe(exc)}", False)
                else:
                    findings[name] = Finding(f"error: {_describe(exc)}", False)
    finally:
        left_behind = await _remove(s3, bucket)
    return Report(findings, left_behind)


async def _remove(s3: S3Client, bucket: str) -> tuple[str, ...]:
    """Deletes the bucket and everything in it; returns what it could not delete, named.

    Every version first, where the server lists them; then every key still listed, by
    key: on a server without versioning (ListObjectVersions: 501) that is everything."""
    kept: dict[str, str] = {}  # an object not deleted: why
    unlisted: list[str] = []  # what could not be listed: why
    try:
        versions = await _versions(s3, bucket)
    except ANSWER_ERRORS as exc:
        versions, unlisted = [], [f"its old versions, if any ({_describe(exc)})"]
    for key, version in versions:
        try:
            await s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
        except ANSWER_ERRORS as exc:
            kept[key] = _describe(exc)
    try:
        keys = await _keys(s3, bucket)
    except ANSWER_ERRORS as exc:
        keys, unlisted = [], [*unlisted, f"its objects ({_describe(exc)})"]
    for key in keys:
        try:
            await s3.delete_object(Bucket=bucket, Key=key)
        except ANSWER_ERRORS as exc:
            kept[key] = _describe(exc)
    try:
        await s3.delete_bucket(Bucket=bucket)
    except ANSWER_ERRORS as exc:
        objects = [f"object {_untrusted(key, 100)} ({why})" for key, why in kept.items()]
        return (f"bucket {bucket} ({_describe(exc)})", *objects, *unlisted)
    return ()


async def _versions(s3: S3Client, bucket: str) -> list[tuple[str, str]]:
    """(key, version id) of every version and delete marker in the bucket."""
    found: list[tuple[str, str]] = []
    request: ListObjectVersionsRequestTypeDef = {"Bucket": bucket}
    for _ in range(_PAGES):
        listed = await s3.list_object_versions(**request)
        for item in [*listed.get("Versions", ()), *listed.get("DeleteMarkers", ())]:
            key, version = item.get("Key"), item.get("VersionId")
            if isinstance(key, str) and isinstance(version, str):
                found.append((key, version))
        key_marker = listed.get("NextKeyMarker")
        if not listed.get("IsTruncated") or not key_marker:
            break
        request = {"Bucket": bucket, "KeyMarker": key_marker}
        if listed.get("NextVersionIdMarker"):
            request["VersionIdMarker"] = listed["NextVersionIdMarker"]
    return found


async def _keys(s3: S3Client, bucket: str) -> list[str]:
    """Every key in the bucket (its current objects)."""
    found: list[str] = []
    request: ListObjectsV2RequestTypeDef = {"Bucket": bucket}
    for _ in range(_PAGES):
        listed = await s3.list_objects_v2(**request)
        found.extend(
            item["Key"] for item in listed.get("Contents", ()) if isinstance(item.get("Key"), str)
        )
        token = listed.get("NextContinuationToken")
        if not listed.get("IsTruncated") or not token:
            break
        request = {"Bucket": bucket, "ContinuationToken": token}
    return found


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
    rows = [f"| behaviour | {_cell(label)} |", "| --- | --- |"]
    for name, finding in findings.items():
        seen = f"**{_cell(finding.seen)}**" if finding.as_aws is False else _cell(finding.seen)
        rows.append(f"| {name} | {seen} |")
    return "\n".join(rows)


def _cell(text: str) -> str:
    """A table cell: one line (see `_untrusted`), its `|` escaped so it stays one cell."""
    return _untrusted(text, 300).replace("|", "\\|")


async def _run(endpoint: str, kms_key_id: str | None) -> Report:
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
        report = asyncio.run(_run(arguments.endpoint, arguments.kms_key_id))
    except ANSWER_ERRORS as exc:
        # Before anything was probed: the client, or the probe's bucket.
        print(f"s3store.probe: {arguments.endpoint}: {_untrusted(exc, 500)}", file=sys.stderr)
        return 2
    print(table(arguments.name or arguments.endpoint, report.findings))
    print()
    print(optimistic_verdict(report.findings))
    if report.left_behind:
        print(
            f"s3store.probe: {arguments.endpoint}: could not delete what the probe created, "
            f"delete it by hand: {'; '.join(report.left_behind)}",
            file=sys.stderr,
        )
        return 3
    return 0 if all(finding.as_aws is not False for finding in report.findings.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
