"""Strands Agents sessions on s3store: a drop-in for Strands' own `S3SessionManager`.

::

    from s3store.strands import S3SessionManager

    agent = Agent(session_manager=S3SessionManager(session_id="chat-42", bucket="my-bucket"))

Like Strands' class, the manager is a `RepositorySessionManager` (Strands' own
lifecycle hooks: initialize, append, sync, redact) that is its own
`SessionRepository`. What differs is the storage:

- One object per session, `<prefix>session_<id>.json`: the session, its agents
  with their messages, and its multi-agent states (Graph, Swarm) in one JSON
  document. Loading an agent is one GET, not a GET per message, and a turn
  writes one PUT per message added; a sync of an agent that changes nothing but
  its `updated_at` writes nothing.
- Every change is a conditional write. A change is made on the copy this
  manager last read or wrote and written only over that version; when the
  stored version is another, `objects.update()` makes it again on what is
  stored, retrying on conflict. Two managers (two concurrent invocations)
  appending at once both land, once each: a new message takes the next id of
  the stored session, and the `SessionMessage` Strands holds is given that id,
  so a later redaction rewrites the right message.
- `request_id=` (a Lambda request id, or a callable returning the current one)
  makes a retried invocation append its messages once: each message's
  idempotency key is the request id, the agent and the message's position in
  the invocation.
- A session that Strands' `S3SessionManager` wrote under the same bucket and
  prefix (`session_<id>/session.json`, `.../agents/agent_<id>/agent.json`,
  `.../messages/message_<n>.json`) is carried over on first use: read, and
  written as one object if none exists yet; the old objects are left in place.
  `migrate_prefix()` carries over every session under a prefix at once.
- `S3SessionManager(session_id, objects=InMemoryObjects())` keeps sessions in
  memory, for unit tests (`objects.peer()`: a second process's view).

Strands calls its repository synchronously, from plain threads and from inside
its own running event loop. Every call runs on one background event loop
shared by all managers (`s3store.sync.BackgroundLoop`), so a manager made per
invocation reuses the client of the one before; managers made with the same
bucket, prefix and options share one `S3Objects`, and so one client. The loop,
and the clients on it, are closed at exit.
"""

from __future__ import annotations

import contextvars
import copy
import dataclasses
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import from_json, to_json

from s3store.errors import (
    BulkOperationError,
    ConfigurationError,
    InvalidSessionIdError,
    SessionConflictError,
)
from s3store.objects import ModelCodec, Objects, StoredVersion, each
from s3store.s3 import S3Objects, bucket_from_env
from s3store.sync import BackgroundLoop

try:
    from strands.session.repository_session_manager import RepositorySessionManager
    from strands.session.session_repository import SessionRepository
    from strands.types.exceptions import SessionException
    from strands.types.session import Session, SessionAgent, SessionMessage, decode_bytes_values
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "s3store.strands needs Strands Agents: pip install 's3store[strands]'"
    ) from exc

if TYPE_CHECKING:
    from strands.multiagent.base import MultiAgentBase
    from strands.types.agent import LocalAgent
    from typing_extensions import Self

__all__ = [
    "AgentEntry",
    "AgentRecord",
    "MessageRecord",
    "S3SessionManager",
    "SessionRecord",
    "StrandsDocument",
    "migrate_prefix",
]

T = TypeVar("T")
logger = logging.getLogger(__name__)

# -- the stored document ----------------------------------------------------------


class _Record(BaseModel):
    """A record as Strands' `to_dict()` gives it: the fields s3store relies on are
    checked, the rest (and any a later Strands adds) kept as they are."""

    model_config = ConfigDict(extra="allow")


class SessionRecord(_Record):
    """Strands' `Session`."""

    session_id: str
    session_type: str
    created_at: str
    updated_at: str


class AgentRecord(_Record):
    """Strands' `SessionAgent` (its `_internal_state` is kept among the extra fields)."""

    agent_id: str
    state: dict[str, Any]
    conversation_manager_state: dict[str, Any]
    created_at: str
    updated_at: str


class MessageRecord(_Record):
    """Strands' `SessionMessage`, bytes base64-encoded as Strands encodes them."""

    message: dict[str, Any]
    message_id: int
    redact_message: dict[str, Any] | None = None
    created_at: str
    updated_at: str


