"""OpenAI Agents SDK sessions in S3: `S3Session`, one JSON object per session.

    from agents import Agent, Runner
    from s3store.openai_agents import S3Session

    session = S3Session("user-42", "my-bucket")
    result = await Runner.run(agent, "Hello", session=session)

`S3Session` is an `agents.memory.SessionABC`. A session's items are one object,
`<prefix>openai-agents/<session id, percent-encoded>.json`, holding
`{"items": [...]}`: each item exactly as the SDK gave it, oldest first. Every
change (`add_items`, `pop_item`) is an `update()` of that object, a conditional
write retried on conflict, so two invocations adding to one session at once both
land, each once. `clear_session` deletes the object.

A turn of `Runner.run` reads the history once (one GET) and adds the user's input
and each model response (a GET and a conditional PUT each): five requests for a
turn without tools, two more for each tool round.

Install with `pip install 's3store[openai-agents]'`.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from types import TracebackType
from typing import Any, NoReturn, cast
from urllib.parse import quote

from agents.items import TResponseInputItem
from agents.memory import SessionABC, SessionSettings
from agents.memory.session_settings import coerce_session_settings, resolve_session_limit
from typing_extensions import Self

from s3store.errors import ConfigurationError, InvalidSessionIdError
from s3store.objects import Objects
from s3store.s3 import S3Objects

__all__ = ["FOLDER", "S3Session"]

FOLDER = "openai-agents/"
"""Where the sessions are under the prefix: a folder of their own, which a
`SessionStore`'s listing (of `<prefix>*.json`) never sees."""


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


class _Items:
    """The codec of a session's object: `{"items": [<JSON object>, ...]}`, UTF-8."""

    def decode(self, body: bytes) -> list[TResponseInputItem]:
        document = json.loads(body, parse_constant=_refuse_constant)
        items = document.get("items") if isinstance(document, dict) else None
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise ValueError('it is not {"items": [<object>, ...]}')
        return cast(list[TResponseInputItem], items)

    def encode(self, document: list[TResponseInputItem]) -> bytes:
        # Checked here rather than on reading only: an item the codec could not read
        # back would make every later read of the session fail.
        if not all(isinstance(item, dict) for item in document):
            raise ValueError("every item must be a JSON object (a dict)")
        try:
            text = json.dumps(
                {"items": document}, ensure_ascii=False, allow_nan=False, separators=(",", ":")
            )
        except TypeError as exc:  # a value json cannot write: make it the codec's ValueError
            raise ValueError(str(exc)) from None
        return text.encode()


_ITEMS = _Items()


class _NothingToPop(Exception):
    """Ends a `pop_item` update without a write: the session has no item."""


