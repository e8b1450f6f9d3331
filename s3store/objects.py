"""The object layer: any document under a store's bucket and prefix, as bytes.

Everything s3store promises about a session holds here for any object, so that a
framework's own documents (a Strands session, an ADK session, a LangGraph
checkpoint) get it too:

- `read()` returns the bytes with the version to build on (S3's ETag) and the
  object's write history (see `s3store.writes`); None when there is no object.
- `write()` is create-only, conditional on a version, or unconditional. Every
  write records its token in the write history, so when a conditional write's
  answer is lost and its retry meets another version, the history says whether
  it landed (success), did not (`SessionConflictError`), or can no longer be
  told (`WriteOutcomeUnknownError`).
- `update()` is the read-modify-write loop: retried on conflict with jittered
  backoff, once per idempotency key, for bytes or any document a `Codec` reads
  and writes (a pydantic model: `ModelCodec`).
- `head()`, `delete()`, and `iter_objects()`, a listing that pages as it is consumed.

Names are relative to the prefix: `objects.read("a/b.json")` reads
`<prefix>a/b.json`, and no name reaches outside the prefix. Every failure is a
`SessionStoreError` naming the bucket and key. `InMemoryObjects` is the twin for
unit tests; `s3store.s3.S3Objects` keeps the objects in S3.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import random
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, Generic, NamedTuple, Protocol, TypeVar, overload

from pydantic import BaseModel, ValidationError
from typing_extensions import Self

from s3store.errors import (
    ConfigurationError,
    CorruptSessionError,
    InvalidSessionError,
    SessionConflictError,
    SessionStoreError,
    SessionTooLargeError,
    WriteOutcomeUnknownError,
)
from s3store.keys import MAX_KEY_BYTES, normalize_prefix
from s3store.writes import Outcome, extend, key_token, new_token, outcome

__all__ = [
    "BYTES",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_OBJECT_BYTES",
    "SUPERSEDED",
    "Codec",
    "InMemoryObjects",
    "ModelCodec",
    "ObjectHead",
    "ObjectInfo",
    "Objects",
    "StoredObject",
    "StoredVersion",
    "Updated",
    "Versioned",
    "each",
]

D = TypeVar("D")
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

DEFAULT_CONCURRENCY = 64
"""Requests a bulk operation keeps in flight when not told otherwise (S3: the pool size)."""

DEFAULT_MAX_OBJECT_BYTES = 8 * 1024 * 1024
"""The largest object a store writes or reads by default: 8 MiB.

Parsed, such a session takes several times that in memory, which still fits a
512 MB Lambda function with room to work; raise it where memory allows."""

SUPERSEDED = ""
"""The version of a write that landed but was built on by others since (its answer
was lost, and later writes followed it): writing over it is a conflict, without a
request."""


class Versioned(Protocol):
    """What a conditional write builds on: a version and its write history."""

    @property
    def version(self) -> str: ...

    @property
    def writes(self) -> tuple[str, ...]: ...


class StoredVersion(NamedTuple):
    """An object's version (S3's ETag, or `SUPERSEDED`) and write history."""

    version: str
    writes: tuple[str, ...]


class StoredObject:
    """An object's bytes, the version they were stored under, and its write history."""

    __slots__ = ("body", "version", "writes")

    def __init__(self, body: bytes, version: str, writes: tuple[str, ...] = ()) -> None:
        self.body = body
        self.version = version
        self.writes = writes


@dataclass(frozen=True)
class ObjectHead:
    """What a HeadObject tells of an object, without its bytes; a base for `write()`."""

    version: str
    writes: tuple[str, ...]
    size: int
    last_modified: datetime
    version_id: str | None = None


@dataclass(frozen=True)
class ObjectInfo:
    """An object as a listing names it: no write history, so not a base for `write()`."""

    name: str
    key: str
    size: int
    last_modified: datetime
    etag: str


@dataclass(frozen=True)
class Updated(Generic[D]):
    """What `update()` stored (or found stored, for an idempotency key already applied)."""

    document: D
    version: StoredVersion


class Codec(Protocol[D]):
    """Reads and writes one kind of document. A `ValueError` (pydantic's
    `ValidationError` is one) from `decode` makes a `CorruptSessionError`, from
    `encode` an `InvalidSessionError`; a `SessionStoreError` passes through."""

    def decode(self, body: bytes) -> D: ...

    def encode(self, document: D) -> bytes: ...