class AgentEntry(BaseModel):
    """An agent of the session and its messages, in message id order."""

    agent: AgentRecord
    messages: list[MessageRecord] = Field(default_factory=list)


class StrandsDocument(BaseModel):
    """One Strands session as s3store stores it: everything in one JSON object."""

    session: SessionRecord
    agents: dict[str, AgentEntry] = Field(default_factory=dict)
    multi_agents: dict[str, dict[str, Any]] = Field(default_factory=dict)


_CODEC = ModelCodec(StrandsDocument)
_KEY_FIELD = "s3store_idempotency_key"
"""Kept in a message's record when it was appended with an idempotency key, so a
retry finds the message (and its id) that its first attempt stored."""

# -- names ------------------------------------------------------------------------

_SESSION_FOLDER = "session_"
# A Strands S3SessionManager object, by its name under the session's folder.
_LEGACY_NAME = re.compile(
    r"agents/agent_(?P<agent>[^/]+)/(?:agent\.json|messages/message_(?P<message>\d+)\.json)"
    r"|multi_agents/multi_agent_(?P<multi_agent>[^/]+)/multi_agent\.json"
)


def _checked(identifier: str, kind: str) -> str:
    """`identifier`, refused as Strands refuses it (a `ValueError`) if it holds a path separator."""
    if os.path.basename(identifier) != identifier:
        raise InvalidSessionIdError(f"{kind}_id={identifier} | id cannot contain path separators")
    return identifier


def _checked_message_id(message_id: int) -> int:
    if not isinstance(message_id, int):
        raise InvalidSessionIdError(f"message_id=<{message_id}> | message id must be an integer")
    return message_id


def _name(session_id: str) -> str:
    """The session's object, beside the folder Strands' S3SessionManager uses."""
    return f"{_SESSION_FOLDER}{_checked(session_id, 'session')}.json"


def _legacy_folder(session_id: str) -> str:
    return f"{_SESSION_FOLDER}{_checked(session_id, 'session')}/"


def _strands_prefix(prefix: str) -> str:
    """A prefix as Strands' S3SessionManager reads it: no leading or trailing `/` but one
    to end it (`/a/b/` and `a/b` are both `a/b/`), `""` the bucket root."""
    stripped = prefix.strip("/")
    return f"{stripped}/" if stripped else ""


# -- the manager ------------------------------------------------------------------

_BACKGROUND = BackgroundLoop("s3store strands")
"""One loop for every manager: the shared `S3Objects`' client lives on it, so warm
invocations reuse it, and it closes at exit."""

_RESTORING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "s3store_strands_restoring", default=False
)
"""Set while `initialize()` restores an agent: its reads answer from the copy the
manager loaded, and the messages it creates for a new agent take no idempotency key
(a retry that finds the agent restores it rather than creating them again)."""


_shared: dict[tuple[str, str, tuple[tuple[str, Any], ...]], S3Objects] = {}
_shared_lock = threading.Lock()


def _shared_objects(bucket: str, prefix: str, options: dict[str, Any]) -> S3Objects:
    """One `S3Objects` (and so one client) per bucket, prefix and options, for the process.

    Under a lock: two managers made at once in two threads must not make two, or the
    one left out would be dropped with its client still open on the loop."""
    key = (bucket, prefix, tuple(sorted(options.items())))
    with _shared_lock:
        objects = _shared.get(key)
        if objects is None:
            objects = _shared[key] = S3Objects(bucket, prefix=prefix, **options)
    return objects


class _Copy(NamedTuple):
    """The document as this manager last read or wrote it (None: no session), and its
    version (None: nothing stored): what its next write builds on."""

    document: StrandsDocument | None
    version: StoredVersion | None


_Change = Callable[[StrandsDocument | None], StrandsDocument | None]
"""Makes a change on a document (in place, or a new one for a new session) and returns
it, or None when there is nothing to write; raises `SessionException` when the change
cannot be made."""


