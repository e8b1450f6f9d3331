"""Google ADK sessions in S3: `S3SessionService`, a `BaseSessionService` on
s3store's object layer (`pip install 's3store[adk]'`).

ADK's `BaseSessionService` owns what an event does to a session: a partial event
is not kept, `temp:` state reaches the running invocation but is never stored,
the rest of a state delta lands in its scope. This service takes those steps
from the base class, as ADK's own `DatabaseSessionService` does, and stores
what they leave. Its objects, under the objects' prefix, each name component
percent-encoded:

- `adk/<app>/<user>/<session>.jsonl`: the session. A header line (its
  session-scoped state and last update time), then one line per event, oldest
  first, each as ADK serialises an `Event`.
- `adk/<app>/<user>.json`: the user's `user:` state, shared by their sessions.
- `adk/<app>.json`: the app's `app:` state, shared by all its users.

So a turn rewrites only its own session's object, and a user's or the app's
state object only when an event carries a `user:` or `app:` delta.

What a turn costs in requests: `get_session` is three GETs at once (the
session, the user state, the app state); each `append_event` is one
conditional PUT of the session object (the service keeps what it last read or
wrote of its recent sessions, up to 32 MiB, so it needs no GET first), plus a
GET and a PUT of the user's or the app's state object for an event with a
delta in that scope. A text turn of ADK's `Runner` (the user's message and the
model's answer) is 3 GETs and 2 PUTs, one with a tool call 3 GETs and 4 PUTs.
`list_sessions` reads the listing alone, 1,000 sessions a request.

Concurrency: a `Session` carries the ETag of the version of its object it was
read or last written as (ADK's storage revision marker), and `append_event`
writes only over that version. A copy another process (another Lambda
invocation) has appended to since is refused with ADK's `StaleSessionError`,
and nothing of the refused event is stored: get the session again and retry.
`user:` and `app:` state is merged key by key, retried on conflict, after the
session's own write succeeded: should that merge fail, the event is stored and
its delta, kept in the event, is not applied to the shared state.
"""

from __future__ import annotations

import asyncio
import copy
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote, unquote

from google.adk.errors import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.platform import time as platform_time
from google.adk.platform import uuid as platform_uuid
from google.adk.sessions import BaseSessionService, Session, State, _session_util
from google.adk.sessions.base_session_service import GetSessionConfig, ListSessionsResponse
from pydantic import BaseModel, Field, ValidationError
from typing_extensions import Self, override

from s3store.errors import ConfigurationError, InvalidSessionIdError, SessionConflictError
from s3store.objects import ModelCodec, Objects, StoredVersion
from s3store.s3 import S3Objects

__all__ = ["S3SessionService"]

_ROOT = "adk/"
_SESSION_SUFFIX = ".jsonl"
_JSON_LINES = "application/x-ndjson"
_REMEMBERED_BYTES = 32 * 1024 * 1024
"""How much of the sessions it read or wrote lately a service keeps, as stored, so that
an append to one is a single PUT rather than a GET and a PUT; the least recently used
are forgotten first."""
_STALE = (
    "The session has been modified in storage since it was loaded. "
    "Please reload the session before appending more events."
)
"""ADK's own wording, which callers match on."""


class _Header(BaseModel):
    """The first line of a session object: all of the session but its events."""

    app_name: str
    user_id: str
    id: str
    state: dict[str, Any]
    last_update_time: float


class _ScopedState(BaseModel):
    """A user's or an app's state object: its keys without the `user:`/`app:` prefix."""

    state: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class _Document:
    """A session object: its header, and its events as their stored JSON lines,
    so that an append serialises one event, not the whole history."""

    header: _Header
    events: tuple[bytes, ...]


class _SessionCodec:
    def decode(self, body: bytes) -> _Document:
        header, *events = body.split(b"\n")
        return _Document(_Header.model_validate_json(header), tuple(events))

    def encode(self, document: _Document) -> bytes:
        return b"\n".join((document.header.model_dump_json().encode(), *document.events))


class _EventCodec:
    def decode(self, body: bytes) -> Event:
        return Event.model_validate_json(body)

    def encode(self, event: Event) -> bytes:
        # JSON escapes every newline inside a string, so an event is one line.
        return event.model_dump_json(exclude_none=True).encode()