class _Bytes:
    def decode(self, body: bytes) -> bytes:
        return body

    def encode(self, document: bytes) -> bytes:
        return document


BYTES: Codec[bytes] = _Bytes()
"""The codec of raw bytes: what `update()` uses when given none."""


class ModelCodec(Generic[M]):
    """A pydantic model as its JSON: `objects.update(name, fn, codec=ModelCodec(Doc))`."""

    def __init__(self, model: type[M]) -> None:
        self.model = model

    def decode(self, body: bytes) -> M:
        return self.model.model_validate_json(body)

    def encode(self, document: M) -> bytes:
        return document.model_dump_json().encode()


def conflict(*, bucket: str | None, key: str) -> SessionConflictError:
    """The error for a conditional write that found another version stored."""
    return SessionConflictError(
        "not saved: the stored object was created, changed or deleted since this copy "
        "was loaded. Load it again and reapply the change, or use update(), which retries",
        bucket=bucket,
        key=key,
    )


async def each(
    items: list[T], fn: Callable[[T], Awaitable[None]], concurrency: int
) -> dict[T, SessionStoreError]:
    """Run `fn` on every item with at most `concurrency` in flight; collect store errors.

    A fixed set of workers pulls from one iterator, rather than a task per item
    waiting on a semaphore: 10,000 items cost 64 tasks, not 10,000. Anything that
    is not a `SessionStoreError` (a bug, a cancellation) stops the whole batch.
    """
    if concurrency < 1:
        raise ConfigurationError(f"concurrency must be at least 1, not {concurrency}")
    errors: dict[T, SessionStoreError] = {}
    pending = iter(items)

    async def work() -> None:
        for item in pending:
            try:
                await fn(item)
            except SessionStoreError as exc:
                errors[item] = exc

    workers = [asyncio.ensure_future(work()) for _ in range(min(concurrency, len(items)))]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise
    return errors


