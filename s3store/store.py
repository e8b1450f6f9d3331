"""The `SessionStore` contract, and `InMemorySessionStore`.

A store saves whole session snapshots as JSON objects, one per session, under a
key derived from the session id (see `s3store.keys`). The logic shared by every
backend lives here: encoding, key checks, version tracking for optimistic
concurrency, and `update()`. A backend supplies four primitives over raw bytes.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import inspect
import logging
import random
import weakref
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, Literal, cast

from pydantic import BaseModel, TypeAdapter, ValidationError
from typing_extensions import TypeVar  # a TypeVar default (PEP 696); pydantic brings it

from s3store.errors import (
    BulkOperationError,
    CorruptSessionError,
    InvalidSessionIdError,
    SessionConflictError,
    SessionStoreError,
    SessionTooLargeError,
)
from s3store.keys import normalize_prefix, parse_key, session_key
from s3store.models import AgentSession, SessionId

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_SESSION_BYTES",
    "Concurrency",
    "InMemorySessionStore",
    "SessionStore",
    "StoredObject",
]

logger = logging.getLogger("s3store")

S = TypeVar("S", bound=BaseModel, default=AgentSession)
T = TypeVar("T")

DEFAULT_CONCURRENCY = 64
"""Requests a bulk method keeps in flight when not told otherwise (S3: the pool size)."""

DEFAULT_MAX_SESSION_BYTES = 8 * 1024 * 1024
"""The largest session a store saves or loads by default: 8 MiB of JSON.

