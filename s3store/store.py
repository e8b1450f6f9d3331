"""The `SessionStore` contract, and `InMemorySessionStore`.

A store saves whole session snapshots as JSON objects, one per session, under a
key derived from the session id (see `s3store.keys`). The logic shared by every
backend lives here: encoding, key checks, version tracking for optimistic
concurrency, and `update()`. A backend supplies four primitives over raw bytes.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import inspect
import logging
import random
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Literal, NamedTuple, cast

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError
from typing_extensions import TypeVar  # a TypeVar default (PEP 696); pydantic brings it

from s3store.errors import (
    BulkOperationError,
    ConfigurationError,
    CorruptSessionError,
    InvalidSessionError,
    InvalidSessionIdError,
    SessionConflictError,
    SessionStoreError,
    SessionTooLargeError,
    WriteOutcomeUnknownError,
)
from s3store.events import RuntimeEvent, event_json, parse_event
from s3store.keys import event_key, events_prefix, normalize_prefix, parse_key, session_key
from s3store.models import AgentSession, SessionId, find_invalid, wire_json
from s3store.writes import Outcome, extend, key_token, new_token, outcome

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_SESSION_BYTES",
    "Concurrency",
    "EventLogStore",
    "InMemorySessionStore",
    "LoggedEvent",
    "SessionStore",
    "StoredObject",
    "StoredVersion",
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
    """An object's bytes, the version tag (S3's ETag) they were stored under, and
    its write history (see `s3store.writes`)."""

    __slots__ = ("body", "version", "writes")

    def __init__(self, body: bytes, version: str, writes: tuple[str, ...] = ()) -> None:
        self.body = body
        self.version = version
        self.writes = writes


class StoredVersion(NamedTuple):
    """An object's version tag and write history, without its bytes."""

    version: str
    writes: tuple[str, ...]


@dataclass(frozen=True)
class LoggedEvent:
    """An event as a session's log holds it: `position` is what `events(after=...)` takes."""

    position: str
    event: RuntimeEvent


class _Seen(NamedTuple):
    """The stored version a session object was loaded or saved as, and where."""

    location: tuple[str | None, str]  # bucket and key
    version: str
    writes: tuple[str, ...]


_SEEN = "__s3store_seen__"
"""Where a session object carries its `_Seen`: an entry of its `__dict__`, which
pydantic's serialization, equality and repr leave out and its copies keep, and
which every pydantic model has, weak-referenceable or not."""


def _carried(session: BaseModel) -> _Seen | None:
    """The `_Seen` a session object carries, if any.

    pydantic's `validate_assignment` moves unknown `__dict__` entries of a model
    with `extra="allow"` into its extras, which are serialized: take it back.
    """
    extra = session.__pydantic_extra__
    if extra is not None and _SEEN in extra:
        session.__dict__[_SEEN] = extra.pop(_SEEN)
    seen = session.__dict__.get(_SEEN)
    return seen if isinstance(seen, _Seen) else None


