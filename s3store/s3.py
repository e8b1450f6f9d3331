"""S3: `S3Objects`, the object layer over one aioboto3 client per event loop, and
`S3SessionStore`, sessions as JSON objects on it."""

from __future__ import annotations

import asyncio
import builtins
import gzip
import os
import re
import zlib
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator, Mapping
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

import aioboto3
import aiohttp
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    FlexibleChecksumError,
    IncompleteReadError,
    NoCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
    ResponseStreamingError,
)

from s3store._cache import BodyCache
from s3store._loopbound import LoopBound, OtherLoopError
from s3store._tuning import tune_client
from s3store.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    ConfigurationError,
    CorruptSessionError,
    NoSuchVersionError,
    SessionStoreError,
    StorageError,
)
from s3store.keys import events_folder
from s3store.models import AgentSession, SessionId
from s3store.objects import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_OBJECT_BYTES,
    ObjectHead,
    ObjectInfo,
    Objects,
    StoredObject,
    StoredVersion,
    conflict,
    each,
)
from s3store.store import (
    DEFAULT_MAX_SESSION_BYTES,
    Concurrency,
    S,
    SessionInfo,
    SessionStore,
)
from s3store.writes import METADATA_KEY, decode, encode

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from typing_extensions import Self

__all__ = [
    "DEFAULT_CONFIG",
    "ENV_BUCKET",
    "ENV_KMS_KEY_ID",
    "ENV_PREFIX",
    "Purged",
    "S3Objects",
    "S3SessionStore",
    "SessionInfo",
    "SessionVersion",
    "bucket_from_env",
    "check_bucket_name",
]

ENV_BUCKET = "S3STORE_BUCKET"
"""The environment variable `S3SessionStore.from_env()` reads the bucket name from."""
ENV_PREFIX = "S3STORE_PREFIX"
"""The environment variable `S3SessionStore.from_env()` reads the key prefix from."""
ENV_KMS_KEY_ID = "S3STORE_KMS_KEY_ID"
"""The environment variable `S3SessionStore.from_env()` reads the SSE-KMS key from."""

DEFAULT_CONFIG = Config(
    # Sized for Lambda: a dead connection fails fast and is retried well
    # within a function's timeout, instead of hanging until it.
    retries={"mode": "standard", "total_max_attempts": 4},
    connect_timeout=2,
    read_timeout=10,
    # botocore's pool of 10 would cap the bulk methods' concurrency (and throughput).
    max_pool_connections=DEFAULT_CONCURRENCY,
)
"""The client settings a store starts from; a `config` passed to the store is merged over it."""

# What each refusal means, and what to do about it; any other 403 is a denial too.
_DENIALS = {
    "InvalidAccessKeyId": "S3 does not know these credentials' access key: use valid credentials",
    "SignatureDoesNotMatch": (
        "the request's signature does not match: the secret key is wrong for this access key"
    ),
    "ExpiredToken": "the session token has expired: refresh the credentials",
    "TokenRefreshRequired": "the session token has expired: refresh the credentials",
    "InvalidToken": "the session token is malformed or invalid: use valid credentials",
}
_PERMISSION = (
    "grant these credentials access to the session prefix (terraform/ outputs the agent "
    "policy) or use other credentials"
)
_DELETE_BATCH = 1000
"""The most keys one DeleteObjects request takes."""
_CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
_NO_CREDENTIALS = (
    "no AWS credentials were found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or run under a role that provides them"
)
# Bucket names as S3 allows them (or an access point ARN, checked by S3 itself).
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]|arn:.+")
# A body that arrived cut short, altered or stalled: read it again rather than trust
# it. botocore retries a request that fails, but not a body read after the answer began.
_DAMAGED_BODY = (
    FlexibleChecksumError,
    IncompleteReadError,
    ResponseStreamingError,
    aiohttp.ClientPayloadError,
    ReadTimeoutError,
)
# What a request can fail with that `_typed()` makes a typed error of.
_FAILURES = (ClientError, BotoCoreError, aiohttp.ClientError, asyncio.TimeoutError)


