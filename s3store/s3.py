"""`S3SessionStore`: sessions as JSON objects in an S3 bucket, over one aioboto3 client."""

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
    SessionStoreError,
    StorageError,
)
from s3store.keys import events_prefix, parse_key
from s3store.models import AgentSession, SessionId
from s3store.store import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_SESSION_BYTES,
    Concurrency,
    EventLogStore,
    S,
    StoredObject,
    StoredVersion,
    conflict,
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
    "S3SessionStore",
    "SessionInfo",
    "SessionVersion",
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


@dataclass(frozen=True)
class SessionInfo:
    """What S3 knows of a stored session object, without reading its body."""

    session_id: SessionId
    key: str
    size: int
    last_modified: datetime
    etag: str
    version_id: str | None = None


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


class S3SessionStore(EventLogStore[S]):
    """Sessions as JSON objects under `prefix` in an S3 bucket.

    One aioboto3 client per event loop serves the store::

        store = S3SessionStore("my-bucket")
        await store.save(session)

    The client follows the event loop: it is opened on first use on the running
    loop and closed when that loop ends, so a store made once at module level
    serves every `asyncio.run()` of a process. `async with store:` (or `open()`
    and `close()`) gives it an explicit lifetime instead.
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
        super().__init__(
            prefix=prefix,
            model=model,
            concurrency=concurrency,
            max_session_bytes=max_session_bytes,
        )
        if not _BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
            raise ConfigurationError(
                f"{bucket!r} is not a valid S3 bucket name: use 3 to 63 lower-case letters, "
                "digits, dots and hyphens, starting and ending with a letter or digit",
                bucket=bucket,
            )
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
        self._depth = 0  # open() calls not yet matched by close(), on `_depth_loop`
        self._depth_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> Self:
        """A store configured by the environment, as the Terraform module's outputs set it.

        Reads `S3STORE_BUCKET` (required), `S3STORE_PREFIX` (default `sessions/`)
        and `S3STORE_KMS_KEY_ID` (optional: SSE-KMS with that key on every save).
        The endpoint, region and credentials come from AWS's own variables
        (`AWS_ENDPOINT_URL`, `AWS_REGION` or `AWS_DEFAULT_REGION`, `AWS_PROFILE`,
        ...). Keyword options are passed on to the constructor and win over the
        environment.
        """
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
        return cls(bucket, **options)

    def __repr__(self) -> str:
        return f"S3SessionStore(bucket={self.bucket!r}, prefix={self.prefix!r})"

    # -- lifetime -------------------------------------------------------------

    async def __aenter__(self) -> S3SessionStore[S]:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Open the client on the running event loop now, rather than on first use.

        `async with store:` calls this, and `close()` at its end; nested and
        concurrent `async with` blocks on one loop share one client, closed when
        the last of them ends.
        """
        await self._client()
        loop = asyncio.get_running_loop()
        self._depth = self._depth + 1 if self._depth_loop is loop else 1
        self._depth_loop = loop

    async def close(self) -> None:
        """Close the running loop's client now (or, inside nested `async with`
        blocks, when the outermost ends). A later use opens a new one."""
        if self._depth_loop is asyncio.get_running_loop() and self._depth > 1:
            self._depth -= 1
            return
        self._depth = 0
        await self._clients.close()

    async def _client(self) -> S3Client:
        """The client of the running event loop, opened on first use (see `_loopbound`)."""
        try:
            return await self._clients.get()
        except OtherLoopError:
            raise SessionStoreError(
                "this store's client is open on another event loop that is still running: "
                "make one store per event loop (per thread)",
                bucket=self.bucket,
            ) from None

    async def _open_client(self, stack: AsyncExitStack) -> S3Client:
        try:
            # aioboto3 returns aiobotocore's coroutine here; its stubs say otherwise.
            credentials = await cast(Awaitable[object], self._session.get_credentials())
            if credentials is None:
                raise ConfigurationError(_NO_CREDENTIALS, bucket=self.bucket)
            context = self._session.client("s3", **self._client_options)
            client = await context.__aenter__()
            stack.push_async_exit(context.__aexit__)
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

    # -- the four primitives ---------------------------------------------------

    async def _get(self, key: str, version_id: str | None = None) -> StoredObject | None:
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
        client = await self._client()
        with self._errors("GetObject", key):
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
                raise
            stream = response["Body"]
            # Read through botocore's wrapper, not what `async with` returns: that is
            # the bare aiohttp response, which skips the checksum and length checks.
            async with stream:
                if response["ContentLength"] > self.max_session_bytes:
                    size = response["ContentLength"]
                    raise self._too_large(f"stored object is {size:,} bytes", key)
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
            data = inflate.decompress(body, self.max_session_bytes + 1)
        except zlib.error as exc:
            raise self._corrupt(f"is not valid gzip ({exc})", body, key) from None
        if len(data) > self.max_session_bytes:
            raise self._too_large("stored session is larger once decompressed", key)
        if not inflate.eof:
            raise self._corrupt("is a truncated gzip stream", body, key)
        return data

    async def _put(
        self,
        key: str,
        body: bytes,
        *,
        if_match: str | None,
        if_absent: bool,
        writes: tuple[str, ...] = (),
    ) -> str:
        client = await self._client()
        options: dict[str, Any] = {**self._encryption}
        if writes:
            options["Metadata"] = {METADATA_KEY: encode(writes)}
        if if_match is not None:
            options["IfMatch"] = if_match
        if if_absent:
            options["IfNoneMatch"] = "*"
        payload = body
        if self._gzip_above_bytes is not None and len(body) > self._gzip_above_bytes:
            payload = gzip.compress(body, mtime=0)  # mtime=0: the same session, the same bytes
            options["ContentEncoding"] = "gzip"
        with self._errors("PutObject", key):
            try:
                response = await client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=payload,
                    ContentType="application/json",
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

    async def _stored_version(self, key: str) -> StoredVersion | None:
        head = await self._head(key)
        if head is None:
            return None
        return StoredVersion(str(head["ETag"]), decode(head["Metadata"].get(METADATA_KEY)))

    async def _head(self, key: str) -> Any:
        """The HeadObject answer for `key`, or None when there is no object."""
        client = await self._client()
        with self._errors("HeadObject", key):
            try:
                return await client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _code(exc) in ("404", "NoSuchKey"):
                    return None
                raise

    async def _list_keys(self) -> builtins.list[str]:
        return [item["Key"] async for item in self._listing()]

    async def _listing(self) -> AsyncIterator[Any]:
        client = await self._client()
        with self._errors("ListObjectsV2", None):
            paginator = client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(
                Bucket=self.bucket, Prefix=self.prefix, Delimiter="/"
            ):
                for item in page.get("Contents", ()):
                    yield item

    async def _keys_after(
        self, folder: str, start_after: str | None, limit: int
    ) -> builtins.list[str]:
        client = await self._client()
        after: dict[str, Any] = {} if start_after is None else {"StartAfter": start_after}
        with self._errors("ListObjectsV2", None):
            page = await client.list_objects_v2(
                Bucket=self.bucket, Prefix=folder, MaxKeys=limit, **after
            )
        return [item["Key"] for item in page.get("Contents", ())]

    async def _delete(self, key: str) -> None:
        client = await self._client()
        self._uncache(key)
        with self._errors("DeleteObject", key):
            await client.delete_object(Bucket=self.bucket, Key=key)

    def _uncache(self, key: str) -> None:
        if self._cache is not None:
            self._cache.evict(key)

    # -- bulk -------------------------------------------------------------------

    def _default_concurrency(self) -> int:
        pool = self._client_options["config"].max_pool_connections
        return int(pool) if pool else DEFAULT_CONCURRENCY

    async def delete_many(
        self, session_ids: Iterable[SessionId], *, concurrency: int | None = None
    ) -> None:
        """Delete many sessions with DeleteObjects, 1,000 keys a request.

        At most `concurrency` requests are in flight. Absent sessions are not an
        error. Keys S3 could not delete, and every key of a request that failed
        as a whole, are raised together in one `BulkOperationError`; every other
        key is deleted.
        """
        ids = builtins.list(dict.fromkeys(session_ids))
        id_of = {self._key(session_id): session_id for session_id in ids}
        keys = builtins.list(id_of)
        errors: dict[SessionId, SessionStoreError] = {}

        async def delete_batch(start: int) -> None:
            batch = keys[start : start + _DELETE_BATCH]
            for key in batch:
                self._uncache(key)
            try:
                failures = await self._delete_objects([{"Key": key} for key in batch], None)
            except SessionStoreError as exc:
                errors.update((id_of[key], exc) for key in batch)
                return
            for failure in failures:
                key = failure.get("Key", "")
                if key in id_of:
                    errors[id_of[key]] = self._key_failure(failure, key)

        await self._each(
            builtins.list(range(0, len(keys), _DELETE_BATCH)), delete_batch, concurrency
        )
        if errors:
            raise self._bulk_error("delete_many", ids, errors)

    # -- for operators --------------------------------------------------------

    async def stat(self, session_id: SessionId) -> SessionInfo | None:
        """Size, time and version of a stored session (a HeadObject), or None."""
        key = self._key(session_id)
        head = await self._head(key)
        if head is None:
            return None
        return SessionInfo(
            session_id,
            key,
            head["ContentLength"],
            head["LastModified"],
            head["ETag"],
            head.get("VersionId"),
        )

    async def list_info(self) -> builtins.list[SessionInfo]:
        """Like `list()`, with each object's size, time and ETag, from the listing alone."""
        infos = []
        async for item in self._listing():
            session_id = parse_key(self.prefix, item["Key"])
            if session_id is not None:
                infos.append(
                    SessionInfo(
                        session_id, item["Key"], item["Size"], item["LastModified"], item["ETag"]
                    )
                )
        return infos

    async def purge(self, session_id: SessionId) -> Purged:
        """Erase a session for good: every version and delete marker of its object,
        and every version of every one of its events.

        `delete()` in a versioned bucket only adds a delete marker, and the old
        versions stay recoverable; it also leaves the events, the audit trail.
        `purge()` is the right to erasure. It needs `s3:ListBucketVersions` and
        `s3:DeleteObjectVersion` (the Terraform module's eraser policy). In an
        unversioned bucket it deletes the objects.
        """
        key = self._key(session_id)
        snapshot = [item async for item in self._versions(key) if item["Key"] == key]
        events = [item async for item in self._versions(events_prefix(self.prefix, session_id))]
        doomed = [
            {"Key": item["Key"], "VersionId": item["VersionId"]} for item in snapshot + events
        ]
        for start in range(0, len(doomed), _DELETE_BATCH):
            failures = await self._delete_objects(doomed[start : start + _DELETE_BATCH], key)
            if failures:
                left = f"{len(failures)} version(s) left in place, run purge again"
                raise self._key_failure(
                    failures[0], key, f"{left}: {failures[0].get('Message', '')}"
                )
        markers = sum(1 for item in snapshot if item["IsDeleteMarker"])
        return Purged(versions=len(snapshot) - markers, delete_markers=markers, events=len(events))

    async def history(self, session_id: SessionId) -> builtins.list[SessionVersion]:
        """Every stored version of the session, newest first (delete markers left out).

        Needs a versioned bucket (the Terraform module turns versioning on) and
        `s3:ListBucketVersions`; in an unversioned bucket, `ConfigurationError`.
        """
        key = self._key(session_id)
        found = [
            item
            async for item in self._versions(key)
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
        key = self._key(session_id)
        stored = await self._get(key, version_id)
        if stored is None:
            return None
        session = self._decode(stored.body, key, session_id)
        self._remember(session, key, stored.version, stored.writes)
        return session

    async def restore(self, session_id: SessionId, version_id: str) -> S:
        """Make a version from `history()` the current session again, as a new version.

        The save is conditional on the version stored now: `SessionConflictError` if
        the session changed between the two, and nothing is written then.
        """
        key = self._key(session_id)
        old = await self.load(session_id, version_id)
        if old is None:
            raise StorageError(
                f"there is no version {version_id!r} of the session: `history()` lists them",
                operation="GetObject",
                code="NoSuchVersion",
                bucket=self.bucket,
                key=key,
            )
        await self._save(old, key, await self._stored_version(key))
        return old

    async def _versions(self, prefix: str) -> AsyncIterator[dict[str, Any]]:
        """Every version and delete marker under `prefix`, each with `IsDeleteMarker`."""
        client = await self._client()
        with self._errors("ListObjectVersions", prefix):
            paginator = client.get_paginator("list_object_versions")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for version in page.get("Versions", ()):
                    yield {**version, "IsDeleteMarker": False}
                for marker in page.get("DeleteMarkers", ()):
                    yield {**marker, "IsDeleteMarker": True}

    async def _delete_objects(self, objects: builtins.list[Any], key: str | None) -> Any:
        """One quiet DeleteObjects request; the per-key failures S3 reports."""
        client = await self._client()
        with self._errors("DeleteObjects", key):
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

    def _bucket_name(self) -> str:
        return self.bucket

    # -- errors --------------------------------------------------------------------

    @contextmanager
    def _errors(self, operation: str, key: str | None) -> Iterator[None]:
        """Turn botocore and aiohttp failures into s3store's typed errors."""
        try:
            yield
        except ClientError as exc:
            raise self._client_error(exc, operation, key) from exc
        except NoCredentialsError as exc:
            raise ConfigurationError(_NO_CREDENTIALS, bucket=self.bucket, key=key) from exc
        except (BotoCoreError, aiohttp.ClientError, asyncio.TimeoutError) as exc:
            # botocore retries connection failures and timeouts up to max_attempts.
            raise StorageError(
                f"{operation} failed after up to {self._max_attempts} attempts: "
                f"{exc or type(exc).__name__}",
                operation=operation,
                bucket=self.bucket,
                key=key,
            ) from exc

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


class _DamagedBody(Exception):
    """A body that arrived damaged; `__cause__` says how. Kept from `_errors()`."""


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