class S3Session(SessionABC):
    """An OpenAI Agents SDK session kept as one S3 object; see the module's docs.

    `S3Session(session_id, bucket, **options)` makes its own `S3Objects(bucket,
    **options)` and closes it in `close()`. `S3Session(session_id,
    objects=objects)` uses objects you own instead: one `S3Objects` (one client)
    shared by every session of a process, or an `InMemoryObjects` for unit tests.

    `idempotency_key` (a Lambda request id: one per invocation, the same on its
    retries) makes each `add_items` of this object apply once: its n-th call is
    keyed `<key>#<n>`, so a retried invocation, making the same calls again,
    finds each one already stored and stores nothing twice. Use a new
    `S3Session` per invocation with it, and never a key that another invocation
    could use, or that invocation's items are taken as stored and dropped.
    """

    session_settings: SessionSettings | None = None

    def __init__(
        self,
        session_id: str,
        bucket: str | None = None,
        *,
        objects: Objects | None = None,
        session_settings: SessionSettings | dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> None:
        if (bucket is None) == (objects is None):
            raise ConfigurationError("give S3Session a bucket or objects=, one of the two")
        if objects is not None and options:
            raise ConfigurationError(
                f"S3Session got objects= and S3Objects options ({', '.join(options)}): "
                "set those options on the objects"
            )
        self.session_id = session_id
        self.name = _object_name(session_id)
        self.session_settings = (
            SessionSettings()
            if session_settings is None
            else coerce_session_settings(session_settings)
        )
        self._owns_objects = objects is None
        self.objects = objects if objects is not None else S3Objects(cast(str, bucket), **options)
        self.key = self.objects.key(self.name)  # a key over S3's length limit fails here
        self._idempotency_key = idempotency_key
        self._adds = 0
        # One change at a time per event loop: this session's own calls queue, in call
        # order, instead of racing each other over S3 (a conflict costs two requests).
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    @classmethod
    def from_env(
        cls,
        session_id: str,
        *,
        session_settings: SessionSettings | dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> Self:
        """A session in the bucket the environment names: `S3Objects.from_env(**options)`
        (`S3STORE_BUCKET`, `S3STORE_PREFIX`, `S3STORE_KMS_KEY_ID`, AWS's own variables).
        The session owns those objects, as if made from a bucket."""
        session = cls(
            session_id,
            objects=S3Objects.from_env(**options),
            session_settings=session_settings,
            idempotency_key=idempotency_key,
        )
        session._owns_objects = True
        return session

    def __repr__(self) -> str:
        return f"S3Session({self.session_id!r}, objects={self.objects!r})"

    # -- the Session protocol ----------------------------------------------------

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The session's items, oldest first; with a `limit` (or the settings'), the
        latest `limit` of them, still oldest first. One GET."""
        limit = resolve_session_limit(limit, self.session_settings)
        stored = await self.objects.read(self.name)
        items = [] if stored is None else self.objects.decode(_ITEMS, stored.body, self.key)
        if limit is None:
            return items
        return items[-limit:] if limit > 0 else []

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append `items`, in order, as one write: a GET and a conditional PUT,
        read again and retried on conflict. Nothing is written for no items."""
        if not items:
            return
        new = list(items)

        def append(stored: list[TResponseInputItem] | None) -> list[TResponseInputItem]:
            return [*(stored or ()), *new]

        self._adds += 1
        key = None if self._idempotency_key is None else f"{self._idempotency_key}#{self._adds}"
        async with self._lock():
            await self.objects.update(self.name, append, codec=_ITEMS, idempotency_key=key)

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove the latest item and return it; None, writing nothing, when there is none."""
        popped: list[TResponseInputItem] = []

        def pop_last(stored: list[TResponseInputItem] | None) -> list[TResponseInputItem]:
            if not stored:
                raise _NothingToPop
            # A retry after a conflict pops again from what is stored then: keep that one.
            popped[:] = [stored.pop()]
            return stored

        try:
            async with self._lock():
                await self.objects.update(self.name, pop_last, codec=_ITEMS)
        except _NothingToPop:
            return None
        return popped[0]

    async def clear_session(self) -> None:
        """Delete the session's object (one request): a cleared session leaves nothing
        behind (in a versioned bucket, a delete marker over its versions)."""
        async with self._lock():
            await self.objects.delete(self.name)

    def _lock(self) -> asyncio.Lock:
        return self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())

    # -- lifetime -------------------------------------------------------------------

    async def close(self) -> None:
        """Close the objects this session made (its S3 client); objects passed in
        stay open, as they belong to the caller."""
        if self._owns_objects:
            await self.objects.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


def _object_name(session_id: str) -> str:
    """`openai-agents/<session id, percent-encoded>.json`: any id is one name of its
    own, with no `/` of its own, so it never reaches outside the folder."""
    if not isinstance(session_id, str) or not session_id:
        raise InvalidSessionIdError(
            f"an OpenAI Agents session id is a non-empty str, not {session_id!r}"
        )
    try:
        return f"{FOLDER}{quote(session_id, safe='')}.json"
    except UnicodeEncodeError:
        raise InvalidSessionIdError(
            f"session id {session_id!r} holds an unpaired surrogate, which is not valid "
            "Unicode and cannot name an object: pass valid text"
        ) from None