@dataclass(frozen=True)
class Purged:
    """What `purge()` removed: versions and delete markers of the session's object,
    and versions of its events."""

    versions: int
    delete_markers: int
    events: int = 0


@dataclass(frozen=True)
class SessionVersion:
    """One stored version of a session, as `history()` lists it."""

    version_id: str
    last_modified: datetime
    size: int
    is_latest: bool


class S3Objects(Objects):
    """Objects under `prefix` in an S3 bucket, over one aioboto3 client per event loop.

    The client follows the event loop: it is opened on first use on the running
    loop and kept by that loop, whatever other loops do, until the loop ends, so
    objects made once at module level serve every `asyncio.run()` of a process.
    `async with objects:` (or `open()` and `close()`) gives it an explicit
    lifetime instead; `close()` lets the requests in flight on it end first.

    Every object is written with a SHA-256 checksum S3 verifies, with SSE-KMS when
    `kms_key_id` is set, and, above `gzip_above_bytes`, gzip-encoded; read back,
    the checksum is checked and a damaged body read again.
    """

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "sessions/",
        session: aioboto3.Session | None = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        config: Config | None = None,
        cache_bytes: int = 0,
        max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES,
        max_attempts: int = 4,
        gzip_above_bytes: int | None = None,
        kms_key_id: str | None = None,
        kms_bucket_key: bool = True,
        expected_bucket_owner: str | None = None,
    ) -> None:
        super().__init__(prefix=prefix, max_object_bytes=max_object_bytes)
        check_bucket_name(bucket)
        if expected_bucket_owner is not None and not re.fullmatch(r"\d{12}", expected_bucket_owner):
            raise ConfigurationError(
                f"expected_bucket_owner must be a 12-digit AWS account id, not "
                f"{expected_bucket_owner!r}",
                bucket=bucket,
            )
        if max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be at least 1, not {max_attempts}")
        self.bucket = bucket
        client_config, self._max_attempts = _client_config(max_attempts, config)
        self._gzip_above_bytes = gzip_above_bytes
        self._expected_bucket_owner = expected_bucket_owner
        # Sent with every PutObject, so a bucket policy that requires SSE-KMS accepts it.
        self._encryption: dict[str, Any] = (
            {
                "ServerSideEncryption": "aws:kms",
                "SSEKMSKeyId": kms_key_id,
                "BucketKeyEnabled": kms_bucket_key,
            }
            if kms_key_id
            else {}
        )
        # Opt-in: only a long-lived process (a warm Lambda container) gains from it.
        self._cache = BodyCache(cache_bytes) if cache_bytes else None
        try:
            self._session = session or aioboto3.Session()
        except ProfileNotFound as exc:
            raise ConfigurationError(
                f"{exc}: set AWS_PROFILE to a profile of your AWS config, or unset it",
                bucket=bucket,
            ) from None
        self._client_options: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "region_name": region_name,
            "config": client_config,
        }
        self._clients = LoopBound(self._open_client)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> Self:
        """Objects configured by the environment, as the Terraform module's outputs set it.

        Reads `S3STORE_BUCKET` (required), `S3STORE_PREFIX` (default `sessions/`)
        and `S3STORE_KMS_KEY_ID` (optional: SSE-KMS with that key on every write).
        The endpoint, region and credentials come from AWS's own variables
        (`AWS_ENDPOINT_URL`, `AWS_REGION` or `AWS_DEFAULT_REGION`, `AWS_PROFILE`,
        ...). Keyword options are passed on to the constructor and win over the
        environment.
        """
        return cls(bucket_from_env(environ, options), **options)

    def __repr__(self) -> str:
        return f"S3Objects(bucket={self.bucket!r}, prefix={self.prefix!r})"

    @property
    def bucket_name(self) -> str:
        return self.bucket

    @property
    def default_concurrency(self) -> int:
        pool = self._client_options["config"].max_pool_connections
        return int(pool) if pool else DEFAULT_CONCURRENCY

    # -- lifetime -------------------------------------------------------------

    async def open(self) -> None:
        """Open the client on the running event loop now, rather than on first use.

        `async with` calls this, and `close()` at its end; nested and concurrent
        `async with` blocks on one loop share one client, closed when the last
        of them ends.
        """
        with self._other_loop():
            await self._clients.open()

    async def close(self) -> None:
        """Close the running loop's client (or, inside nested `async with` blocks, end
        one), once the requests in flight on it have ended; a later use opens a new one."""
        await self._clients.close()

    def _client(self, operation: str, key: str | None) -> _Request:
        """One request's use of the running loop's client (see `_loopbound`): `close()`
        waits for it to end. Its failures come out as s3store's typed errors."""
        return _Request(self, operation, key)

    @contextmanager
    def _other_loop(self) -> Iterator[None]:
        try:
            yield
        except OtherLoopError:
            raise self._other_loop_error() from None

    def _other_loop_error(self) -> SessionStoreError:
        return SessionStoreError(
            "this store's client is open on another event loop that is still running: "
            "make one store per event loop (per thread)",
            bucket=self.bucket,
        )

    async def _open_client(self, stack: AsyncExitStack) -> S3Client:
        try:
            # aioboto3 returns aiobotocore's coroutine here; its stubs say otherwise.
            credentials = await cast(Awaitable[object], self._session.get_credentials())
            if credentials is None:
                raise ConfigurationError(_NO_CREDENTIALS, bucket=self.bucket)
            context = self._session.client("s3", **self._client_options)
            client = await context.__aenter__()
            stack.push_async_exit(context.__aexit__)
            stack.callback(_refuse_requests, client, self.bucket)  # runs first, at the close
        except BotoCoreError as exc:  # a missing profile, a failing credential_process, ...
            raise ConfigurationError(
                f"the AWS configuration could not be used: {exc}. Fix the profile "
                "(AWS_PROFILE), the credentials or the region",
                bucket=self.bucket,
            ) from exc
        tune_client(client)
        if self._expected_bucket_owner is not None:
            # On every request that takes it, paginated ones included.
            client.meta.events.register(
                "before-parameter-build.s3", self._add_expected_bucket_owner
            )
        return client

    def _add_expected_bucket_owner(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if "ExpectedBucketOwner" in model.input_shape.members:
            params.setdefault("ExpectedBucketOwner", self._expected_bucket_owner)

    async def client(self) -> S3Client:
        """The running loop's aioboto3 S3 client, for requests s3store does not make;
        it belongs to these objects: do not close it. `close()` does not wait for
        requests made on it, and once closed it refuses them (SessionStoreError): ask
        for the client again after a close."""
        with self._other_loop():
            return await self._clients.get()

    # -- the primitives -----------------------------------------------------------

    async def _get(self, key: str, version_id: str | None) -> StoredObject | None:
        # botocore retries a failed request, but not a body that arrives damaged
        # after the response began: that is read again here.
        for _ in range(self._max_attempts):
            try:
                return await self._get_once(key, version_id)
            except _DamagedBody as exc:
                damage = exc.__cause__
        if isinstance(damage, ReadTimeoutError):
            raise StorageError(
                f"reading the body timed out in each of {self._max_attempts} reads: S3 or the "
                "network is too slow; retry later, or raise the read_timeout of the store's config",
                operation="GetObject",
                code="ReadTimeout",
                bucket=self.bucket,
                key=key,
            )
        raise CorruptSessionError(
            f"S3 sent a truncated or altered body in each of {self._max_attempts} reads "
            f"({damage!r}); nothing was loaded. If it persists, inspect the object",
            raw=b"",
            bucket=self.bucket,
            key=key,
        )

    async def _get_once(self, key: str, version_id: str | None) -> StoredObject | None:
        async with self._client("GetObject", key) as client:
            cached = self._cache.get(key) if self._cache is not None and not version_id else None
            options: dict[str, Any] = {} if cached is None else {"IfNoneMatch": cached.version}
            if version_id:
                options["VersionId"] = version_id
            try:
                response = await client.get_object(
                    Bucket=self.bucket, Key=key, ChecksumMode="ENABLED", **options
                )
            except ClientError as exc:
                if cached is not None and _code(exc) == "304":
                    return cached
                if _code(exc) == "NoSuchKey":
                    self._uncache(key)
                    return None
                if version_id and _code(exc) in ("NoSuchVersion", "InvalidArgument"):
                    return None
                raise
            stream = response["Body"]
            # Read through botocore's wrapper, not what `async with` returns: that is
            # the bare aiohttp response, which skips the checksum and length checks.
            async with stream:
                if response["ContentLength"] > self.max_object_bytes:
                    size = response["ContentLength"]
                    raise self.too_large(f"stored object is {size:,} bytes", key)
                try:
                    body = await stream.read()
                except _DAMAGED_BODY as exc:
                    raise _DamagedBody from exc
        body = self._decompressed(body, response.get("ContentEncoding"), key)
        writes = decode(response["Metadata"].get(METADATA_KEY))
        stored = StoredObject(body, response["ETag"], writes)
        if self._cache is not None and not version_id:
            self._cache.put(key, stored)
        return stored

    def _decompressed(self, body: bytes, encoding: str | None, key: str) -> bytes:
        if encoding != "gzip":
            return body
        inflate = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
        try:
            # Bounded, so that a small object cannot inflate past the memory limit.
            data = inflate.decompress(body, self.max_object_bytes + 1)
        except zlib.error as exc:
            raise self.corrupt(f"is not valid gzip ({exc})", body, key) from None
        if len(data) > self.max_object_bytes:
            raise self.too_large("stored object is larger once decompressed", key)
        if not inflate.eof:
            raise self.corrupt("is a truncated gzip stream", body, key)
        return data

    async def _put(
        self,
        key: str,
        body: bytes,
        *,
        if_match: str | None,
        if_absent: bool,
        writes: tuple[str, ...],
        content_type: str,
    ) -> str:
        options: dict[str, Any] = {**self._encryption}
        if writes:
            options["Metadata"] = {METADATA_KEY: encode(writes)}
        if if_match is not None:
            options["IfMatch"] = if_match
        if if_absent:
            options["IfNoneMatch"] = "*"
        payload = body
        if self._gzip_above_bytes is not None and len(body) > self._gzip_above_bytes:
            payload = gzip.compress(body, mtime=0)  # mtime=0: the same content, the same bytes
            options["ContentEncoding"] = "gzip"
        async with self._client("PutObject", key) as client:
            try:
                response = await client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=payload,
                    ContentType=content_type,
                    ChecksumAlgorithm="SHA256",  # S3 verifies it, and stores it for loads
                    **options,
                )
            except ClientError as exc:
                # S3 answers If-Match on a deleted object with 404: a conflict too.
                if if_match is not None and _code(exc) == "NoSuchKey":
                    raise conflict(bucket=self.bucket, key=key) from None
                raise
        if self._cache is not None:
            self._cache.put(key, StoredObject(body, response["ETag"], writes))
        return response["ETag"]

    async def _head(self, key: str) -> ObjectHead | None:
        async with self._client("HeadObject", key) as client:
            try:
                head = await client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _code(exc) in ("404", "NoSuchKey"):
                    return None
                raise
        return ObjectHead(
            str(head["ETag"]),
            decode(head["Metadata"].get(METADATA_KEY)),
            head["ContentLength"],
            head["LastModified"],
            head.get("VersionId"),
        )

    async def _page(
        self, prefix: str, start_after: str | None, token: str | None, limit: int, recursive: bool
    ) -> tuple[builtins.list[ObjectInfo], str | None]:
        options: dict[str, Any] = {}
        if token is not None:
            options["ContinuationToken"] = token
        elif start_after is not None:
            options["StartAfter"] = start_after
        if not recursive:
            options["Delimiter"] = "/"
        async with self._client("ListObjectsV2", None) as client:
            page = await client.list_objects_v2(
                Bucket=self.bucket, Prefix=prefix, MaxKeys=limit, **options
            )
        infos = [
            ObjectInfo(
                item["Key"][len(self.prefix) :],
                item["Key"],
                item["Size"],
                item["LastModified"],
                item["ETag"],
            )
            for item in page.get("Contents", ())
        ]
        return infos, page.get("NextContinuationToken") if page.get("IsTruncated") else None

    async def _delete(self, key: str) -> None:
        self._uncache(key)
        async with self._client("DeleteObject", key) as client:
            await client.delete_object(Bucket=self.bucket, Key=key)

    def _uncache(self, key: str) -> None:
        if self._cache is not None:
            self._cache.evict(key)

    # -- bulk and versions ----------------------------------------------------------

    async def delete_many(
        self, names: Iterable[str], *, concurrency: int | None = None
    ) -> dict[str, SessionStoreError]:
        """Delete many objects with DeleteObjects, 1,000 keys a request, at most
        `concurrency` requests in flight; returns the failures by name."""
        key_of = {name: self.key(name) for name in dict.fromkeys(names)}
        name_of = {key: name for name, key in key_of.items()}
        keys = builtins.list(name_of)
        errors: dict[str, SessionStoreError] = {}

        async def delete_batch(start: int) -> None:
            batch = keys[start : start + _DELETE_BATCH]
            for key in batch:
                self._uncache(key)
            try:
                failures = await self._delete_objects([{"Key": key} for key in batch], None)
            except SessionStoreError as exc:
                errors.update((name_of[key], exc) for key in batch)
                return
            for failure in failures:
                key = failure.get("Key", "")
                if key in name_of:
                    errors[name_of[key]] = self._key_failure(failure, key)

        await each(
            builtins.list(range(0, len(keys), _DELETE_BATCH)),
            delete_batch,
            concurrency or self.default_concurrency,
        )
        return errors

    async def iter_versions(self, folder: str) -> AsyncIterator[dict[str, Any]]:
        """Every version and delete marker of the objects whose names start with
        `folder` (ListObjectVersions), each with `IsDeleteMarker`."""
        prefix = self.key(folder)
        async with self._client("ListObjectVersions", prefix) as client:
            paginator = client.get_paginator("list_object_versions")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for version in page.get("Versions", ()):
                    yield {**version, "IsDeleteMarker": False}
                for marker in page.get("DeleteMarkers", ()):
                    yield {**marker, "IsDeleteMarker": True}

    async def delete_versions(self, versions: builtins.list[dict[str, Any]], name: str) -> None:
        """Delete these versions for good (`Key` and `VersionId` each), 1,000 a request;
        `name` is the object the errors name."""
        key = self.key(name)
        for start in range(0, len(versions), _DELETE_BATCH):
            batch = [
                {"Key": item["Key"], "VersionId": item["VersionId"]}
                for item in versions[start : start + _DELETE_BATCH]
            ]
            failures = await self._delete_objects(batch, key)
            if failures:
                left = f"{len(failures)} version(s) left in place, run purge again"
                raise self._key_failure(
                    failures[0], key, f"{left}: {failures[0].get('Message', '')}"
                )

    async def _delete_objects(self, objects: builtins.list[Any], key: str | None) -> Any:
        """One quiet DeleteObjects request; the per-key failures S3 reports."""
        async with self._client("DeleteObjects", key) as client:
            response = await client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
            )
        return response.get("Errors", [])

    def _key_failure(self, failure: Any, key: str, message: str | None = None) -> SessionStoreError:
        """A per-key DeleteObjects failure, typed as the same error of a whole request
        would be: AccessDenied is `AccessDeniedError` (the eraser policy is missing)."""
        error: Any = {
            "Code": failure.get("Code", ""),
            "Message": message if message is not None else failure.get("Message", ""),
        }
        return self._client_error(
            ClientError({"Error": error}, "DeleteObjects"), "DeleteObjects", key
        )

    # -- errors --------------------------------------------------------------------

    def _typed(self, exc: BaseException, operation: str, key: str | None) -> SessionStoreError:
        """The typed error of a botocore or aiohttp failure (one of `_FAILURES`)."""
        if isinstance(exc, ClientError):
            return self._client_error(exc, operation, key)
        if isinstance(exc, NoCredentialsError):
            return ConfigurationError(_NO_CREDENTIALS, bucket=self.bucket, key=key)
        # botocore retries connection failures and timeouts up to max_attempts.
        return StorageError(
            f"{operation} failed after up to {self._max_attempts} attempts: "
            f"{exc or type(exc).__name__}",
            operation=operation,
            bucket=self.bucket,
            key=key,
        )

    def _client_error(self, exc: ClientError, operation: str, key: str | None) -> SessionStoreError:
        code = _code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket":
            return BucketNotFoundError(
                "the bucket does not exist: create it (terraform/ provisions one) or fix the "
                "bucket name",
                bucket=self.bucket,
                key=key,
            )
        if code == "RequestTimeTooSkewed":
            return StorageError(
                f"S3 refused {operation} ({code}): this machine's clock differs from S3's by "
                "more than 15 minutes, which no credentials fix: synchronise the clock (NTP)",
                operation=operation,
                code=code,
                bucket=self.bucket,
                key=key,
            )
        if code in _DENIALS or code == "AccessDenied" or status == 403:
            return AccessDeniedError(
                f"S3 denied {operation} ({code or status}): {_DENIALS.get(code, _PERMISSION)}",
                bucket=self.bucket,
                key=key,
            )
        if key is not None and _is_conflict(exc):
            return conflict(bucket=self.bucket, key=key)
        attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
        message = exc.response.get("Error", {}).get("Message", "")
        return StorageError(
            f"{operation} failed with {code or status} after {attempts} attempt(s): {message}",
            operation=operation,
            code=code,
            bucket=self.bucket,
            key=key,
        )


