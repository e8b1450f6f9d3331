"""What an operator does with a session bucket, shared by the command line and the demo.

Where the sessions are (`Connection`, `connect`), a session's summary, and export
and import: each streams, so its memory stays bounded by its window of requests in
flight, not by the number of sessions. Nothing here prints: the callers do.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar

import aioboto3
from botocore.config import Config
from botocore.exceptions import ProfileNotFound
from pydantic import ValidationError

from s3store.errors import (
    ConfigurationError,
    CorruptSessionError,
    InvalidSessionIdError,
    SessionConflictError,
    SessionStoreError,
    SessionTooLargeError,
)
from s3store.keys import key_name, normalize_prefix, session_key
from s3store.local import DEFAULT_BUCKET, LOCAL_CREDENTIALS, LOCAL_REGION, LocalS3
from s3store.models import AgentSession, AssistantMessage, ChatMessage, CustomMessage, SessionId
from s3store.s3 import ENV_BUCKET, S3SessionStore
from s3store.store import DEFAULT_MAX_SESSION_BYTES, SessionInfo

__all__ = [
    "Connection",
    "ExportResult",
    "ImportResult",
    "InvalidExportError",
    "check_export",
    "connect",
    "export_lines",
    "export_sessions",
    "import_sessions",
    "in_order",
    "summary",
]

T = TypeVar("T")
R = TypeVar("R")


class InvalidExportError(ConfigurationError):
    """A line of an export file that cannot be imported; nothing was written."""


# -- where the sessions are ----------------------------------------------------------


@dataclass(frozen=True)
class Connection:
    """A bucket and prefix, and how to reach them; makes stores and aioboto3 sessions."""

    bucket: str
    prefix: str
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    credentials: tuple[str, str] | None = None  # access key id and secret; else AWS's chain
    embedded: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", normalize_prefix(self.prefix))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def session(self) -> aioboto3.Session:
        """A new aioboto3 session: one per thread, as botocore asks."""
        key_id, secret = self.credentials or (None, None)
        try:
            return aioboto3.Session(
                aws_access_key_id=key_id,
                aws_secret_access_key=secret,
                profile_name=self.profile,
                region_name=self.region,
            )
        except ProfileNotFound as exc:
            raise ConfigurationError(f"{exc}: fix --profile or AWS_PROFILE") from None

    def store(
        self,
        session: aioboto3.Session | None = None,
        *,
        pool: int = 10,
        max_session_bytes: int = DEFAULT_MAX_SESSION_BYTES,
    ) -> S3SessionStore:
        return S3SessionStore(
            self.bucket,
            prefix=self.prefix,
            session=session or self.session(),
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            # A pool smaller than the concurrency would queue requests inside the client.
            config=Config(max_pool_connections=pool),
            max_session_bytes=max_session_bytes,
        )

    def key(self, session_id: SessionId) -> str:
        return session_key(self.prefix, session_id)


@contextmanager
def connect(
    *,
    bucket: str | None,
    prefix: str,
    endpoint_url: str | None = None,
    profile: str | None = None,
    region: str | None = None,
    local: bool = False,
    note: Callable[[str], None] = lambda _: None,
) -> Iterator[Connection]:
    """The configured bucket, or an embedded S3 server for as long as the block lasts
    (`note` is told which, and where)."""
    if bucket and not local:
        yield Connection(bucket, prefix, endpoint_url=endpoint_url, region=region, profile=profile)
        return
    with LocalS3(bucket or DEFAULT_BUCKET) as server:
        reason = "--local" if local else f"no bucket configured (--bucket or {ENV_BUCKET})"
        note(
            f"{reason}: using an embedded S3 server at {server.endpoint_url} with bucket "
            f"{server.bucket!r} (versioning on); it and its sessions end with this command"
        )
        yield Connection(
            server.bucket,
            prefix,
            endpoint_url=server.endpoint_url,
            region=LOCAL_REGION,
            credentials=LOCAL_CREDENTIALS,
            embedded=True,
        )


async def in_order(
    items: AsyncIterable[T] | Iterable[T], work: Callable[[T], Awaitable[R]], concurrency: int
) -> AsyncIterator[R]:
    """`work` over `items`, at most `concurrency` at a time, results in the items' order.

    Items are taken only as the window has room and results come out as soon as
    they can, so memory stays bounded by the window rather than the whole input.
    """
    pending: deque[asyncio.Task[R]] = deque()
    try:
        async for item in _aiter(items):
            pending.append(asyncio.ensure_future(work(item)))
            if len(pending) >= concurrency:
                yield await pending.popleft()
        while pending:
            yield await pending.popleft()
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def _aiter(items: AsyncIterable[T] | Iterable[T]) -> AsyncIterator[T]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


# -- what a session holds ----------------------------------------------------------------


def _role(message: ChatMessage) -> str:
    if isinstance(message, CustomMessage):
        return f"custom:{message.role}"
    return type(message).__name__.removesuffix("Message").lower()


def summary(info: SessionInfo, session: AgentSession, bucket: str) -> dict[str, Any]:
    """What `show` reports: the object's metadata and a count of what the session holds."""
    roles = Counter(_role(message) for message in session.chat_messages)
    tools = Counter(
        call.name
        for message in session.chat_messages
        if isinstance(message, AssistantMessage)
        for call in message.tool_calls or ()
    )
    return {
        "id": key_name(info.session_id),
        "object": f"s3://{bucket}/{info.key}",
        "size": info.size,
        "last_modified": info.last_modified.isoformat(),
        "etag": info.etag,
        "version_id": info.version_id,
        "messages": len(session.chat_messages),
        "messages_by_role": dict(sorted(roles.items())),
        "tool_calls": sum(tools.values()),
        "tool_calls_by_name": dict(sorted(tools.items())),
        "total_tool_calls": session.total_tool_calls,
        "always_allowed_actions": sorted(session.always_allowed_actions),
    }