_SESSION = _SessionCodec()
_EVENT = _EventCodec()
_SCOPED = ModelCodec(_ScopedState)


@dataclass(frozen=True)
class _Seen:
    """A session object as this service last read or wrote it, and its size in bytes."""

    version: StoredVersion
    document: _Document
    size: int


class S3SessionService(BaseSessionService):
    """ADK sessions as objects in an S3 bucket; see the module's docs for the layout.

    `S3SessionService(bucket, **options)` takes `S3Objects`' keyword options
    (`prefix`, `endpoint_url`, `kms_key_id`, ...); `from_env()` reads the bucket
    and prefix from the environment. `objects=` stores in the given objects
    instead: `InMemoryObjects()` is the twin for unit tests, and its `peer()` a
    second process over the same objects.
    """

    def __init__(
        self, bucket: str | None = None, *, objects: Objects | None = None, **options: Any
    ) -> None:
        if objects is None:
            if bucket is None:
                raise ConfigurationError("give S3SessionService a bucket, or objects=")
            objects = S3Objects(bucket, **options)
        elif bucket is not None or options:
            raise ConfigurationError(
                "objects= holds the bucket, prefix and options already: give one or the other"
            )
        self.objects = objects
        self._seen: OrderedDict[str, _Seen] = OrderedDict()
        self._seen_bytes = 0
        # One lock per session appended to in this process, as DatabaseSessionService
        # holds: appends through one Session object then follow each other instead
        # of failing as stale. Weak, so that a lock lasts only while in use.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @classmethod
    def from_env(cls, **options: Any) -> Self:
        """A service on `S3Objects.from_env(**options)`: the bucket, prefix and KMS key
        from `S3STORE_BUCKET`, `S3STORE_PREFIX` and `S3STORE_KMS_KEY_ID`; keyword
        options win over them."""
        return cls(objects=S3Objects.from_env(**options))

    async def close(self) -> None:
        """Close the objects' client; a later call opens it again."""
        await self.objects.close()

    async def __aenter__(self) -> Self:
        await self.objects.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # -- BaseSessionService ----------------------------------------------------------

    @override
    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        """Create the session object (only if there is none: `AlreadyExistsError`),
        then merge the `app:` and `user:` keys of `state` into their objects."""
        session_id = (session_id or "").strip() or platform_uuid.new_uuid()
        name = _session_name(app_name, user_id, session_id)
        deltas = _session_util.extract_json_safe_state_delta(state or {})
        header = _Header(
            app_name=app_name,
            user_id=user_id,
            id=session_id,
            state=deltas["session"],
            last_update_time=platform_time.get_time(),
        )
        document = _Document(header, ())
        body = self.objects.encode(_SESSION, document, self.objects.key(name))
        try:
            version = await self.objects.write(name, body, base=None, content_type=_JSON_LINES)
        except SessionConflictError:
            raise AlreadyExistsError(f"Session with id {session_id} already exists.") from None
        self._remember(name, _Seen(version, document, len(body)))
        app_state, user_state = await asyncio.gather(
            self._scoped_state(_app_state_name(app_name), deltas["app"]),
            self._scoped_state(_user_state_name(app_name, user_id), deltas["user"]),
        )
        return _session(document, version.version, app_state, user_state, [])

    @override
    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None:
        """The session with its app and user state merged in, and its events (the
        last `num_recent_events`, from `after_timestamp` on); None if there is none."""
        name = _session_name(app_name, user_id, session_id.strip())
        stored, app_state, user_state = await asyncio.gather(
            self.objects.read(name),
            self._scoped_state(_app_state_name(app_name), {}),
            self._scoped_state(_user_state_name(app_name, user_id), {}),
        )
        if stored is None:
            return None
        key = self.objects.key(name)
        document = self.objects.decode(_SESSION, stored.body, key)
        self._remember(
            name, _Seen(StoredVersion(stored.version, stored.writes), document, len(stored.body))
        )
        events = self._recent_events(document, config, stored.body, key)
        return _session(document, stored.version, app_state, user_state, events)

    @override
    async def list_sessions(
        self, *, app_name: str, user_id: str | None = None
    ) -> ListSessionsResponse:
        """The app's sessions (or one user's), oldest update first, from the listing
        alone: as the base class documents, without events or state, and with the
        object's LastModified (whole seconds on S3) as `last_update_time`."""
        app_folder = _app_folder(app_name)
        folder = app_folder if user_id is None else f"{app_folder}{_part(user_id, 'user_id')}/"
        sessions = []
        async for info in self.objects.iter_objects(folder, recursive=user_id is None):
            user, _, file = info.name[len(app_folder) :].partition("/")
            if not file.endswith(_SESSION_SUFFIX) or "/" in file:
                continue  # a user's state object, or not this service's
            session = Session(
                id=unquote(file[: -len(_SESSION_SUFFIX)]),
                app_name=app_name,
                user_id=unquote(user),
                last_update_time=info.last_modified.timestamp(),
            )
            session._storage_update_marker = info.etag
            sessions.append(session)
        sessions.sort(key=lambda session: (session.last_update_time, session.user_id, session.id))
        return ListSessionsResponse(sessions=sessions)

    @override
    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        """Delete the session object; the user's and the app's state stay."""
        name = _session_name(app_name, user_id, session_id.strip())
        self._forget(name)
        await self.objects.delete(name)

    @override
    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        """The user's state, without the `user:` prefix; empty when none is stored."""
        return await self._scoped_state(_user_state_name(app_name, user_id), {})

    @override
    async def append_event(self, session: Session, event: Event) -> Event:
        """Store the event in the session object, written only over the version
        `session` holds (`StaleSessionError` otherwise, `SessionNotFoundError` when
        it was deleted), then merge its `user:` and `app:` deltas into their objects."""
        if event.partial:
            return event
        # The base class's own steps, in DatabaseSessionService's order: `temp:` state
        # reaches the running session but not the stored event, and the event joins
        # the session object only once it is stored.
        self._apply_temp_state(session, event)
        event = self._trim_temp_delta_state(event)
        await self._store_event(session, event)
        return self._commit_event_to_session(session, event)

    # -- storing -----------------------------------------------------------------------

    async def _store_event(self, session: Session, event: Event) -> None:
        name = _session_name(session.app_name, session.user_id, session.id)
        key = self.objects.key(name)
        line = self.objects.encode(_EVENT, event, key)
        delta = event.actions.state_delta if event.actions else {}
        deltas = _session_util.extract_json_safe_state_delta(delta)
        async with self._lock(name):
            seen = await self._current(name, session)
            header = seen.document.header.model_copy(
                update={
                    "state": {**seen.document.header.state, **deltas["session"]},
                    "last_update_time": event.timestamp,
                }
            )
            document = _Document(header, (*seen.document.events, line))
            body = self.objects.encode(_SESSION, document, key)
            try:
                version = await self.objects.write(
                    name, body, base=seen.version, content_type=_JSON_LINES
                )
            except SessionConflictError:
                self._forget(name)
                raise await self._refusal(name, session) from None
            self._remember(name, _Seen(version, document, len(body)))
            session._storage_update_marker = version.version
            session.last_update_time = event.timestamp
        scoped = (
            (_app_state_name(session.app_name), deltas["app"]),
            (_user_state_name(session.app_name, session.user_id), deltas["user"]),
        )
        await asyncio.gather(
            *(self._scoped_state(state, delta) for state, delta in scoped if delta)
        )

    async def _current(self, name: str, session: Session) -> _Seen:
        """The stored version `session` was read or written as, with its document;
        `StaleSessionError` when the stored object is another one."""
        marker = session._storage_update_marker
        seen = self._seen.get(name)
        if seen is not None and marker is not None and seen.version.version == marker:
            return seen
        stored = await self.objects.read(name)
        if stored is None:
            raise SessionNotFoundError(f"Session {session.id} not found.")
        key = self.objects.key(name)
        document = self.objects.decode(_SESSION, stored.body, key)
        if marker is not None:
            current = stored.version == marker
        else:
            # A session without a marker (built by hand): current if it ends with the
            # event stored last, as DatabaseSessionService decides.
            count = len(document.events)
            stored_last = (
                self._parse_event(document.events[-1], count, stored.body, key).id
                if count
                else None
            )
            current = stored_last == (session.events[-1].id if session.events else None)
        if not current:
            raise StaleSessionError(_STALE)
        return _Seen(StoredVersion(stored.version, stored.writes), document, len(stored.body))

    async def _refusal(self, name: str, session: Session) -> Exception:
        """Why a write over the session's version failed: deleted, or written since."""
        if await self.objects.head(name) is None:
            return SessionNotFoundError(f"Session {session.id} not found.")
        return StaleSessionError(_STALE)

    async def _scoped_state(self, name: str, delta: dict[str, Any]) -> dict[str, Any]:
        """A user's or app's state, with `delta` merged in and stored first if any."""
        if not delta:
            stored = await self.objects.read(name)
            if stored is None:
                return {}
            return self.objects.decode(_SCOPED, stored.body, self.objects.key(name)).state

        def merge(current: _ScopedState | None) -> _ScopedState:
            return _ScopedState(state={**(current.state if current else {}), **delta})

        updated = await self.objects.update(name, merge, codec=_SCOPED)
        return updated.document.state

    def _remember(self, name: str, seen: _Seen) -> None:
        self._forget(name)
        self._seen[name] = seen
        self._seen_bytes += seen.size
        while self._seen_bytes > _REMEMBERED_BYTES:
            _, oldest = self._seen.popitem(last=False)
            self._seen_bytes -= oldest.size

    def _forget(self, name: str) -> None:
        forgotten = self._seen.pop(name, None)
        if forgotten is not None:
            self._seen_bytes -= forgotten.size

    def _lock(self, name: str) -> asyncio.Lock:
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        return lock

    # -- reading -----------------------------------------------------------------------

    def _recent_events(
        self, document: _Document, config: GetSessionConfig | None, body: bytes, key: str
    ) -> list[Event]:
        """The events `config` asks for, parsed from the newest back as far as needed,
        with InMemorySessionService's rules: the last `num_recent_events`, and of
        those the ones after the last event before `after_timestamp`."""
        limit = None if config is None else config.num_recent_events
        after = None if config is None else config.after_timestamp
        events: list[Event] = []
        for index in range(len(document.events), 0, -1):
            if limit is not None and len(events) == limit:
                break
            event = self._parse_event(document.events[index - 1], index, body, key)
            if after is not None and event.timestamp < after:
                break
            events.append(event)
        events.reverse()
        return events

    def _parse_event(self, line: bytes, number: int, body: bytes, key: str) -> Event:
        """The `number`th event (1-based) of a session object, or `CorruptSessionError`."""
        try:
            return _EVENT.decode(line)
        except ValidationError as exc:
            problem = exc.errors(include_url=False, include_input=False)[0]["msg"]
            raise self.objects.corrupt(
                f"has an event ({number}) ADK cannot read ({problem})", body, key
            ) from None