class S3SessionManager(RepositorySessionManager, SessionRepository):
    """A Strands session manager keeping each session as one object in S3.

    `S3SessionManager(session_id=..., bucket=..., prefix=...)` takes Strands'
    arguments; further keyword options go to `S3Objects` (`endpoint_url`,
    `region_name`, `config`, `kms_key_id`, ...). `objects=` stores in the given
    objects instead (`InMemoryObjects()` in unit tests), used on the managers'
    background loop. `request_id=` (a string, or a callable returning the
    current one or None) makes a retry of the same request append its messages once.

    Storage failures raise s3store's typed errors (`s3store.errors`); a session,
    agent, message or multi-agent state that must exist and does not, or a
    session created twice, raises Strands' `SessionException`, as Strands' does.
    """

    def __init__(
        self,
        session_id: str,
        bucket: str | None = None,
        prefix: str = "",
        *,
        objects: Objects | None = None,
        request_id: str | Callable[[], str | None] | None = None,
        **options: Any,
    ) -> None:
        if objects is None:
            if bucket is None:
                raise ConfigurationError("give the bucket to keep sessions in, or objects=")
            objects = _shared_objects(bucket, _strands_prefix(prefix), options)
        elif bucket is not None or prefix or options:
            raise ConfigurationError(
                "objects= holds the bucket, prefix and options already: give one or the other"
            )
        self.objects = objects
        self._request_id = request_id
        self._copies: dict[str, _Copy] = {}  # by session id; used on the background loop only
        self._positions: dict[tuple[str, str], int] = {}  # messages appended, by request and agent
        self._positions_lock = threading.Lock()
        try:
            super().__init__(session_id=session_id, session_repository=self)
        except SessionException:
            # Another manager created the session between Strands' read and create (two
            # first invocations at once): this one starts from theirs.
            super().__init__(session_id=session_id, session_repository=self)

    @classmethod
    def from_env(cls, session_id: str, **options: Any) -> Self:
        """A manager for the bucket and prefix the environment names (`S3STORE_BUCKET`,
        `S3STORE_PREFIX`, `S3STORE_KMS_KEY_ID`, as `S3Objects.from_env()` reads them);
        keyword options win over the environment."""
        bucket = bucket_from_env(None, options)
        return cls(session_id, bucket, **options)

    def __repr__(self) -> str:
        return f"S3SessionManager(session_id={self.session_id!r}, objects={self.objects!r})"

    # -- lifecycle: Strands' own, reading the session once ---------------------------

    def initialize(self, agent: LocalAgent, **kwargs: Any) -> None:
        """Strands' `initialize()`, answering its reads from the session as loaded."""
        token = _RESTORING.set(True)
        try:
            super().initialize(agent, **kwargs)
        finally:
            _RESTORING.reset(token)

    def initialize_multi_agent(self, source: MultiAgentBase, **kwargs: Any) -> None:
        """Strands' `initialize_multi_agent()`, answering its read from the session as loaded."""
        token = _RESTORING.set(True)
        try:
            super().initialize_multi_agent(source, **kwargs)
        finally:
            _RESTORING.reset(token)

    # -- sessions ---------------------------------------------------------------------

    def create_session(self, session: Session, **kwargs: Any) -> Session:
        """Create the session; `SessionException` if it exists."""

        def create(current: StrandsDocument | None) -> StrandsDocument:
            if current is not None:
                raise SessionException(f"Session {session.session_id} already exists")
            return StrandsDocument(session=SessionRecord.model_validate(session.to_dict()))

        self._run(self._change(session.session_id, create))
        return session

    def read_session(self, session_id: str, **kwargs: Any) -> Session | None:
        """The session, or None."""

        def view(document: StrandsDocument | None) -> Session | None:
            return None if document is None else Session.from_dict(document.session.model_dump())

        return self._view(session_id, view)

    def delete_session(self, session_id: str, **kwargs: Any) -> None:
        """Delete the session, and what Strands' own manager stored of it;
        `SessionException` if there is neither."""
        self._run(self._delete(session_id))

    # -- agents -----------------------------------------------------------------------

    def create_agent(self, session_id: str, session_agent: SessionAgent, **kwargs: Any) -> None:
        """Store the agent (over one of the same id, keeping its messages, as Strands does)."""
        agent_id = _checked(session_agent.agent_id, "agent")
        record = AgentRecord.model_validate(session_agent.to_dict())

        def create(document: StrandsDocument | None) -> StrandsDocument:
            document = _existing(document, session_id)
            entry = document.agents.get(agent_id)
            if entry is None:
                document.agents[agent_id] = AgentEntry(agent=record)
            else:
                entry.agent = record
            return document

        self._run(self._change(session_id, create))

    def read_agent(self, session_id: str, agent_id: str, **kwargs: Any) -> SessionAgent | None:
        """The agent, or None."""
        _checked(agent_id, "agent")

        def view(document: StrandsDocument | None) -> SessionAgent | None:
            entry = None if document is None else document.agents.get(agent_id)
            return None if entry is None else SessionAgent.from_dict(entry.agent.model_dump())

        return self._view(session_id, view)

    def update_agent(self, session_id: str, session_agent: SessionAgent, **kwargs: Any) -> None:
        """Store the agent, keeping its creation time; `SessionException` if it does not
        exist. Nothing is written when only `updated_at` would change."""
        agent_id = _checked(session_agent.agent_id, "agent")

        def update(document: StrandsDocument | None) -> StrandsDocument | None:
            entry = _agent(document, session_id, agent_id)
            session_agent.created_at = entry.agent.created_at
            record = AgentRecord.model_validate(session_agent.to_dict())
            if _same(record, entry.agent):
                return None
            entry.agent = record
            return document

        self._run(self._change(session_id, update))

    # -- messages ---------------------------------------------------------------------

    def create_message(
        self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any
    ) -> None:
        """Append the message as the stored session's next one, and set
        `session_message.message_id` to its id there; `SessionException` if the agent
        does not exist."""
        _checked(agent_id, "agent")
        self._run(self._append(session_id, agent_id, session_message, self._message_key(agent_id)))

    def read_message(
        self, session_id: str, agent_id: str, message_id: int, **kwargs: Any
    ) -> SessionMessage | None:
        """The message, or None."""
        _checked(agent_id, "agent")
        _checked_message_id(message_id)

        def view(document: StrandsDocument | None) -> SessionMessage | None:
            entry = None if document is None else document.agents.get(agent_id)
            found = None if entry is None else _message(entry, message_id)
            return None if found is None else _session_messages([found])[0]

        return self._view(session_id, view)

    def update_message(
        self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any
    ) -> None:
        """Store the message over the one of its id, keeping its creation time;
        `SessionException` if there is none."""
        _checked(agent_id, "agent")
        message_id = _checked_message_id(session_message.message_id)

        def update(document: StrandsDocument | None) -> StrandsDocument:
            entry = _agent(document, session_id, agent_id)
            found = _message(entry, message_id)
            if found is None or document is None:
                raise SessionException(f"Message {message_id} does not exist")
            session_message.created_at = found.created_at
            key = (found.model_extra or {}).get(_KEY_FIELD)
            entry.messages[entry.messages.index(found)] = _message_record(session_message, key)
            return document

        self._run(self._change(session_id, update))

    def list_messages(
        self,
        session_id: str,
        agent_id: str,
        limit: int | None = None,
        offset: int = 0,
        **kwargs: Any,
    ) -> list[SessionMessage]:
        """The agent's messages in id order, from `offset`, at most `limit` of them."""
        _checked(agent_id, "agent")

        def view(document: StrandsDocument | None) -> list[SessionMessage]:
            entry = None if document is None else document.agents.get(agent_id)
            if entry is None:
                return []
            end = None if limit is None else offset + limit
            return _session_messages(entry.messages[offset:end])

        return self._view(session_id, view)

    # -- multi-agent state (Graph, Swarm) ---------------------------------------------

    def create_multi_agent(
        self, session_id: str, multi_agent: MultiAgentBase, **kwargs: Any
    ) -> None:
        """Store the multi-agent state (over one of the same id, as Strands does)."""
        multi_agent_id = _checked(multi_agent.id, "agent")
        state = copy.deepcopy(multi_agent.serialize_state())  # the copy must not follow it

        def create(document: StrandsDocument | None) -> StrandsDocument:
            document = _existing(document, session_id)
            document.multi_agents[multi_agent_id] = state
            return document

        self._run(self._change(session_id, create))

    def read_multi_agent(
        self, session_id: str, multi_agent_id: str, **kwargs: Any
    ) -> dict[str, Any] | None:
        """The multi-agent state, or None."""
        _checked(multi_agent_id, "agent")

        def view(document: StrandsDocument | None) -> dict[str, Any] | None:
            state = None if document is None else document.multi_agents.get(multi_agent_id)
            return None if state is None else copy.deepcopy(state)

        return self._view(session_id, view)

    def update_multi_agent(
        self, session_id: str, multi_agent: MultiAgentBase, **kwargs: Any
    ) -> None:
        """Store the multi-agent state; `SessionException` if it does not exist."""
        multi_agent_id = _checked(multi_agent.id, "agent")
        state = copy.deepcopy(multi_agent.serialize_state())  # the copy must not follow it

        def update(document: StrandsDocument | None) -> StrandsDocument:
            document = _existing(document, session_id)
            if multi_agent_id not in document.multi_agents:
                raise SessionException(
                    f"MultiAgent state {multi_agent_id} in session {session_id} does not exist"
                )
            document.multi_agents[multi_agent_id] = state
            return document

        self._run(self._change(session_id, update))

    # -- on the background loop -------------------------------------------------------

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return _BACKGROUND.run(coroutine)

    def _view(self, session_id: str, view: Callable[[StrandsDocument | None], T]) -> T:
        """`view` of the stored session, read now; while restoring an agent, of the copy
        loaded last. It runs on the loop, where no change can touch the copy meanwhile."""
        restoring = _RESTORING.get()

        async def read() -> T:
            current = self._copies.get(session_id) if restoring else None
            if current is None:
                current = await self._load(session_id)
                self._copies[session_id] = current
            return view(current.document)

        return self._run(read())

    async def _load(self, session_id: str) -> _Copy:
        """The stored session; one that Strands' own manager stored is carried over first."""
        name = _name(session_id)
        while True:
            stored = await self.objects.read(name)
            if stored is not None:
                document = self.objects.decode(_CODEC, stored.body, self.objects.key(name))
                return _Copy(document, StoredVersion(stored.version, stored.writes))
            carried = await _carry_over(self.objects, session_id)
            if carried is None:
                return _Copy(None, None)
            version = await _store_new(self.objects, session_id, carried)
            if version is not None:
                return _Copy(carried, version)
            # Another manager stored the session meanwhile: read theirs.

    async def _change(self, session_id: str, change: _Change, key: str | None = None) -> _Copy:
        """Make `change` on this manager's copy and write it over that version; when the
        copy is not what is stored (or says the change cannot be made), make it with
        `update()` on what is stored instead. Returns what is stored now."""
        name = _name(session_id)
        current = self._copies.pop(session_id, None)
        if current is None:
            current = await self._load(session_id)
        written = await self._change_copy(name, current, change, key)
        if written is None:
            updated = await self.objects.update(
                name,
                lambda stored: change(stored) or stored,
                codec=_CODEC,
                idempotency_key=key,
            )
            written = _Copy(updated.document, updated.version)
        self._copies[session_id] = written
        return written

    async def _change_copy(
        self, name: str, current: _Copy, change: _Change, key: str | None
    ) -> _Copy | None:
        try:
            changed = change(current.document)
        except SessionException:
            return None  # the copy may be out of date: let what is stored decide
        if changed is None:
            return current
        body = self.objects.encode(_CODEC, changed, self.objects.key(name))
        try:
            version = await self.objects.write(
                name, body, base=current.version, idempotency_key=key
            )
        except SessionConflictError:
            return None
        return _Copy(changed, version)

    async def _append(
        self, session_id: str, agent_id: str, session_message: SessionMessage, key: str | None
    ) -> None:
        def append(document: StrandsDocument | None) -> StrandsDocument | None:
            entry = _agent(document, session_id, agent_id)
            if key is not None and _keyed(entry, key) is not None:
                return None  # a retry of a request whose message is stored already
            session_message.message_id = entry.messages[-1].message_id + 1 if entry.messages else 0
            entry.messages.append(_message_record(session_message, key))
            return document

        stored = await self._change(session_id, append, key)
        if key is not None and stored.document is not None:
            # Also when update() found the key applied and did not call `append`.
            entry = stored.document.agents.get(agent_id)
            found = None if entry is None else _keyed(entry, key)
            if found is not None:
                session_message.message_id = found.message_id

    async def _delete(self, session_id: str) -> None:
        name = _name(session_id)
        self._copies.pop(session_id, None)
        legacy = [
            info.name
            async for info in self.objects.iter_objects(_legacy_folder(session_id), recursive=True)
        ]
        if await self.objects.head(name) is None and not legacy:
            raise SessionException(f"Session {session_id} does not exist")
        await self.objects.delete(name)
        failed = await self.objects.delete_many(legacy)
        if failed:
            done = [item for item in legacy if item not in failed]
            raise BulkOperationError(
                "delete_session", errors=dict(failed), done=done, bucket=self.objects.bucket_name
            )

    def _message_key(self, agent_id: str) -> str | None:
        """The idempotency key of the agent's next message in this request: the request
        id, the agent and the message's position. None without a request id, and for
        the messages `initialize()` creates."""
        if _RESTORING.get():
            return None
        source = self._request_id
        request_id = source() if callable(source) else source
        if request_id is None:
            return None
        with self._positions_lock:
            position = self._positions.get((request_id, agent_id), 0)
            self._positions[request_id, agent_id] = position + 1
        return f"{request_id}:{agent_id}:{position}"