class Objects(ABC):
    """Objects under one bucket and prefix; see the module's docs for what holds.

    A backend provides the primitives (`_get`, `_put`, `_head`, `_page`,
    `_delete`); everything else, the write history, lost answers and `update()`,
    is here, the same for every backend.
    """

    def __init__(
        self,
        *,
        prefix: str = "sessions/",
        max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES,
    ) -> None:
        self.prefix = normalize_prefix(prefix)
        self.max_object_bytes = max_object_bytes

    @property
    def bucket_name(self) -> str | None:
        """The bucket, for error messages; None in memory."""
        return None

    @property
    def default_concurrency(self) -> int:
        """How many requests a bulk operation keeps in flight by default."""
        return DEFAULT_CONCURRENCY

    def key(self, name: str) -> str:
        """The object key of `name`: `<prefix><name>`, within S3's length limit."""
        key = self.prefix + name
        if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
            raise ConfigurationError(
                f"the key {key[:60]!r}... is over S3's limit of {MAX_KEY_BYTES} bytes: "
                "use a shorter name or prefix",
                bucket=self.bucket_name,
            )
        return key

    # -- lifetime: a backend with connections closes them -------------------------

    @abstractmethod
    async def open(self) -> None:
        """Get ready now rather than on first use (S3: open the client)."""

    @abstractmethod
    async def close(self) -> None:
        """Release what `open()` or the first use took; a later use takes it again."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # -- reading -------------------------------------------------------------------

    async def read(self, name: str, *, version_id: str | None = None) -> StoredObject | None:
        """The object's bytes, version and write history; None when there is none.

        `version_id` reads an older version of a versioned bucket (S3 only).
        Raises `SessionTooLargeError` for an object over `max_object_bytes`.
        """
        return await self._get(self.key(name), version_id)

    async def head(self, name: str) -> ObjectHead | None:
        """The object's version, write history and size, without its bytes; None
        when there is none."""
        return await self._head(self.key(name))

    async def iter_objects(
        self,
        folder: str = "",
        *,
        after: str | None = None,
        limit: int | None = None,
        recursive: bool = False,
    ) -> AsyncIterator[ObjectInfo]:
        """The objects whose names start with `folder`, in name order, fetched a
        page at a time as they are consumed (S3: 1,000 a request, or `limit`).

        `after` (a name) starts after it; `recursive=False` leaves out names with
        a `/` past `folder`, as a folder listing does.
        """
        if limit is not None and limit < 0:
            raise ConfigurationError(f"limit must be at least 0, not {limit}")
        prefix = self.key(folder)
        start = None if after is None else self.key(after)
        token = None
        left = limit
        while left is None or left > 0:
            size = 1000 if left is None else min(left, 1000)
            page, token = await self._page(prefix, start, token, size, recursive)
            for info in page:
                yield info
            if token is None:
                return
            if left is not None:
                left -= len(page)

    # -- writing -------------------------------------------------------------------

    async def write(
        self,
        name: str,
        body: bytes,
        *,
        base: Versioned | None,
        conditional: bool = True,
        idempotency_key: str | None = None,
        content_type: str = "application/json",
    ) -> StoredVersion:
        """Store `body` under `name` and return its version.

        `conditional` (the default): only over `base`, the version it was built
        on (`read()`'s or `head()`'s result, or an earlier `write()`'s), or,
        with `base=None`, only if nothing is stored (create-only). A failed
        condition is a `SessionConflictError` (nothing of this write is stored),
        unless the write history shows this very write landed before its answer
        was lost: then it succeeded. `conditional=False` writes whatever is
        stored; `base` then only carries the history on.

        `idempotency_key` records the key's token in the history (see
        `update()`); otherwise the write's token is random.
        """
        token = new_token() if idempotency_key is None else key_token(idempotency_key)
        version, _ = await self._write(self.key(name), body, base, conditional, token, content_type)
        return version

    @overload
    async def update(
        self,
        name: str,
        fn: Callable[[bytes | None], bytes | Awaitable[bytes]],
        *,
        attempts: int = 8,
        idempotency_key: str | None = None,
    ) -> Updated[bytes]: ...

    @overload
    async def update(
        self,
        name: str,
        fn: Callable[[D | None], D | Awaitable[D]],
        *,
        codec: Codec[D],
        attempts: int = 8,
        idempotency_key: str | None = None,
    ) -> Updated[D]: ...

    async def update(
        self,
        name: str,
        fn: Callable[[Any], Any],
        *,
        codec: Codec[Any] = BYTES,
        attempts: int = 8,
        idempotency_key: str | None = None,
    ) -> Updated[Any]:
        """Read, apply `fn`, write conditionally; on conflict read again and retry.

        `fn` gets the stored document (decoded by `codec`), or None when there is
        none, and returns the document to store; it may change it in place, and
        may be async. Its change is stored at most once: a write whose answer was
        lost is recognised from the write history and not applied again. `fn`
        runs again only after a conflict, when its earlier result was definitely
        not stored, so keep side effects out of it. Retries wait with jittered
        exponential backoff, from the attempt's own length.

        `idempotency_key` (a Lambda request id, a queue message id) makes the
        change once per key: when the stored history records the key, the stored
        document is returned and `fn` is not called, also when a duplicate of this
        call, running at the same time, stored it first.

        Raises `SessionConflictError` when the last of `attempts` still conflicts
        (nothing of this call was stored), `WriteOutcomeUnknownError` when a lost
        answer's outcome can no longer be told.
        """
        if attempts < 1:
            raise ConfigurationError(f"attempts must be at least 1, not {attempts}")
        key = self.key(name)
        token = new_token() if idempotency_key is None else key_token(idempotency_key)
        loop = asyncio.get_running_loop()
        for attempt in range(attempts):
            started = loop.time()
            stored = await self._get(key, None)
            current = None if stored is None else self.decode(codec, stored.body, key)
            if stored is not None and idempotency_key is not None and token in stored.writes:
                return Updated(current, StoredVersion(stored.version, stored.writes))
            changed = fn(current)
            document = await changed if inspect.isawaitable(changed) else changed
            body = self.encode(codec, document, key)
            try:
                version, resolved = await self._write(
                    key, body, stored, True, token, "application/json"
                )
            except SessionConflictError:
                if attempt == attempts - 1:
                    raise
                # The window doubles from the attempt's own length, not a fixed step:
                # rivals drift apart however slow the network, the machine or `fn`.
                window = max(0.01, loop.time() - started) * 2**attempt
                await asyncio.sleep(random.uniform(0, min(1.0, window)))
                continue
            if not resolved or idempotency_key is None:
                return Updated(document, version)
            # A write with this key landed, but maybe a duplicate's rather than this
            # call's: return what is stored, never this call's unstored result.
            stored = await self._get(key, None)
            if stored is not None and token in stored.writes:
                current = self.decode(codec, stored.body, key)
                return Updated(current, StoredVersion(stored.version, stored.writes))
        raise conflict(bucket=self.bucket_name, key=key)

    async def delete(self, name: str) -> None:
        """Delete the object, if there is one (in a versioned bucket: a delete marker)."""
        await self._delete(self.key(name))

    async def delete_many(
        self, names: Iterable[str], *, concurrency: int | None = None
    ) -> dict[str, SessionStoreError]:
        """Delete many objects; returns the failures by name (the rest are deleted)."""
        wanted = list(dict.fromkeys(names))
        for name in wanted:
            self.key(name)  # a name S3 would refuse fails here, before any request

        async def delete(name: str) -> None:
            await self._delete(self.key(name))

        return await each(wanted, delete, concurrency or self.default_concurrency)

    # -- documents --------------------------------------------------------------------

    def decode(self, codec: Codec[D], body: bytes, key: str) -> D:
        """`codec.decode(body)`, a `CorruptSessionError` naming the key if it fails."""
        try:
            return codec.decode(body)
        except SessionStoreError:
            raise
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
            where = ".".join(str(part) for part in first["loc"]) or "the top level"
            raise self.corrupt(f"cannot be read ({first['msg']} at {where})", body, key) from None
        except ValueError as exc:
            raise self.corrupt(f"cannot be read ({exc})", body, key) from None

    def encode(self, codec: Codec[D], document: D, key: str) -> bytes:
        """`codec.encode(document)`, an `InvalidSessionError` naming the key if it fails."""
        try:
            return codec.encode(document)
        except SessionStoreError:
            raise
        except ValueError as exc:
            raise InvalidSessionError(
                f"the document cannot be stored ({exc}). Nothing was written: fix it",
                path="",
                bucket=self.bucket_name,
                key=key,
            ) from None

    def corrupt(self, problem: str, body: bytes, key: str) -> CorruptSessionError:
        """The error for a stored object that is not what it should be; it stays stored."""
        return CorruptSessionError(
            f"the stored object {problem}. It was left in place: inspect `.raw`, then fix "
            "or delete it",
            raw=body,
            bucket=self.bucket_name,
            key=key,
        )

    def too_large(self, what: str, key: str) -> SessionTooLargeError:
        return SessionTooLargeError(
            f"the {what}, over this store's max_session_bytes of {self.max_object_bytes:,}: "
            "trim the session (old messages, inline images) or raise max_session_bytes",
            bucket=self.bucket_name,
            key=key,
        )

    # -- the write history ---------------------------------------------------------

    async def _write(
        self,
        key: str,
        body: bytes,
        base: Versioned | None,
        conditional: bool,
        token: str,
        content_type: str,
    ) -> tuple[StoredVersion, bool]:
        """Write with `token`; the version, and whether a failed condition was
        resolved as this token's write having landed."""
        if conditional and base is not None and base.version == SUPERSEDED:
            raise conflict(bucket=self.bucket_name, key=key)
        if len(body) > self.max_object_bytes:
            raise self.too_large(f"object is {len(body):,} bytes", key)
        writes = extend(token, base.writes if base is not None else ())
        try:
            version = await self._put(
                key,
                body,
                if_match=base.version if conditional and base is not None else None,
                if_absent=conditional and base is None,
                writes=writes,
                content_type=content_type,
            )
        except SessionConflictError:
            return await self._lost_answer_outcome(key, token, base), True
        return StoredVersion(version, writes), False

    async def _lost_answer_outcome(
        self, key: str, token: str, base: Versioned | None
    ) -> StoredVersion:
        """After a failed condition: the version if the write landed after all (an
        earlier attempt whose answer was lost), else the error to raise."""
        stored = await self._head(key)
        base_writes = base.writes if base is not None else ()
        found = outcome(token, base_writes, None if stored is None else stored.writes)
        if found is Outcome.CURRENT and stored is not None:
            return StoredVersion(stored.version, stored.writes)
        if found is Outcome.SUPERSEDED and stored is not None:
            return StoredVersion(SUPERSEDED, stored.writes)
        if found is Outcome.NOT_LANDED:
            raise conflict(bucket=self.bucket_name, key=key)
        raise WriteOutcomeUnknownError(
            "the write's answer was lost, and so many writes were built on the stored "
            "object since that its write history no longer tells whether this one "
            "landed. Read it and check for the change before making it again",
            bucket=self.bucket_name,
            key=key,
        )

    # -- what a backend provides -----------------------------------------------------

    @abstractmethod
    async def _get(self, key: str, version_id: str | None) -> StoredObject | None:
        """The object under `key`, or None when there is none."""

    @abstractmethod
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
        """Write `body` under `key`, with its write history, and return its new version.

        `if_match`: write only if the stored version is this one. `if_absent`:
        write only if nothing is stored. A failed condition raises
        `SessionConflictError`, whether or not an earlier, unanswered attempt of
        the same request landed: `_write()` tells those apart.
        """

    @abstractmethod
    async def _head(self, key: str) -> ObjectHead | None:
        """The version, write history and size stored under `key`, or None."""

    @abstractmethod
    async def _page(
        self, prefix: str, start_after: str | None, token: str | None, limit: int, recursive: bool
    ) -> tuple[list[ObjectInfo], str | None]:
        """Up to `limit` objects whose keys start with `prefix`, in key order: after
        `start_after`, or where `token` (from the page before) says; and the token of
        the next page, None at the end. Without `recursive`, no key with a `/` past
        `prefix` (a page may then hold fewer than `limit`, even none)."""

    @abstractmethod
    async def _delete(self, key: str) -> None:
        """Delete the object under `key`, if any."""