class S3SessionStore(SessionStore[S]):
    """Sessions as JSON objects under `prefix` in an S3 bucket, over `S3Objects`.

    One aioboto3 client per event loop serves the store::

        store = S3SessionStore("my-bucket")
        await store.save(session)

    The client follows the event loop: it is opened on first use on the running
    loop and kept by that loop, whatever other loops do, until the loop ends, so
    a store made once at module level serves every `asyncio.run()` of a process.
    `async with store:` (or `open()` and `close()`) gives it an explicit lifetime
    instead; `close()` lets the requests in flight on it end first. `store.objects`
    is the object layer underneath, for documents of your own in the same bucket.
    """

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "sessions/",
        session: aioboto3.Session | None = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        config: Config | None = None,
        model: type[S] = AgentSession,  # type: ignore[assignment]
        concurrency: Concurrency = "optimistic",
        cache_bytes: int = 0,
        max_session_bytes: int = DEFAULT_MAX_SESSION_BYTES,
        max_attempts: int = 4,
        gzip_above_bytes: int | None = None,
        kms_key_id: str | None = None,
        kms_bucket_key: bool = True,
        expected_bucket_owner: str | None = None,
    ) -> None:
        self.s3 = S3Objects(
            bucket,
            prefix=prefix,
            session=session,
            endpoint_url=endpoint_url,
            region_name=region_name,
            config=config,
            cache_bytes=cache_bytes,
            max_object_bytes=max_session_bytes,
            max_attempts=max_attempts,
            gzip_above_bytes=gzip_above_bytes,
            kms_key_id=kms_key_id,
            kms_bucket_key=kms_bucket_key,
            expected_bucket_owner=expected_bucket_owner,
        )
        super().__init__(self.s3, model=model, concurrency=concurrency)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> Self:
        """A store configured by the environment, as `S3Objects.from_env()` reads it
        (`S3STORE_BUCKET`, `S3STORE_PREFIX`, `S3STORE_KMS_KEY_ID`, AWS's own variables);
        keyword options win over the environment."""
        return cls(bucket_from_env(environ, options), **options)

    @property
    def bucket(self) -> str:
        return self.s3.bucket

    def __repr__(self) -> str:
        return f"S3SessionStore(bucket={self.bucket!r}, prefix={self.prefix!r})"

    # -- for operators --------------------------------------------------------

    async def stat(self, session_id: SessionId) -> SessionInfo | None:
        """Size, time and version of a stored session (a HeadObject), or None."""
        name = self.name(session_id)
        head = await self.s3.head(name)
        if head is None:
            return None
        return SessionInfo(
            session_id,
            self.s3.key(name),
            head.size,
            head.last_modified,
            head.version,
            head.version_id,
        )

    async def list_info(self) -> builtins.list[SessionInfo]:
        """Like `list()`, with each object's size, time and ETag, from the listing alone.

        It holds the whole listing in memory: `iter_info()` streams it instead."""
        return [info async for info in self.iter_info()]

    async def purge(self, session_id: SessionId) -> Purged:
        """Erase a session for good: every version and delete marker of its object,
        and every version of every one of its events.

        `delete()` in a versioned bucket only adds a delete marker, and the old
        versions stay recoverable; it also leaves the events, the audit trail.
        `purge()` is the right to erasure. It needs `s3:ListBucketVersions` and
        `s3:DeleteObjectVersion` (the Terraform module's eraser policy). In an
        unversioned bucket it deletes the objects.
        """
        name = self.name(session_id)
        key = self.s3.key(name)
        snapshot = [item async for item in self.s3.iter_versions(name) if item["Key"] == key]
        events = [item async for item in self.s3.iter_versions(events_folder(session_id))]
        await self.s3.delete_versions(snapshot + events, name)
        self._forget_log(session_id)
        markers = sum(1 for item in snapshot if item["IsDeleteMarker"])
        return Purged(versions=len(snapshot) - markers, delete_markers=markers, events=len(events))

    async def history(self, session_id: SessionId) -> builtins.list[SessionVersion]:
        """Every stored version of the session, newest first (delete markers left out).

        Needs a versioned bucket (the Terraform module turns versioning on) and
        `s3:ListBucketVersions`; in an unversioned bucket, `ConfigurationError`.
        """
        name = self.name(session_id)
        key = self.s3.key(name)
        found = [
            item
            async for item in self.s3.iter_versions(name)
            if item["Key"] == key and not item["IsDeleteMarker"]
        ]
        if found and all(item["VersionId"] == "null" for item in found):
            raise ConfigurationError(
                "the bucket keeps no versions: a session has no history until versioning "
                "is enabled on the bucket (the Terraform module enables it)",
                bucket=self.bucket,
                key=key,
            )
        found.sort(key=lambda item: item["LastModified"], reverse=True)
        return [
            SessionVersion(item["VersionId"], item["LastModified"], item["Size"], item["IsLatest"])
            for item in found
        ]

    async def load(self, session_id: SessionId, version_id: str | None = None) -> S | None:
        """The stored session (or, with `version_id`, that version of it from
        `history()`), or None when there is none."""
        if version_id is None:
            return await super().load(session_id)
        if not version_id:
            raise ConfigurationError("version_id is empty: pass one that history() lists")
        name = self.name(session_id)
        stored = await self.s3.read(name, version_id=version_id)
        if stored is None:
            return None
        session = self.decode(stored.body, session_id)
        self._remember(session, name, StoredVersion(stored.version, stored.writes))
        return session

    async def restore(self, session_id: SessionId, version_id: str) -> S:
        """Make a version from `history()` the current session again, as a new version.

        The save is conditional on the version stored now: `SessionConflictError` if
        the session changed between the two, and nothing is written then.
        `NoSuchVersionError` when the session has no such version.
        """
        name = self.name(session_id)
        old = await self.load(session_id, version_id)
        if old is None:
            raise NoSuchVersionError(
                f"there is no version {version_id!r} of the session: `history()` lists them",
                bucket=self.bucket,
                key=self.s3.key(name),
            )
        head = await self.s3.head(name)
        self._remember(
            old, name, None if head is None else StoredVersion(head.version, head.writes)
        )
        await self.save(old)
        return old