# -- document helpers ---------------------------------------------------------------


def _existing(document: StrandsDocument | None, session_id: str) -> StrandsDocument:
    if document is None:
        raise SessionException(f"Session {session_id} does not exist")
    return document


def _agent(document: StrandsDocument | None, session_id: str, agent_id: str) -> AgentEntry:
    entry = _existing(document, session_id).agents.get(agent_id)
    if entry is None:
        raise SessionException(f"Agent {agent_id} in session {session_id} does not exist")
    return entry


def _message(entry: AgentEntry, message_id: int) -> MessageRecord | None:
    return next((r for r in entry.messages if r.message_id == message_id), None)


def _keyed(entry: AgentEntry, key: str) -> MessageRecord | None:
    """The message appended with idempotency key `key` (a retry's: look from the end)."""
    return next(
        (r for r in reversed(entry.messages) if (r.model_extra or {}).get(_KEY_FIELD) == key),
        None,
    )


def _message_record(session_message: SessionMessage, key: str | None) -> MessageRecord:
    data = session_message.to_dict()
    if key is not None:
        data[_KEY_FIELD] = key
    return MessageRecord.model_validate(data)


_MESSAGE_FIELDS = frozenset(field.name for field in dataclasses.fields(SessionMessage))
_DECLARED_MESSAGE_FIELDS = tuple(_MESSAGE_FIELDS & MessageRecord.model_fields.keys())
_ENCODED_BYTES = b'"__bytes_encoded__"'