_SUPERSEDED = ""
"""The version of a session whose save landed but was built on by others since:
saving that object again is a conflict, without a request."""


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
            raise ConfigurationError(
                f"{model.__name__} has no `id` field: a session model needs one"
            )
        if concurrency not in ("optimistic", "last-writer-wins"):
            raise ConfigurationError(
                f"concurrency must be 'optimistic' or 'last-writer-wins', not {concurrency!r}"
            )
        self.prefix = normalize_prefix(prefix)
        self.model = model
        self.concurrency: Concurrency = concurrency
        self.max_session_bytes = max_session_bytes
        self._adapter = TypeAdapter(model)
        self._listed_foreign_key = False

    # -- the contract -------------------------------------------------------

    async def save(self, session: S) -> None:
        """Store the whole snapshot; raises `InvalidSessionIdError` if its id is None."""
        key = self._key(self._id_of(session))
        await self._save(session, key, self._seen(session, key))

    async def load(self, session_id: SessionId) -> S | None:
        """The stored session, or None when there is none.

        Raises `CorruptSessionError` when the object is not a valid session.
        """
        key = self._key(session_id)
        stored = await self._get(key)
        if stored is None:
            return None
        session = self._decode(stored.body, key, session_id)
        self._remember(session, key, stored.version, stored.writes)
        return session

    async def list(self) -> builtins.list[SessionId]:
        """Every stored session id exactly once, in object-key order."""
        ids = []
        for key in await self._list_keys():
            session_id = parse_key(self.prefix, key)
            if session_id is None:
                self._skipped_foreign_key(key)
            else:
                ids.append(session_id)
        return ids

    def _skipped_foreign_key(self, key: str) -> None:
        # A shared prefix holds the same foreign objects at every listing: say so
        # once per store, not once per object and call.
        if self._listed_foreign_key:
            logger.debug("list(): skipped %r, which is not a session key", key)
            return
        self._listed_foreign_key = True
        logger.warning(
            "list(): skipped %r, which is not a session key; other objects under the "
            "prefix that are not sessions are logged at debug level",
            key,
        )

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
        Two sessions with the same id raise `InvalidSessionIdError` before any request.
        """
        by_id: dict[SessionId, S] = {}
        for session in sessions:
            session_id = self._id_of(session)
            if session_id in by_id:
                raise InvalidSessionIdError(
                    f"save_many() got session {session_id} twice: pass each once"
                )
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
        idempotency_key: str | None = None,
    ) -> S:
        """Load, apply `fn`, save conditionally; on conflict reload and try again.

        `fn` receives the stored session, or None when there is none yet (it then
        returns a new session with this id). It may change the session in place
        and return it, or return a new one; it may be async. Its change is stored
        at most once: a save whose answer was lost is recognised from the stored
        write history, even when others have built on it since, and is not
        applied again. `fn` runs again only after a conflict, when its earlier
        result was definitely not stored, so keep side effects out of it.
        Retries wait with jittered exponential backoff, from the attempt's own length.

        `idempotency_key` (a Lambda request id, a queue message id: any text)
        makes the change once per key: when the stored session already records
        the key, it is returned as it is and `fn` is not called.

        Returns the saved session. Raises `SessionConflictError` when the last of
        `attempts` still conflicts (nothing of this call was stored), and
        `WriteOutcomeUnknownError` when a lost answer's outcome can no longer be
        told (see `s3store.writes`).
        """
        if attempts < 1:
            raise ConfigurationError(f"attempts must be at least 1, not {attempts}")
        key = self._key(session_id)
        token = None if idempotency_key is None else key_token(idempotency_key)
        loop = asyncio.get_running_loop()
        for attempt in range(attempts):
            started = loop.time()
            stored = await self._get(key)
            current = None if stored is None else self._decode(stored.body, key, session_id)
            if current is not None and stored is not None:
                self._remember(current, key, stored.version, stored.writes)
                if token is not None and token in stored.writes:
                    return current  # this key's change is already stored
            changed = fn(current)
            if inspect.isawaitable(changed):
                changed = await changed
            session = changed
            if self._id_of(session) != session_id:
                raise InvalidSessionIdError(
                    f"update() of session {session_id} got back a session with id "
                    f"{self._id_of(session)}: fn must keep the id"
                )
            base = None if stored is None else StoredVersion(stored.version, stored.writes)
            try:
                await self._save(session, key, base, token)
                return session
            except SessionConflictError:
                if attempt == attempts - 1:
                    raise
            # The window doubles from the attempt's own length, not a fixed step:
            # rivals drift apart however slow the network, the machine or `fn`.
            window = max(0.01, loop.time() - started) * 2**attempt
            await asyncio.sleep(random.uniform(0, min(1.0, window)))
        raise AssertionError("unreachable")  # pragma: no cover

    async def append_event(self, session_id: SessionId, event: RuntimeEvent) -> None:
        """Record an event of the session, for audit and replay.

        A no-op here, as agent-base's `SessionStore` trait provides it;
        `InMemorySessionStore` and `S3SessionStore` keep every event (`EventLogStore`).
        """

    def events(
        self, session_id: SessionId, *, after: str | None = None, limit: int | None = None
    ) -> AsyncIterator[LoggedEvent]:
        """The session's events in append order (none here: see `EventLogStore`)."""
        return _no_events()

    # -- what a backend provides ---------------------------------------------

    @abstractmethod
    async def _get(self, key: str) -> StoredObject | None:
        """The object under `key`, or None when there is none."""

    @abstractmethod
    async def _put(
        self,
        key: str,
        body: bytes,
        *,
        if_match: str | None,
        if_absent: bool,
        writes: tuple[str, ...] = (),
    ) -> str:
        """Write `body` under `key`, with its write history, and return its new version.

        `if_match`: write only if the stored version is this one. `if_absent`:
        write only if nothing is stored. A failed condition raises
        `SessionConflictError`, whether or not an earlier, unanswered attempt of
        the same request landed: `_save()` tells those apart.
        """

    @abstractmethod
    async def _stored_version(self, key: str) -> StoredVersion | None:
        """The version and write history stored under `key`, or None when there is none."""

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
            raise ConfigurationError(f"concurrency must be at least 1, not {limit}")
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

    def _encode(self, session: S, key: str) -> bytes:
        """The session's JSON; `InvalidSessionError` for a value agent-base could not
        read back (changed in place after validation), before any request."""
        try:
            return wire_json(self._adapter, session)
        except PydanticSerializationError:
            path, problem = find_invalid(session)
            raise InvalidSessionError(
                f"the session cannot be stored as agent-base reads it: {path or 'it'}: "
                f"{problem}. Nothing was written: fix that field and save again",
                path=path,
                bucket=self._bucket_name(),
                key=key,
            ) from None

    async def _save(
        self, session: S, key: str, base: StoredVersion | None, token: str | None = None
    ) -> None:
        """Write `session` over `base` (the version it was built on; None: nothing).

        In optimistic mode the write is conditional on `base`. When the condition
        fails, the stored write history decides whether this very write landed
        before its answer was lost (then it succeeded) or not (a conflict).
        """
        optimistic = self.concurrency == "optimistic"
        _carried(session)  # so that it is not encoded
        if optimistic and base is not None and base.version == _SUPERSEDED:
            raise conflict(bucket=self._bucket_name(), key=key)
        body = self._encode(session, key)
        if len(body) > self.max_session_bytes:
            raise self._too_large(f"session is {len(body):,} bytes as JSON", key)
        token = token or new_token()
        written = extend(token, base.writes if base is not None else ())
        try:
            version = await self._put(
                key,
                body,
                if_match=base.version if optimistic and base is not None else None,
                if_absent=optimistic and base is None,
                writes=written,
            )
        except SessionConflictError:
            version = await self._lost_answer_outcome(key, token, base)
        self._remember(session, key, version, written)

    async def _lost_answer_outcome(self, key: str, token: str, base: StoredVersion | None) -> str:
        """After a failed condition: the version to remember if the write landed after
        all (an earlier attempt whose answer was lost), else the error to raise."""
        stored = await self._stored_version(key)
        base_writes = base.writes if base is not None else ()
        found = outcome(token, base_writes, None if stored is None else stored.writes)
        if found is Outcome.CURRENT and stored is not None:
            return stored.version
        if found is Outcome.SUPERSEDED:
            return _SUPERSEDED
        if found is Outcome.NOT_LANDED:
            raise conflict(bucket=self._bucket_name(), key=key)
        raise WriteOutcomeUnknownError(
            "the save's answer was lost, and so many writes were built on the stored "
            "session since that its write history no longer tells whether this one "
            "landed. Load the session and check for the change before making it again",
            bucket=self._bucket_name(),
            key=key,
        )

    def _seen(self, session: S, key: str) -> StoredVersion | None:
        """The version `session` (or the object it was copied from) was loaded or saved as."""
        seen = _carried(session)
        if seen is not None and seen.location == (self._bucket_name(), key):
            return StoredVersion(seen.version, seen.writes)
        return None

    def _remember(self, session: S, key: str, version: str, writes: tuple[str, ...]) -> None:
        session.__dict__[_SEEN] = _Seen((self._bucket_name(), key), version, writes)

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