Parsed, such a session takes several times that in memory, which still fits a
512 MB Lambda function with room to work; raise it where memory allows."""

Concurrency = Literal["optimistic", "last-writer-wins"]
"""`optimistic` (the default): a save never overwrites a version it did not see.
`last-writer-wins`: every save is a plain, unconditional write."""


class StoredObject:
    """An object's bytes and the version tag (S3's ETag) they were stored under."""

    __slots__ = ("body", "version")

    def __init__(self, body: bytes, version: str) -> None:
        self.body = body
        self.version = version


class _SeenVersions:
    """Which stored version each live session object was loaded or saved as.

    Keyed by the object's identity, so two copies of a session carry their own
    versions. An entry goes when its object is garbage-collected, so the map
    never outgrows the sessions the program still holds.
    """

    def __init__(self) -> None:
        self._versions: dict[int, tuple[str, str]] = {}

    def get(self, session: object, key: str) -> str | None:
        seen = self._versions.get(id(session))
        return seen[1] if seen is not None and seen[0] == key else None

    def remember(self, session: object, key: str, version: str) -> None:
        if id(session) not in self._versions:
            weakref.finalize(session, self._versions.pop, id(session), None)
        self._versions[id(session)] = (key, version)


def conflict(*, bucket: str | None, key: str) -> SessionConflictError:
    """The error for a conditional save that found another version stored."""
    return SessionConflictError(
        "not saved: the stored session was created, changed or deleted since this copy "
        "was loaded. Load it again and reapply the change, or use update(), which retries",
        bucket=bucket,
        key=key,
    )


class SessionStore(ABC, Generic[S]):
    """Saves, loads, lists and deletes session snapshots.

    Generic over the session model: `AgentSession` by default, or any pydantic
    model with an `id: SessionId` field.

    In `optimistic` mode (the default) a save succeeds only if the stored object
    is still the version this store last loaded or saved *for that session object*,
    or, for a session object it has not seen, only if nothing is stored yet;
    otherwise it raises `SessionConflictError`. `update()` wraps the
    load-change-save cycle and retries on conflict.
    """

    def __init__(
        self,
        *,
        prefix: str = "sessions/",
        model: type[S] = AgentSession,  # type: ignore[assignment]
        concurrency: Concurrency = "optimistic",
        max_session_bytes: int = DEFAULT_MAX_SESSION_BYTES,
    ) -> None:
        if "id" not in model.model_fields:
            raise TypeError(f"{model.__name__} has no `id` field: a session model needs one")
        if concurrency not in ("optimistic", "last-writer-wins"):
            raise ValueError(
                f"concurrency must be 'optimistic' or 'last-writer-wins', not {concurrency!r}"
            )
        self.prefix = normalize_prefix(prefix)
        self.model = model
        self.concurrency: Concurrency = concurrency
        self.max_session_bytes = max_session_bytes
        self._adapter = TypeAdapter(model)
        self._seen = _SeenVersions()

    # -- the contract -------------------------------------------------------

    async def save(self, session: S) -> None:
        """Store the whole snapshot; raises `InvalidSessionIdError` if its id is None."""
        key = self._key(self._id_of(session))
        await self._save(session, key, self._seen.get(session, key))

    async def load(self, session_id: SessionId) -> S | None:
        """The stored session, or None when there is none.

        Raises `CorruptSessionError` when the object is not a valid session.
        """
        key = self._key(session_id)
        stored = await self._get(key)
        if stored is None:
            return None
        session = self._decode(stored.body, key, session_id)
        self._seen.remember(session, key, stored.version)
        return session

    async def list(self) -> builtins.list[SessionId]:
        """Every stored session id exactly once, in object-key order."""
        ids = []
        for key in await self._list_keys():
            session_id = parse_key(self.prefix, key)
            if session_id is None:
                logger.warning("list(): skipped %r, which is not a session key", key)
            else:
                ids.append(session_id)
        return ids

    async def delete(self, session_id: SessionId) -> None:
        """Delete a session; deleting one that does not exist is not an error."""
        await self._delete(self._key(session_id))

    async def load_many(
        self, session_ids: Iterable[SessionId], *, concurrency: int | None = None
    ) -> dict[SessionId, S | None]:
        """Load many sessions, at most `concurrency` requests at a time.

        Returns `{session_id: session or None}` in the order given (duplicates
        once). If any load fails, every other one still completes and
        `BulkOperationError` is raised with the failures in `.errors` and the
        loaded sessions in `.loaded`. `concurrency` defaults to the store's
        connection pool size.
        """
        ids = builtins.list(dict.fromkeys(session_ids))
        loaded: dict[SessionId, S | None] = {}

        async def load(session_id: SessionId) -> None:
            loaded[session_id] = await self.load(session_id)

        errors = await self._each(ids, load, concurrency)
        ordered = {session_id: loaded[session_id] for session_id in ids if session_id in loaded}
        if errors:
            raise self._bulk_error("load_many", ids, errors, ordered)
        return ordered

    async def save_many(self, sessions: Iterable[S], *, concurrency: int | None = None) -> None:
        """Save many sessions, each as `save()` would, at most `concurrency` at a time.

        Each save is conditional as `save()`'s is (see the class docs). If any
        fails, every other one still completes and `BulkOperationError` is
        raised, with each failure (a `SessionConflictError`, say) in `.errors`.
        Two sessions with the same id raise `ValueError` before any request.
        """
        by_id: dict[SessionId, S] = {}
        for session in sessions:
            session_id = self._id_of(session)
            if session_id in by_id:
                raise ValueError(f"save_many() got session {session_id} twice: pass each once")
            self._key(session_id)  # an invalid id fails here, before any request
            by_id[session_id] = session

        async def save(session_id: SessionId) -> None:
            await self.save(by_id[session_id])

        ids = builtins.list(by_id)
        errors = await self._each(ids, save, concurrency)
        if errors:
            raise self._bulk_error("save_many", ids, errors)

    async def delete_many(
        self, session_ids: Iterable[SessionId], *, concurrency: int | None = None
    ) -> None:
        """Delete many sessions; absent ones are not an error.

        If any deletion fails, the others still complete and
        `BulkOperationError` is raised with the failures in `.errors`.
        """
        ids = builtins.list(dict.fromkeys(session_ids))
        for session_id in ids:
            self._key(session_id)

        async def delete(session_id: SessionId) -> None:
            await self.delete(session_id)

        errors = await self._each(ids, delete, concurrency)
        if errors:
            raise self._bulk_error("delete_many", ids, errors)

    async def update(
        self,
        session_id: SessionId,
        fn: Callable[[S | None], S | Awaitable[S]],
        *,
        attempts: int = 8,
    ) -> S:
        """Load, apply `fn`, save conditionally; on conflict reload and try again.

        `fn` receives the stored session, or None when there is none yet (it then
        returns a new session with this id). It may change the session in place
        and return it, or return a new one; it may be async. It can run more than
        once, so keep side effects out of it. Retries wait with jittered
        exponential backoff. Returns the saved session; raises
        `SessionConflictError` when the last of `attempts` still conflicts.
        """
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {attempts}")
        key = self._key(session_id)
        for attempt in range(attempts):
            stored = await self._get(key)
            current = None if stored is None else self._decode(stored.body, key, session_id)
            changed = fn(current)
            if inspect.isawaitable(changed):
                changed = await changed
            session = changed
            if self._id_of(session) != session_id:
                raise InvalidSessionIdError(
                    f"update() of session {session_id} got back a session with id "
                    f"{self._id_of(session)}: fn must keep the id"
                )
            try:
                await self._save(session, key, None if stored is None else stored.version)
                return session
            except SessionConflictError:
                if attempt == attempts - 1:
                    raise
            await asyncio.sleep(random.uniform(0, min(1.0, 0.01 * 2**attempt)))
        raise AssertionError("unreachable")  # pragma: no cover

    # -- what a backend provides ---------------------------------------------

    @abstractmethod
    async def _get(self, key: str) -> StoredObject | None:
        """The object under `key`, or None when there is none."""

    @abstractmethod
    async def _put(self, key: str, body: bytes, *, if_match: str | None, if_absent: bool) -> str:
        """Write `body` under `key` and return its new version.

        `if_match`: write only if the stored version is this one. `if_absent`:
        write only if nothing is stored. A failed condition raises
        `SessionConflictError`.
        """

    @abstractmethod
    async def _list_keys(self) -> builtins.list[str]:
        """Every key directly under the prefix (not in sub-folders), in key order."""

    @abstractmethod
    async def _delete(self, key: str) -> None:
        """Delete the object under `key`, if any."""

    # -- shared machinery ---------------------------------------------------

    def _default_concurrency(self) -> int:
        return DEFAULT_CONCURRENCY

    async def _each(
        self,
        items: builtins.list[T],
        fn: Callable[[T], Awaitable[None]],
        concurrency: int | None,
    ) -> dict[T, SessionStoreError]:
        """Run `fn` on every item with at most `concurrency` in flight; collect store errors.

        A fixed set of workers pulls from one iterator, rather than a task per item
        waiting on a semaphore: 10,000 ids cost 64 tasks, not 10,000. Anything that
        is not a `SessionStoreError` (a bug, a cancellation) stops the whole batch.
        """
        limit = self._default_concurrency() if concurrency is None else concurrency
        if limit < 1:
            raise ValueError(f"concurrency must be at least 1, not {limit}")
        errors: dict[T, SessionStoreError] = {}
        pending = iter(items)

        async def work() -> None:
            for item in pending:
                try:
                    await fn(item)
                except SessionStoreError as exc:
                    errors[item] = exc

        workers = [asyncio.ensure_future(work()) for _ in range(min(limit, len(items)))]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        return errors

    def _bulk_error(
        self,
        operation: str,
        ids: builtins.list[SessionId],
        errors: dict[SessionId, SessionStoreError],
        loaded: dict[SessionId, S | None] | None = None,
    ) -> BulkOperationError:
        return BulkOperationError(
            operation,
            errors={session_id: errors[session_id] for session_id in ids if session_id in errors},
            done=[session_id for session_id in ids if session_id not in errors],
            loaded=dict(loaded) if loaded is not None else None,
            bucket=self._bucket_name(),
        )

    def _key(self, session_id: SessionId) -> str:
        return session_key(self.prefix, session_id)

    def _id_of(self, session: S) -> SessionId:
        session_id = getattr(session, "id", None)
        if session_id is None:
            raise InvalidSessionIdError("the session's id is None: set session.id before saving")
        return cast(SessionId, session_id)

    def _encode(self, session: S) -> bytes:
        return self._adapter.dump_json(session)

    async def _save(self, session: S, key: str, seen_version: str | None) -> None:
        optimistic = self.concurrency == "optimistic"
        body = self._encode(session)
        if len(body) > self.max_session_bytes:
            raise self._too_large(f"session is {len(body):,} bytes as JSON", key)
        version = await self._put(
            key,
            body,
            if_match=seen_version if optimistic else None,
            if_absent=optimistic and seen_version is None,
        )
        self._seen.remember(session, key, version)

    def _decode(self, body: bytes, key: str, session_id: SessionId) -> S:
        try:
            session = self._adapter.validate_json(body)
        except ValidationError as exc:
            # Where and what, never the input itself: session content stays out of
            # messages and logs (it is on `.raw` for whoever needs it).
            problems = exc.errors(include_url=False, include_input=False, include_context=False)
            first = problems[0]
            where = ".".join(str(part) for part in first["loc"]) or "the top level"
            summary = f"{len(problems)} problem(s), first at {where}: {first['msg']}"
            raise self._corrupt(
                f"is not a valid {self.model.__name__} ({summary})", body, key
            ) from None
        if getattr(session, "id", None) != session_id:
            raise self._corrupt(
                f"holds session {getattr(session, 'id', None)}, not {session_id}", body, key
            )
        return session

    def _too_large(self, what: str, key: str) -> SessionTooLargeError:
        return SessionTooLargeError(
            f"the {what}, over this store's max_session_bytes of {self.max_session_bytes:,}: "
            "trim the session (old messages, inline images) or raise max_session_bytes",
            bucket=self._bucket_name(),
            key=key,
        )

    def _corrupt(self, problem: str, body: bytes, key: str) -> CorruptSessionError:
        return CorruptSessionError(
            f"the stored object is not a valid session, it {problem}. It was left in "
            "place: inspect `.raw`, then fix or delete it",
            raw=body,
            bucket=self._bucket_name(),
            key=key,
        )

    def _bucket_name(self) -> str | None:
        return None


class InMemorySessionStore(SessionStore[S]):
    """A store in this process's memory, with the same semantics as `S3SessionStore`.

    It keeps serialized bytes, so changing an object after saving or loading it
    never changes what is stored, and versions behave as S3's ETags do (the MD5
    of the bytes): the unit tests of an agent meet the same conflicts as
    production. `peer()` gives a second store over the same objects.
    """

    def __init__(
        self,
        *,
        prefix: str = "sessions/",
        model: type[S] = AgentSession,  # type: ignore[assignment]
        concurrency: Concurrency = "optimistic",
        max_session_bytes: int = DEFAULT_MAX_SESSION_BYTES,
    ) -> None:
        super().__init__(
            prefix=prefix,
            model=model,
            concurrency=concurrency,
            max_session_bytes=max_session_bytes,
        )
        self._objects: dict[str, StoredObject] = {}

    def peer(self) -> InMemorySessionStore[S]:
        """Another store over the same objects, as a second process sees one bucket.

        The peer shares what is stored but not the versions this store has seen,
        so two peers stand for two concurrent Lambda invocations in a unit test.
        """
        peer = InMemorySessionStore(
            prefix=self.prefix,
            model=self.model,
            concurrency=self.concurrency,
            max_session_bytes=self.max_session_bytes,
        )
        peer._objects = self._objects
        return peer

    async def _get(self, key: str) -> StoredObject | None:
        return self._objects.get(key)

    async def _put(self, key: str, body: bytes, *, if_match: str | None, if_absent: bool) -> str:
        current = self._objects.get(key)
        if (if_absent and current is not None) or (
            if_match is not None and (current is None or current.version != if_match)
        ):
            raise conflict(bucket=None, key=key)
        # As S3's ETag for a plain PUT: the MD5 of the body, so the same bytes
        # keep their version and both stores see the same conflicts.
        version = f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'
        self._objects[key] = StoredObject(body, version)
        return version

    async def _list_keys(self) -> builtins.list[str]:
        return sorted(self._objects)

    async def _delete(self, key: str) -> None:
        self._objects.pop(key, None)