def _session_messages(records: list[MessageRecord]) -> list[SessionMessage]:
    """What `SessionMessage.from_dict()` makes of each record, each with values of its
    own (the agent changes the messages it holds; this manager's copy must not follow).

    One JSON round trip of all the records copies them (the copy holds what a JSON
    object holds, and what it stored is that JSON); Strands' base64 decoding walks
    them only when one holds bytes (a string that merely looks like the marker costs
    the walk, nothing else). At 200 messages: about 0.4 ms, where a `from_dict()` per
    record took 44 ms (its signature inspection) and `decode_bytes_values()` per
    record, copying as it walks, 0.8 ms."""
    fields = [_message_fields(record) for record in records]
    encoded = to_json(fields)
    copied = from_json(encoded)
    if _ENCODED_BYTES in encoded:
        copied = decode_bytes_values(copied)
    return [SessionMessage(**values) for values in copied]


def _message_fields(record: MessageRecord) -> dict[str, Any]:
    """The record's fields that `SessionMessage` takes (one a later Strands adds is
    among the extra fields)."""
    fields = {name: getattr(record, name) for name in _DECLARED_MESSAGE_FIELDS}
    extra = record.model_extra
    if extra:
        fields.update((name, value) for name, value in extra.items() if name in _MESSAGE_FIELDS)
    return fields