def _session(
    document: _Document,
    version: str,
    app_state: dict[str, Any],
    user_state: dict[str, Any],
    events: list[Event],
) -> Session:
    """The ADK session of a stored document, its app and user state merged in as
    DatabaseSessionService merges them."""
    header = document.header
    # A copy: the caller may change its session's state, never the remembered document.
    state = copy.deepcopy(header.state)
    state.update({State.APP_PREFIX + key: value for key, value in app_state.items()})
    state.update({State.USER_PREFIX + key: value for key, value in user_state.items()})
    session = Session(
        id=header.id,
        app_name=header.app_name,
        user_id=header.user_id,
        state=state,
        events=events,
        last_update_time=header.last_update_time,
    )
    session._storage_update_marker = version
    return session


def _part(value: str, what: str) -> str:
    """One name component: percent-encoded, "." too, so that it holds no "/" and can
    never read as a "." or ".." path segment."""
    if not value:
        raise InvalidSessionIdError(
            f"{what} is empty: an ADK session needs an app, a user and an id"
        )
    return quote(value, safe="").replace(".", "%2E")


def _app_folder(app_name: str) -> str:
    return f"{_ROOT}{_part(app_name, 'app_name')}/"


def _app_state_name(app_name: str) -> str:
    return f"{_ROOT}{_part(app_name, 'app_name')}.json"


def _user_state_name(app_name: str, user_id: str) -> str:
    return f"{_app_folder(app_name)}{_part(user_id, 'user_id')}.json"


def _session_name(app_name: str, user_id: str, session_id: str) -> str:
    user = _part(user_id, "user_id")
    return f"{_app_folder(app_name)}{user}/{_part(session_id, 'session_id')}{_SESSION_SUFFIX}"