async def _no_events() -> AsyncIterator[LoggedEvent]:
    return
    yield  # an async generator that yields nothing


class EventLogStore(SessionStore[S]):
    """A store that keeps each event as an immutable object of its own under the
    session, `<prefix><id>/events/<position>.json`, created only if absent.

    A position is `<microseconds since the epoch>-<writer>-<sequence>`, fixed-width:
    object-key order is append order. Every reader sees one order, the same for all;
    each writer's (each store's) own events keep the order it appended them in, its
    clock never going back. Across writers the order is that of their clocks, so
    events of two machines whose clocks disagree interleave by those clocks.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._writer = secrets.token_hex(8)
        self._sequence = 0
        self._last_micros = 0

    async def append_event(self, session_id: SessionId, event: RuntimeEvent) -> None:
        """Store the event under a position of its own; a retried request never makes two."""
        key = event_key(self.prefix, session_id, self._next_position())
        body = self._encode_event(event, key)
        # The position is this append's alone: a conflict is an earlier attempt of it
        # that landed before its answer was lost.
        with contextlib.suppress(SessionConflictError):
            await self._put(key, body, if_match=None, if_absent=True, writes=())

    async def events(
        self, session_id: SessionId, *, after: str | None = None, limit: int | None = None
    ) -> AsyncIterator[LoggedEvent]:
        """The session's events in append order, from after position `after` (for
        tailing: pass the last position you got), at most `limit` of them."""
        folder = events_prefix(self.prefix, session_id)
        start = None if after is None else f"{folder}{after}.json"
        left = limit
        while left is None or left > 0:
            keys = await self._keys_after(folder, start, 1000 if left is None else min(left, 1000))
            if not keys:
                return
            for key, body in zip(keys, await self._bodies(keys), strict=True):
                if body is not None:  # erased since the listing
                    position = key[len(folder) : -len(".json")]
                    yield LoggedEvent(position, self._decode_event(body, key))
            start = keys[-1]
            if left is not None:
                left -= len(keys)

    def _next_position(self) -> str:
        # Never back in time for this writer, and a sequence for events in one tick.
        self._last_micros = max(self._last_micros, time.time_ns() // 1000)
        self._sequence += 1
        return f"{self._last_micros:017d}-{self._writer}-{self._sequence:012d}"

    async def _bodies(self, keys: builtins.list[str]) -> builtins.list[bytes | None]:
        bodies: dict[str, bytes | None] = {}

        async def read(key: str) -> None:
            stored = await self._get(key)
            bodies[key] = None if stored is None else stored.body

        errors = await self._each(keys, read, None)
        if errors:
            raise next(iter(errors.values()))
        return [bodies[key] for key in keys]

    def _encode_event(self, event: RuntimeEvent, key: str) -> bytes:
        try:
            return event_json(event)
        except PydanticSerializationError as exc:
            raise InvalidSessionError(
                f"the event cannot be stored as agent-base reads it ({exc}). Nothing was "
                "written: fix the event",
                path="event",
                bucket=self._bucket_name(),
                key=key,
            ) from None

    def _decode_event(self, body: bytes, key: str) -> RuntimeEvent:
        try:
            return parse_event(body)
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
            raise self._corrupt(f"is not a valid event ({first['msg']})", body, key) from None

    @abstractmethod
    async def _keys_after(
        self, folder: str, start_after: str | None, limit: int
    ) -> builtins.list[str]:
        """Up to `limit` keys under `folder`, in key order, after `start_after`."""


class InMemorySessionStore(EventLogStore[S]):
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

    async def _put(
        self,
        key: str,
        body: bytes,
        *,
        if_match: str | None,
        if_absent: bool,
        writes: tuple[str, ...] = (),
    ) -> str:
        current = self._objects.get(key)
        if (if_absent and current is not None) or (
            if_match is not None and (current is None or current.version != if_match)
        ):
            raise conflict(bucket=None, key=key)
        # As S3's ETag for a plain PUT: the MD5 of the body, so the same bytes
        # keep their version and both stores see the same conflicts.
        version = f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'
        self._objects[key] = StoredObject(body, version, writes)
        return version

    async def _stored_version(self, key: str) -> StoredVersion | None:
        current = self._objects.get(key)
        return None if current is None else StoredVersion(current.version, current.writes)

    async def _list_keys(self) -> builtins.list[str]:
        # As S3 lists with a delimiter: keys in sub-folders (events) are not sessions.
        return sorted(
            key
            for key in self._objects
            if key.startswith(self.prefix) and "/" not in key[len(self.prefix) :]
        )

    async def _keys_after(
        self, folder: str, start_after: str | None, limit: int
    ) -> builtins.list[str]:
        keys = sorted(
            key
            for key in self._objects
            if key.startswith(folder) and (start_after is None or key > start_after)
        )
        return keys[:limit]

    async def _delete(self, key: str) -> None:
        self._objects.pop(key, None)