class _Entry(NamedTuple):
    stored: StoredObject
    last_modified: datetime


class InMemoryObjects(Objects):
    """Objects in this process's memory, with S3's semantics.

    It keeps bytes, so changing a document after writing or reading it never
    changes what is stored, and versions behave as S3's ETags do (the MD5 of the
    bytes): unit tests meet the same conflicts as production. `peer()` gives a
    second view of the same objects, as a second process sees one bucket.
    """

    def __init__(
        self,
        *,
        prefix: str = "sessions/",
        max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES,
    ) -> None:
        super().__init__(prefix=prefix, max_object_bytes=max_object_bytes)
        self._entries: dict[str, _Entry] = {}

    async def open(self) -> None:
        """Nothing to open in memory."""

    async def close(self) -> None:
        """Nothing to close in memory: the objects stay."""

    def peer(self) -> InMemoryObjects:
        """Another view of the same objects."""
        peer = InMemoryObjects(prefix=self.prefix, max_object_bytes=self.max_object_bytes)
        peer._entries = self._entries
        return peer

    async def _get(self, key: str, version_id: str | None) -> StoredObject | None:
        entry = self._entries.get(key)
        if entry is not None and len(entry.stored.body) > self.max_object_bytes:
            raise self.too_large(f"stored object is {len(entry.stored.body):,} bytes", key)
        return None if entry is None else entry.stored

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
        current = self._entries.get(key)
        if (if_absent and current is not None) or (
            if_match is not None and (current is None or current.stored.version != if_match)
        ):
            raise conflict(bucket=None, key=key)
        # As S3's ETag for a plain PUT: the MD5 of the body, so the same bytes
        # keep their version and both backends see the same conflicts.
        version = f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'
        self._entries[key] = _Entry(StoredObject(body, version, writes), datetime.now(timezone.utc))
        return version

    async def _head(self, key: str) -> ObjectHead | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored = entry.stored
        return ObjectHead(stored.version, stored.writes, len(stored.body), entry.last_modified)

    async def _page(
        self, prefix: str, start_after: str | None, token: str | None, limit: int, recursive: bool
    ) -> tuple[list[ObjectInfo], str | None]:
        start = token or start_after
        keys = sorted(
            key
            for key in self._entries
            if key.startswith(prefix)
            and (start is None or key > start)
            and (recursive or "/" not in key[len(prefix) :])
        )
        page = [self._info(key) for key in keys[:limit]]
        return page, page[-1].key if len(keys) > limit else None

    def _info(self, key: str) -> ObjectInfo:
        stored, last_modified = self._entries[key]
        name = key[len(self.prefix) :]
        return ObjectInfo(name, key, len(stored.body), last_modified, stored.version)

    async def _delete(self, key: str) -> None:
        self._entries.pop(key, None)
