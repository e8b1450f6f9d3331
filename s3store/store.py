"""The `SessionStore` contract over the object layer, and `InMemorySessionStore`.

A store saves whole session snapshots as JSON objects, one per session, under a
name derived from the session id (see `s3store.keys`), through an `Objects`
(`s3store.objects`): S3's or memory's. What is a session's alone lives here: the
model, the version a session object was loaded or saved as (for optimistic
concurrency), listing by id, and the event log.
"""

from __future__ import annotations

import asyncio
import builtins
import inspect
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Generic, Literal, NamedTuple, cast

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError
from typing_extensions import (
    Self,
    TypeVar,  # a TypeVar default (PEP 696); pydantic brings it
)

from s3store.errors import (
    BulkOperationError,
    ConfigurationError,
    CorruptSessionError,
    InvalidSessionError,
    InvalidSessionIdError,
    SessionConflictError,
    SessionStoreError,
)
from s3store.keys import event_name, events_folder, parse_key, position_name, session_name
from s3store.models import AgentSession, SessionId, find_invalid, wire_json
from s3store.objects import (
    DEFAULT_MAX_OBJECT_BYTES,
    InMemoryObjects,
    ObjectInfo,
    Objects,
    StoredVersion,
    each,
)

if TYPE_CHECKING:
    from s3store.events import RuntimeEvent

__all__ = [
    "DEFAULT_MAX_SESSION_BYTES",
    "Concurrency",
    "InMemorySessionStore",
    "LoggedEvent",
    "SessionInfo",
    "SessionStore",
]

logger = logging.getLogger("s3store")

S = TypeVar("S", bound=BaseModel, default=AgentSession)
T = TypeVar("T")

DEFAULT_MAX_SESSION_BYTES = DEFAULT_MAX_OBJECT_BYTES
"""The largest session a store saves or loads by default: 8 MiB of JSON."""

Concurrency = Literal["optimistic", "last-writer-wins"]
"""`optimistic` (the default): a save never overwrites a version it did not see.
`last-writer-wins`: every save is a plain, unconditional write."""

_LOGS_KEPT = 1024
"""Sessions whose event log a store keeps track of (the least recent go)."""


class _Log:
    """A store's own view of one session's event log: where it ends, and the lock that
    makes this store's appends to it one at a time (only other writers contend)."""

    __slots__ = ("lock", "loop", "next")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lock = asyncio.Lock()
        self.next = 0  # the position to try first; 0: unknown, list the log


@dataclass(frozen=True)
class SessionInfo:
    """What the storage knows of a stored session object, without reading its body."""

    session_id: SessionId
    key: str
    size: int
    last_modified: datetime
    etag: str
    version_id: str | None = None


@dataclass(frozen=True)
class LoggedEvent:
    """An event as a session's log holds it: `position` is what `events(after=...)`
    takes, `stored_at` when its object was written."""

    position: str
    event: RuntimeEvent
    stored_at: datetime


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


class _SessionCodec(Generic[S]):
    """One session's JSON, for `Objects.update()`: refuses an object holding another id."""

    def __init__(self, store: SessionStore[S], session_id: SessionId) -> None:
        self.store = store
        self.session_id = session_id

    def decode(self, body: bytes) -> S:
        return self.store.decode(body, self.session_id)

    def encode(self, document: S) -> bytes:
        return self.store.encode(document)