class _Request:
    """One request's use of the running loop's client (`S3Objects._client()`): a class
    rather than nested generator-based context managers, as every request makes one."""

    __slots__ = ("key", "objects", "operation", "use")

    def __init__(self, objects: S3Objects, operation: str, key: str | None) -> None:
        self.objects = objects
        self.operation = operation
        self.key = key
        self.use = objects._clients.use()

    async def __aenter__(self) -> S3Client:
        try:
            return await self.use.__aenter__()
        except OtherLoopError:
            raise self.objects._other_loop_error() from None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.use.__aexit__(exc_type, exc, traceback)
        if isinstance(exc, _FAILURES):
            raise self.objects._typed(exc, self.operation, self.key) from exc


class _DamagedBody(Exception):
    """A body that arrived damaged; `__cause__` says how. Not one of `_FAILURES`:
    `_get()` reads it again."""


def _refuse_requests(client: Any, bucket: str) -> None:
    """Make a closed client refuse requests: aiobotocore would open a new aiohttp
    session inside it for one, and nothing would ever close that session."""

    def refuse(**_: Any) -> None:
        raise SessionStoreError(
            "this S3 client is closed (the store's close(), or the end of its event loop): "
            "ask the store for its client again",
            bucket=bucket,
        )

    client.meta.events.register_first("before-send.s3", refuse)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _is_conflict(exc: ClientError) -> bool:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return _code(exc) in _CONFLICT_CODES or status in (409, 412)