def _same(new: AgentRecord, old: AgentRecord) -> bool:
    """Whether the two agent records differ in nothing but their update time."""
    return new.model_dump(exclude={"updated_at"}) == old.model_dump(exclude={"updated_at"})


# -- carrying over what Strands' own S3SessionManager stored ---------------------------


class _JsonObject:
    """The codec of a JSON object as a dict (a multi-agent state)."""

    def decode(self, body: bytes) -> dict[str, Any]:
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, not {type(data).__name__}")
        return data

    def encode(self, document: dict[str, Any]) -> bytes:
        return json.dumps(document).encode()


async def _carry_over(
    objects: Objects, session_id: str, names: list[str] | None = None
) -> StrandsDocument | None:
    """The session Strands' S3SessionManager stored under `session_<id>/` as one
    document, or None when it stored none. `names`: the folder's objects, if listed already.

    Each object is checked as it is read: one that is not what Strands writes raises
    `CorruptSessionError` naming it. Messages of an agent without `agent.json`
    (which Strands' own manager does not restore either) are left out, with a warning.
    """
    folder = _legacy_folder(session_id)
    stored = await objects.read(folder + "session.json")
    if stored is None:
        return None
    session = objects.decode(
        ModelCodec(SessionRecord), stored.body, objects.key(folder + "session.json")
    )
    if names is None:
        names = [info.name async for info in objects.iter_objects(folder, recursive=True)]
    parts = {name: _LEGACY_NAME.fullmatch(name[len(folder) :]) for name in names}
    bodies: dict[str, bytes] = {}

    async def fetch(name: str) -> None:
        found = await objects.read(name)
        if found is not None:  # deleted since the listing
            bodies[name] = found.body

    failed = await each(
        [name for name, part in parts.items() if part], fetch, objects.default_concurrency
    )
    if failed:
        raise next(iter(failed.values()))
    document = StrandsDocument(session=session)
    messages: dict[str, list[tuple[int, MessageRecord]]] = {}
    for name, body in bodies.items():
        part = parts[name]
        assert part is not None
        key = objects.key(name)
        if part["multi_agent"] is not None:
            document.multi_agents[part["multi_agent"]] = objects.decode(_JsonObject(), body, key)
        elif part["message"] is not None:
            record = objects.decode(ModelCodec(MessageRecord), body, key)
            messages.setdefault(part["agent"], []).append((int(part["message"]), record))
        else:
            record_agent = objects.decode(ModelCodec(AgentRecord), body, key)
            document.agents[part["agent"]] = AgentEntry(agent=record_agent)
    for agent_id, numbered in messages.items():
        entry = document.agents.get(agent_id)
        if entry is None:
            logger.warning(
                "session %s: %d message(s) of agent %s, which has no agent.json, not carried over",
                session_id,
                len(numbered),
                agent_id,
            )
            continue
        entry.messages = [record for _, record in sorted(numbered, key=lambda item: item[0])]
    return document