class SessionStore(Generic[S]):
    """Saves, loads, lists and deletes session snapshots, over an `Objects`.

    Generic over the session model: `AgentSession` by default, or any pydantic
    model with an `id: SessionId` field.

    In `optimistic` mode (the default) a save succeeds only if the stored object
    is still the version this store last loaded or saved *for that session object*,
    or, for a session object it has not seen, only if nothing is stored yet;
    otherwise it raises `SessionConflictError`. `update()` wraps the
    load-change-save cycle and retries on conflict.

    A store is an async context manager: `async with store:` opens what its
    objects need (S3: the client) and closes it at the end.
    """

    def __init__(
        self,
        objects: Objects,
        *,
        model: type[S] = AgentSession,  # type: ignore[assignment]
        concurrency: Concurrency = "optimistic",
    ) -> None:
        if "id" not in model.model_fields:
            raise ConfigurationError(
                f"{model.__name__} has no `id` field: a session model needs one"
            )
        if concurrency not in ("optimistic", "last-writer-wins"):
            raise ConfigurationError(
                f"concurrency must be 'optimistic' or 'last-writer-wins', not {concurrency!r}"
            )
        self.objects = objects
        self.model = model
        self.concurrency: Concurrency = concurrency
        self._adapter = TypeAdapter(model)
        self._listed_foreign_key = False
        self._logs: OrderedDict[SessionId, _Log] = OrderedDict()

    @property
    def prefix(self) -> str:
        """The key prefix of the sessions (ends in `/`, or is empty: the bucket root)."""
        return self.objects.prefix

    @property
    def max_session_bytes(self) -> int:
        """The largest session this store saves or loads, in bytes of JSON."""
        return self.objects.max_object_bytes

    @max_session_bytes.setter
    def max_session_bytes(self, value: int) -> None:
        self.objects.max_object_bytes = value

    # -- lifetime ------------------------------------------------------------------

    async def open(self) -> None:
        """Open what the objects need now (S3: the client), rather than on first use."""
        await self.objects.open()

    async def close(self) -> None:
        """Close it now; a later use opens it again."""
        await self.objects.close()

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

    # -- the contract -------------------------------------------------------

    async def save(self, session: S) -> None:
        """Store the whole snapshot; raises `InvalidSessionIdError` if its id is None."""
        name = self.name(self._id_of(session))
        _carried(session)  # so that it is not encoded
        version = await self.objects.write(
            name,
            self.encode(session),
            base=self._seen(session, name),
            conditional=self.concurrency == "optimistic",
        )
        self._remember(session, name, version)

    async def load(self, session_id: SessionId) -> S | None:
        """The stored session, or None when there is none.

        Raises `CorruptSessionError` when the object is not a valid session.
        """
        name = self.name(session_id)
        stored = await self.objects.read(name)
        if stored is None:
            return None
        session = self.decode(stored.body, session_id)
        self._remember(session, name, StoredVersion(stored.version, stored.writes))
        return session

    async def list(self) -> builtins.list[SessionId]:
        """Every stored session id exactly once, in object-key order."""
        return [session_id async for session_id in self.iter_ids()]

    async def iter_ids(
        self, *, after: SessionId | None = None, limit: int | None = None
    ) -> AsyncIterator[SessionId]:
        """The stored session ids in key order, fetched a page at a time as they are
        consumed: from after `after`, at most `limit` of them (S3: ⌈limit/1000⌉
        ListObjectsV2 requests)."""
        async for info in self.iter_info(after=after, limit=limit):
            yield info.session_id

    async def iter_info(
        self, *, after: SessionId | None = None, limit: int | None = None
    ) -> AsyncIterator[SessionInfo]:
        """As `iter_ids()`, with each object's size, time and ETag, from the listing alone."""
        start = None if after is None else self.name(after)
        left = limit
        while True:
            asked, listed = left, 0
            async for info in self.objects.iter_objects(after=start, limit=asked):
                listed += 1
                start = info.name
                session_id = parse_key("", info.name)
                if session_id is None:
                    self._skipped_foreign_key(info.key)
                    continue
                yield SessionInfo(session_id, info.key, info.size, info.last_modified, info.etag)
                if left is not None:
                    left -= 1
            # Objects that are not sessions took places of a limited page: list on
            # past them, unless the listing ended.
            if asked is None or left == 0 or listed < asked:
                return

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
        await self.objects.delete(self.name(session_id))

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
            self.name(session_id)  # an invalid id fails here, before any request
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
        `BulkOperationError` is raised with the failures in `.errors`
        (on S3: DeleteObjects, 1,000 keys a request).
        """
        ids = builtins.list(dict.fromkeys(session_ids))
        id_of = {self.name(session_id): session_id for session_id in ids}
        failures = await self.objects.delete_many(id_of, concurrency=self._concurrency(concurrency))
        if failures:
            errors = {id_of[name]: error for name, error in failures.items()}
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
        the key, the stored session is returned as it is and `fn` is not called,
        also when a duplicate call running at the same time stored it first.

        Returns the saved session. Raises `SessionConflictError` when the last of
        `attempts` still conflicts (nothing of this call was stored), and
        `WriteOutcomeUnknownError` when a lost answer's outcome can no longer be
        told (see `s3store.writes`).
        """
        name = self.name(session_id)

        async def change(current: S | None) -> S:
            changed = fn(current)
            session = await changed if inspect.isawaitable(changed) else changed
            if self._id_of(session) != session_id:
                raise InvalidSessionIdError(
                    f"update() of session {session_id} got back a session with id "
                    f"{self._id_of(session)}: fn must keep the id"
                )
            _carried(session)  # so that it is not encoded
            return session

        updated = await self.objects.update(
            name,
            change,
            codec=_SessionCodec(self, session_id),
            attempts=attempts,
            idempotency_key=idempotency_key,
        )
        self._remember(updated.document, name, updated.version)
        return updated.document

    # -- the event log --------------------------------------------------------

    async def append_event(self, session_id: SessionId, event: RuntimeEvent) -> None:
        """Record an event of the session, for audit and replay.

        Each event is an immutable object of its own, `<prefix><id>/events/<position>.json`,
        at the next free position, created only if absent: a position is taken
        only once the one before it exists, so a reader that has passed a position
        has seen every event before it. A retried request never makes two.
        """
        folder = events_folder(session_id)
        self.name(session_id)  # an invalid id fails here, before any request
        body = self._encode_event(event, self.objects.key(folder))
        log = self._log(session_id)
        # One append at a time per store and session: this store's own appends never
        # race each other for a position, and keep the order they were called in.
        async with log.lock:
            position = log.next or await self._tail(folder)
            taken = 0
            while True:
                try:
                    name = event_name(self.prefix, session_id, position)
                    await self.objects.write(name, body, base=None)
                    break
                except SessionConflictError:
                    # Another writer took it: try the next one, and after a second miss
                    # in a row, list how far the log has grown.
                    taken += 1
                    position = position + 1 if taken == 1 else await self._tail(folder, position)
            log.next = position + 1

    def _log(self, session_id: SessionId) -> _Log:
        loop = asyncio.get_running_loop()
        log = self._logs.get(session_id)
        if log is None or log.loop is not loop:  # a lock belongs to one event loop
            log = self._logs[session_id] = _Log(loop)
        self._logs.move_to_end(session_id)
        while len(self._logs) > _LOGS_KEPT:
            self._logs.popitem(last=False)
        return log

    async def _tail(self, folder: str, after: int = 0) -> int:
        """The first free position of a log, listing from after position `after`."""
        last = after
        start = None if after == 0 else f"{folder}{position_name(after)}"
        async for info in self.objects.iter_objects(folder, after=start):
            position = _position_of(info, folder)
            if position is not None:
                last = position
        return last + 1

    async def events(
        self, session_id: SessionId, *, after: str | None = None, limit: int | None = None
    ) -> AsyncIterator[LoggedEvent]:
        """The session's events in append order, from after position `after` (for
        tailing: pass the last position you got; no event can appear before it
        later), at most `limit` of them."""
        folder = events_folder(session_id)
        self.name(session_id)
        start = None if after is None else f"{folder}{after}.json"
        page: builtins.list[ObjectInfo] = []
        async for info in self.objects.iter_objects(folder, after=start, limit=limit):
            page.append(info)
            if len(page) == 1000:
                async for logged in self._read_events(page, folder):
                    yield logged
                page = []
        async for logged in self._read_events(page, folder):
            yield logged

    async def _read_events(
        self, page: builtins.list[ObjectInfo], folder: str
    ) -> AsyncIterator[LoggedEvent]:
        bodies: dict[str, bytes | None] = {}

        async def read(info: ObjectInfo) -> None:
            stored = await self.objects.read(info.name)
            bodies[info.name] = None if stored is None else stored.body

        errors = await each(page, read, self.objects.default_concurrency)
        if errors:
            raise next(iter(errors.values()))
        for info in page:
            body = bodies[info.name]
            if body is not None:  # erased since the listing
                event = self._decode_event(body, info.key)
                yield LoggedEvent(info.name[len(folder) : -len(".json")], event, info.last_modified)

    def _encode_event(self, event: RuntimeEvent, key: str) -> bytes:
        # The event models load on first use: most invocations append no event.
        from s3store.events import event_json

        try:
            return event_json(event)
        except PydanticSerializationError as exc:
            raise InvalidSessionError(
                f"the event cannot be stored as agent-base reads it ({exc}). Nothing was "
                "written: fix the event",
                path="event",
                bucket=self.objects.bucket_name,
                key=key,
            ) from None

    def _decode_event(self, body: bytes, key: str) -> RuntimeEvent:
        from s3store.events import parse_event

        try:
            return parse_event(body)
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
            raise self._corrupt(f"is not a valid event ({first['msg']})", body, key) from None

    # -- sessions as bytes ----------------------------------------------------

    def name(self, session_id: SessionId) -> str:
        """The name of a session's object under the prefix (`42.json`); raises
        `InvalidSessionIdError` when the id cannot name one."""
        return session_name(self.prefix, session_id)

    def encode(self, session: S) -> bytes:
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
                bucket=self.objects.bucket_name,
                key=self.objects.key(self.name(self._id_of(session))),
            ) from None

    def decode(self, body: bytes, session_id: SessionId) -> S:
        """A stored session's bytes as a session; `CorruptSessionError` when they are not
        a valid session of this id."""
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
                f"is not a valid {self.model.__name__} ({summary})", body, self._key(session_id)
            ) from None
        if getattr(session, "id", None) != session_id:
            problem = f"holds session {getattr(session, 'id', None)}, not {session_id}"
            raise self._corrupt(problem, body, self._key(session_id))
        return session

    def _key(self, session_id: SessionId) -> str:
        """The session's object key: for errors only (the objects build it for requests)."""
        return self.objects.key(self.name(session_id))

    def _corrupt(self, problem: str, body: bytes, key: str) -> CorruptSessionError:
        return CorruptSessionError(
            f"the stored object is not a valid session, it {problem}. It was left in "
            "place: inspect `.raw`, then fix or delete it",
            raw=body,
            bucket=self.objects.bucket_name,
            key=key,
        )

    # -- shared machinery ---------------------------------------------------

    def _concurrency(self, concurrency: int | None) -> int:
        return self.objects.default_concurrency if concurrency is None else concurrency

    async def _each(
        self,
        items: builtins.list[T],
        fn: Callable[[T], Awaitable[None]],
        concurrency: int | None,
    ) -> dict[T, SessionStoreError]:
        return await each(items, fn, self._concurrency(concurrency))

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
            bucket=self.objects.bucket_name,
        )

    def _id_of(self, session: S) -> SessionId:
        session_id = getattr(session, "id", None)
        if session_id is None:
            raise InvalidSessionIdError("the session's id is None: set session.id before saving")
        return cast(SessionId, session_id)

    def _seen(self, session: S, name: str) -> _Seen | None:
        """The version `session` (or the object it was copied from) was loaded or saved as."""
        seen = _carried(session)
        if seen is not None and seen.location == (self.objects.bucket_name, name):
            return seen
        return None

    def _remember(self, session: S, name: str, version: StoredVersion | None) -> None:
        """Carry the version `session` was loaded or saved as (None: as if new)."""
        if version is None:
            session.__dict__.pop(_SEEN, None)
            return
        location = (self.objects.bucket_name, name)
        session.__dict__[_SEEN] = _Seen(location, version.version, version.writes)

    def _forget_log(self, session_id: SessionId) -> None:
        """Forget where the session's event log ended (it was erased)."""
        self._logs.pop(session_id, None)


def _position_of(info: ObjectInfo, folder: str) -> int | None:
    """The position an event object's name holds, or None for a name that holds none."""
    digits = info.name[len(folder) : -len(".json")]
    return int(digits) if digits.isdigit() and digits.isascii() else None


class InMemorySessionStore(SessionStore[S]):
    """A store in this process's memory, with the same semantics as `S3SessionStore`.

    It keeps serialized bytes (`InMemoryObjects`), so changing an object after
    saving or loading it never changes what is stored, and versions behave as
    S3's ETags do: the unit tests of an agent meet the same conflicts as
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
        self._memory = InMemoryObjects(prefix=prefix, max_object_bytes=max_session_bytes)
        super().__init__(self._memory, model=model, concurrency=concurrency)

    def peer(self) -> InMemorySessionStore[S]:
        """Another store over the same objects, as a second process sees one bucket.

        The peer shares what is stored but not the versions this store has seen,
        so two peers stand for two concurrent Lambda invocations in a unit test.
        """
        peer = InMemorySessionStore(model=self.model, concurrency=self.concurrency)
        peer._memory = peer.objects = self._memory.peer()
        return peer