# -- export and import -----------------------------------------------------------------


@dataclass
class ExportResult:
    sessions: int = 0
    bytes: int = 0
    last: SessionId | None = None  # the last session listed: `after=` resumes past it
    corrupt: list[str] = field(default_factory=list)
    too_large: list[str] = field(default_factory=list)


async def export_sessions(
    store: S3SessionStore,
    out: IO[bytes],
    *,
    concurrency: int,
    after: SessionId | None = None,
    advance: Callable[[SessionInfo], None] | None = None,
) -> ExportResult:
    """Write each stored session's JSON as one line of `out`, in key order, from
    after session `after`, listing and reading as it writes.

    Lines are the objects' bytes as stored, so importing them writes the same
    bytes back. Only line breaks are taken out (JSON allows them only as
    whitespace, so the value is unchanged). Objects that are not valid sessions
    are left out and named in the result, as are objects over the store's
    `max_session_bytes`.
    """
    result = ExportResult()

    async def fetch(info: SessionInfo) -> tuple[SessionInfo, bytes | None]:
        name = store.name(info.session_id)
        try:
            stored = await store.objects.read(name)
        except SessionTooLargeError:
            result.too_large.append(info.key)
            return info, None
        if stored is None:  # deleted since the listing
            return info, None
        try:
            store.decode(stored.body, info.session_id)
        except CorruptSessionError:
            result.corrupt.append(info.key)
            return info, None
        return info, stored.body

    async for info, body in in_order(store.iter_info(after=after), fetch, concurrency):
        if body is not None:
            line = body.replace(b"\r", b"").replace(b"\n", b"") + b"\n"
            out.write(line)
            result.sessions += 1
            result.bytes += len(line)
        result.last = info.session_id
        if advance:
            advance(info)
    return result


@dataclass
class ImportResult:
    written: list[SessionId] = field(default_factory=list)
    unchanged: int = 0
    conflicts: list[SessionId] = field(default_factory=list)
    failed: dict[SessionId, SessionStoreError] = field(default_factory=dict)


def export_lines(lines: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """The lines of an export that hold something, numbered from 1, without line breaks."""
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip(b"\r\n")
        if line.strip():
            yield number, line


def check_export(lines: Iterable[bytes], source: str, prefix: str) -> int:
    """Check every line of an export before anything is written: all valid sessions,
    each with a key S3 takes under `prefix`, no id twice. Returns how many there are;
    raises `InvalidExportError` naming the first bad line. Holds the ids, not the lines."""
    seen: dict[SessionId, int] = {}
    for number, line in export_lines(lines):
        try:
            session_id = AgentSession.model_validate_json(line).id
        except ValidationError as exc:
            problem = exc.errors()[0]["msg"]
            raise InvalidExportError(
                f"{source} line {number} is not a session ({problem}): fix or remove the "
                "line; nothing was imported"
            ) from None
        if session_id is None:
            raise InvalidExportError(
                f"{source} line {number} has no session id: nothing was imported"
            )
        try:
            session_key(prefix, session_id)
        except InvalidSessionIdError as exc:
            raise InvalidExportError(
                f"{source} line {number}: {exc}; nothing was imported"
            ) from None
        if session_id in seen:
            raise InvalidExportError(
                f"{source} has session {key_name(session_id)} twice (lines {seen[session_id]} "
                f"and {number}): keep one; nothing was imported"
            )
        seen[session_id] = number
    return len(seen)


async def import_sessions(
    store: S3SessionStore,
    lines: Iterable[bytes],
    *,
    overwrite: bool,
    concurrency: int,
    advance: Callable[[], None] | None = None,
) -> ImportResult:
    """Write each line (of an export `check_export()` passed) as its session's object,
    byte for byte, reading the lines as it writes.

    Without `overwrite` a session is only created, never replaced: one stored
    with these very bytes counts as unchanged (so importing a file twice is
    harmless), one stored with other bytes as a conflict, left as it is. A session
    that fails to be written is kept in `failed`, and the others are still written.
    """
    result = ImportResult()

    async def write(item: tuple[int, bytes]) -> None:
        _, body = item
        session_id = AgentSession.model_validate_json(body).id
        assert session_id is not None  # check_export() saw to it
        name = store.name(session_id)
        try:
            await store.objects.write(name, body, base=None, conditional=not overwrite)
            result.written.append(session_id)
        except SessionConflictError:
            stored = await store.objects.read(name)
            if stored is not None and stored.body == body:
                result.unchanged += 1
            else:
                result.conflicts.append(session_id)
        except SessionStoreError as exc:
            result.failed[session_id] = exc

    async for _ in in_order(export_lines(lines), write, concurrency):
        if advance:
            advance()
    return result