async def _store_new(
    objects: Objects, session_id: str, document: StrandsDocument
) -> StoredVersion | None:
    """Store the document if no object of the session exists; None if one does."""
    name = _name(session_id)
    body = objects.encode(_CODEC, document, objects.key(name))
    try:
        return await objects.write(name, body, base=None)
    except SessionConflictError:
        return None


async def migrate_prefix(objects: Objects, *, concurrency: int | None = None) -> list[str]:
    """Carry over every session Strands' own S3SessionManager stored under the
    objects' prefix into s3store's layout; the ids of the sessions carried over.

    ::

        async with S3Objects("my-bucket", prefix="strands/") as objects:
            await migrate_prefix(objects)

    One listing of the prefix, then each session not carried over yet is read and
    written as one object, create-only (a session a manager carries over meanwhile
    is left to it); the old objects stay. Managers carry a session over on first
    use anyway: this does it ahead, for all of them. Raises `BulkOperationError`
    naming the sessions that failed; the others are carried over.
    """
    folders: dict[str, list[str]] = {}
    carried: set[str] = set()
    async for info in objects.iter_objects(_SESSION_FOLDER, recursive=True):
        folder, slash, _ = info.name.partition("/")
        session_id = folder[len(_SESSION_FOLDER) :]
        if slash:
            folders.setdefault(session_id, []).append(info.name)
        elif session_id.endswith(".json"):
            carried.add(session_id[: -len(".json")])
    pending = [session_id for session_id in folders if session_id not in carried]
    done: list[str] = []

    async def carry_over(session_id: str) -> None:
        document = await _carry_over(objects, session_id, folders[session_id])
        if document is not None and await _store_new(objects, session_id, document) is not None:
            done.append(session_id)

    failed = await each(pending, carry_over, concurrency or objects.default_concurrency)
    if failed:
        raise BulkOperationError(
            "migrate_prefix", errors=dict(failed), done=done, bucket=objects.bucket_name
        )
    return done
