"""`S3SessionStore`: sessions as JSON objects in an S3 bucket, over one aioboto3 client."""

from __future__ import annotations

import asyncio
import builtins
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

import aioboto3
import aiohttp
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from s3store.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    ConfigurationError,
    SessionStoreError,
    StorageError,
)
from s3store.keys import parse_key
from s3store.models import AgentSession, SessionId
from s3store.store import Concurrency, S, SessionStore, StoredObject, conflict

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from typing_extensions import Self

__all__ = ["DEFAULT_CONFIG", "ENV_BUCKET", "ENV_PREFIX", "Purged", "S3SessionStore", "SessionInfo"]

ENV_BUCKET = "S3STORE_BUCKET"
"""The environment variable `S3SessionStore.from_env()` reads the bucket name from."""
ENV_PREFIX = "S3STORE_PREFIX"
"""The environment variable `S3SessionStore.from_env()` reads the key prefix from."""

DEFAULT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=5,
    read_timeout=15,
)
"""The client settings a store starts from; a `config` passed to the store is merged over it."""

_ACCESS_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "KMS.AccessDeniedException",
    }
)
_CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})


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
    """What `purge()` removed: object versions and delete markers."""

    versions: int
    delete_markers: int


class S3SessionStore(SessionStore[S]):
    """Sessions as JSON objects under `prefix` in an S3 bucket.

    One aioboto3 client serves the store while it is open::

        async with S3SessionStore("my-bucket") as store:
            await store.save(session)

    The client belongs to the event loop that opened it. A store made once at
    module level can be opened again on each new loop, as a Lambda handler that
    calls `asyncio.run()` per invocation does: open it with `async with` inside
    each invocation.
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
    ) -> None:
        super().__init__(prefix=prefix, model=model, concurrency=concurrency)
        self.bucket = bucket
        self._session = session or aioboto3.Session()
        self._client_options: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "region_name": region_name,
            "config": DEFAULT_CONFIG.merge(config) if config else DEFAULT_CONFIG,
        }
        self._client: S3Client | None = None
        self._client_context: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._depth = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> Self:
        """A store configured by the environment, as the Terraform module's outputs set it.

        Reads `S3STORE_BUCKET` (required) and `S3STORE_PREFIX` (default `sessions/`).
        The endpoint, region and credentials come from AWS's own variables
        (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_PROFILE`, ...). Keyword options
        are passed on to the constructor and win over the environment.
        """
        env = os.environ if environ is None else environ
        bucket = env.get(ENV_BUCKET, "")
        if not bucket:
            raise ConfigurationError(
                f"{ENV_BUCKET} is not set: export the session bucket's name (the Terraform "
                "module's `environment` output gives every variable to set)"
            )
        options.setdefault("prefix", env.get(ENV_PREFIX, "sessions/"))
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
        """Open the client on the running event loop (`async with` calls this)."""
        loop = asyncio.get_running_loop()
        if self._client is not None and self._loop is not loop:
            if self._loop is not None and not self._loop.is_closed():
                raise SessionStoreError(
                    "this store is open on another, still running event loop: close it "
                    "there first, or make one store per loop",
                    bucket=self.bucket,
                )
            # That loop ended without closing us; its connections ended with it.
            self._forget_client()
        if self._client is None:
            self._client_context = self._session.client("s3", **self._client_options)
            self._client = await self._client_context.__aenter__()
            self._loop = loop
        self._depth += 1

    async def close(self) -> None:
        """Close the client once every `open()` has been matched by a `close()`."""
        if self._depth == 0:
            return
        self._depth -= 1
        if self._depth == 0 and self._client_context is not None:
            context = self._client_context
            self._forget_client()
            await context.__aexit__(None, None, None)

    def _forget_client(self) -> None:
        self._client = self._client_context = self._loop = None
        self._depth = 0

    def _open_client(self) -> S3Client:
        if self._client is None or self._loop is not asyncio.get_running_loop():
            raise SessionStoreError(
                "the store is not open on this event loop: use `async with store:` around "
                "the work (once per asyncio.run() call)",
                bucket=self.bucket,
            )
        return self._client

    # -- the four primitives ---------------------------------------------------

    async def _get(self, key: str) -> StoredObject | None:
        client = self._open_client()
        with self._errors("GetObject", key):
            try:
                response = await client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _code(exc) == "NoSuchKey":
                    return None
                raise
            async with response["Body"] as stream:
                body = await stream.read()
        return StoredObject(body, response["ETag"])

    async def _put(self, key: str, body: bytes, *, if_match: str | None, if_absent: bool) -> str:
        client = self._open_client()
        conditions: dict[str, Any] = {}
        if if_match is not None:
            conditions["IfMatch"] = if_match
        if if_absent:
            conditions["IfNoneMatch"] = "*"
        with self._errors("PutObject", key):
            try:
                response = await client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentType="application/json",
                    **conditions,
                )
            except ClientError as exc:
                # S3 answers If-Match on a deleted object with 404: a conflict too.
                if if_match is not None and _code(exc) == "NoSuchKey":
                    raise conflict(bucket=self.bucket, key=key) from None
                raise
        return response["ETag"]

    async def _list_keys(self) -> builtins.list[str]:
        return [item["Key"] async for item in self._listing()]

    async def _listing(self) -> AsyncIterator[Any]:
        client = self._open_client()
        with self._errors("ListObjectsV2", None):
            paginator = client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(
                Bucket=self.bucket, Prefix=self.prefix, Delimiter="/"
            ):
                for item in page.get("Contents", ()):
                    yield item

    async def _delete(self, key: str) -> None:
        client = self._open_client()
        with self._errors("DeleteObject", key):
            await client.delete_object(Bucket=self.bucket, Key=key)

    # -- for operators --------------------------------------------------------

    async def stat(self, session_id: SessionId) -> SessionInfo | None:
        """Size, time and version of a stored session (a HeadObject), or None."""
        key = self._key(session_id)
        client = self._open_client()
        with self._errors("HeadObject", key):
            try:
                head = await client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _code(exc) in ("404", "NoSuchKey"):
                    return None
                raise
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
        """Erase a session for good: every version and delete marker of its object.

        `delete()` in a versioned bucket only adds a delete marker, and the old
        versions stay recoverable; `purge()` is the right to erasure. It needs
        `s3:ListBucketVersions` and `s3:DeleteObjectVersion` (the Terraform
        module's eraser policy). In an unversioned bucket it deletes the object.
        """
        key = self._key(session_id)
        client = self._open_client()
        versions: builtins.list[dict[str, str]] = []
        markers = 0
        with self._errors("ListObjectVersions", key):
            paginator = client.get_paginator("list_object_versions")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=key):
                for item in (*page.get("Versions", ()), *page.get("DeleteMarkers", ())):
                    if item["Key"] == key:
                        versions.append({"Key": key, "VersionId": item["VersionId"]})
                markers += sum(1 for item in page.get("DeleteMarkers", ()) if item["Key"] == key)
        with self._errors("DeleteObjects", key):
            for start in range(0, len(versions), 1000):
                response = await client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": versions[start : start + 1000], "Quiet": True},  # type: ignore[typeddict-item]
                )
                if response.get("Errors"):
                    error = response["Errors"][0]
                    raise StorageError(
                        f"DeleteObjects left {len(response['Errors'])} version(s) in place: "
                        f"{error.get('Code')} {error.get('Message')}; run purge again",
                        operation="DeleteObjects",
                        code=error.get("Code"),
                        bucket=self.bucket,
                        key=key,
                    )
        return Purged(versions=len(versions) - markers, delete_markers=markers)

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
            raise AccessDeniedError(
                "no AWS credentials were found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or run under a role that provides them",
                bucket=self.bucket,
                key=key,
            ) from exc
        except (BotoCoreError, aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise StorageError(
                f"{operation} failed: {exc or type(exc).__name__}",
                operation=operation,
                bucket=self.bucket,
                key=key,
            ) from exc

    def _client_error(self, exc: ClientError, operation: str, key: str | None) -> Exception:
        code = _code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket":
            return BucketNotFoundError(
                "the bucket does not exist: create it (terraform/ provisions one) or fix the "
                "bucket name",
                bucket=self.bucket,
                key=key,
            )
        if code in _ACCESS_DENIED_CODES or status == 403:
            return AccessDeniedError(
                f"S3 denied {operation} ({code}): grant these credentials access to the "
                "session prefix (terraform/ outputs the agent policy) or use other credentials",
                bucket=self.bucket,
                key=key,
            )
        if key is not None and (code in _CONFLICT_CODES or status in (409, 412)):
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


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