def _client_config(max_attempts: int, config: Config | None) -> tuple[Config, int]:
    """The client's config, and the attempts each request gets under it.

    `Config.merge` replaces `retries` whole, so a user's `Config(retries={...})`
    would silently drop standard mode: the user's retry settings are merged into
    the store's instead, and a count the user gives wins over `max_attempts`.
    """
    retries: dict[str, Any] = {"mode": "standard", "total_max_attempts": max_attempts}
    given = dict(getattr(config, "retries", None) or {})
    if "max_attempts" in given or "total_max_attempts" in given:
        del retries["total_max_attempts"]
    retries.update(given)
    merged = DEFAULT_CONFIG.merge(config or Config()).merge(Config(retries=cast(Any, retries)))
    if "total_max_attempts" in retries:
        attempts = int(retries["total_max_attempts"])
    else:
        attempts = int(retries["max_attempts"]) + 1  # botocore counts retries there
    return merged, attempts


def check_bucket_name(bucket: str) -> None:
    """`ConfigurationError` for a bucket name S3 would refuse (an access point ARN passes)."""
    if not _BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
        raise ConfigurationError(
            f"{bucket!r} is not a valid S3 bucket name: use 3 to 63 lower-case letters, "
            "digits, dots and hyphens, starting and ending with a letter or digit",
            bucket=bucket,
        )


def bucket_from_env(environ: Mapping[str, str] | None, options: dict[str, Any]) -> str:
    """The bucket the environment names, with `options` completed from it in place
    (prefix, SSE-KMS key, region); options given win over the environment."""
    env = os.environ if environ is None else environ
    bucket = env.get(ENV_BUCKET, "")
    if not bucket:
        raise ConfigurationError(
            f"{ENV_BUCKET} is not set: export the session bucket's name (the Terraform "
            "module's `environment` output gives every variable to set)"
        )
    options.setdefault("prefix", env.get(ENV_PREFIX, "sessions/"))
    if env.get(ENV_KMS_KEY_ID):
        options.setdefault("kms_key_id", env[ENV_KMS_KEY_ID])
    if env.get("AWS_REGION"):  # botocore itself reads only AWS_DEFAULT_REGION
        options.setdefault("region_name", env["AWS_REGION"])
    return bucket
