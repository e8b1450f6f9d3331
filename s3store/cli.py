"""The `s3store` command: look into a session bucket, export and import, erase, run the demo.

Installed with the `cli` extra (click, rich); the embedded S3 server needs the
`local` extra (moto). Output is for people on a terminal (tables, colour,
progress bars) and plain, tab-separated lines when piped; `--json` gives JSON
either way. Exit codes: 0 success, 1 not found, 2 usage or configuration,
3 conflict or storage error.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shlex
import signal
import sys
import threading
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Any, TypeVar

import aioboto3
from botocore.config import Config
from botocore.exceptions import ProfileNotFound
from pydantic import ValidationError

try:
    import click
    from rich.console import Console
    from rich.filesize import decimal
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.table import Table
    from rich.text import Text
except ModuleNotFoundError as missing:  # installed without the `cli` extra
    print(
        f"s3store: the command needs the `cli` extra ({missing.name} is missing): "
        "pip install 's3store[cli]'",
        file=sys.stderr,
    )
    raise SystemExit(2) from None

from s3store.errors import (
    ConfigurationError,
    CorruptSessionError,
    InvalidSessionIdError,
    SessionConflictError,
    SessionStoreError,
    SessionTooLargeError,
)
from s3store.events import (
    AwaitingApproval,
    Checkpoint,
    PlanUpdated,
    TextDelta,
    ThoughtDelta,
    ToolCallDraft,
    ToolCallFinished,
    ToolCallStarted,
    UserEvent,
    event_json,
)
from s3store.keys import key_name, normalize_prefix, parse_name, session_key
from s3store.local import DEFAULT_BUCKET, LOCAL_CREDENTIALS, LOCAL_REGION, LocalS3
from s3store.models import AgentSession, AssistantMessage, ChatMessage, CustomMessage, SessionId
from s3store.s3 import ENV_BUCKET, ENV_PREFIX, S3SessionStore, SessionInfo, SessionVersion
from s3store.store import DEFAULT_MAX_SESSION_BYTES, LoggedEvent

__all__ = ["Connection", "cli", "main"]

EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_FAILED = 3

T = TypeVar("T")
R = TypeVar("R")


class CommandError(click.ClickException):
    """A failure reported in one line on stderr; exits with 3 (conflict or storage error)."""

    exit_code = EXIT_FAILED

    def show(self, file: IO[Any] | None = None) -> None:
        click.secho(f"s3store: {self.message}", err=True, fg="red")


class NotFoundError(CommandError):
    exit_code = EXIT_NOT_FOUND


class UsageFailure(CommandError):
    exit_code = EXIT_USAGE


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ConfigurationError, InvalidSessionIdError) as exc:
            raise UsageFailure(str(exc)) from exc
        except SessionStoreError as exc:
            raise CommandError(str(exc)) from exc


def _session_id(ctx: click.Context, param: click.Parameter, value: str | None) -> SessionId | None:
    """An id as the command prints it: its name in the object key (`s3store.keys.key_name`)."""
    if value is None:
        return None
    session_id = parse_name(value)
    if session_id is None:
        raise click.BadParameter(
            f"{value!r} is not a session id as s3store prints them: a number, optionally "
            "followed by the external id in parentheses, percent-encoded as in the object "
            "key (42, 42(user-7), 7(a%2Fb) for the external id a/b)",
            ctx,
            param,
        )
    return session_id


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
) -> Iterator[Connection]:
    """The configured bucket, or an embedded S3 server for as long as the block lasts."""
    if bucket and not local:
        yield Connection(bucket, prefix, endpoint_url=endpoint_url, region=region, profile=profile)
        return
    with LocalS3(bucket or DEFAULT_BUCKET) as server:
        reason = "--local" if local else f"no bucket configured (--bucket or {ENV_BUCKET})"
        _note(
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


_CONNECTION_OPTIONS = (
    click.option("--bucket", envvar=ENV_BUCKET, help=f"The session bucket [env: {ENV_BUCKET}]."),
    click.option(
        "--prefix",
        envvar=ENV_PREFIX,
        default="sessions/",
        show_default=True,
        help=f"The key prefix of the sessions [env: {ENV_PREFIX}].",
    ),
    click.option(
        "--endpoint-url",
        envvar="AWS_ENDPOINT_URL",
        help="An S3-compatible endpoint instead of AWS [env: AWS_ENDPOINT_URL].",
    ),
    click.option("--profile", envvar="AWS_PROFILE", help="AWS profile [env: AWS_PROFILE]."),
    click.option(
        "--region",
        envvar=["AWS_REGION", "AWS_DEFAULT_REGION"],
        help="AWS region [env: AWS_REGION, AWS_DEFAULT_REGION].",
    ),
    click.option(
        "--local",
        is_flag=True,
        help="Use an embedded S3 server (moto) even when a bucket is configured.",
    ),
)


def connection_options(command: Callable[..., None]) -> Callable[..., None]:
    """Add the options that say where the sessions are; the command gets a `Connection`.

    The embedded server, if one is needed, starts only once the arguments are
    parsed, so `--help` and usage errors never start one.
    """

    @functools.wraps(command)
    def run(
        *,
        bucket: str | None,
        prefix: str,
        endpoint_url: str | None,
        profile: str | None,
        region: str | None,
        local: bool,
        **options: Any,
    ) -> None:
        with connect(
            bucket=bucket,
            prefix=prefix,
            endpoint_url=endpoint_url,
            profile=profile,
            region=region,
            local=local,
        ) as connection:
            command(connection, **options)

    for option in reversed(_CONNECTION_OPTIONS):
        run = option(run)
    return run


def json_option(command: Callable[..., None]) -> Callable[..., None]:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print JSON, on a terminal or not."
    )(command)


# -- output ------------------------------------------------------------------------


def interactive() -> bool:
    """Whether stdout is a terminal: tables and colour there, plain lines otherwise."""
    return sys.stdout.isatty()


def console() -> Console:
    return Console(highlight=False)


def _note(message: str) -> None:
    """A one-line remark for the person at the terminal, kept out of stdout's data."""
    click.secho(f"s3store: {message}", err=True, dim=True)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2 if interactive() else None))


def _print_rows(rows: Iterable[Iterable[object]]) -> None:
    for row in rows:
        click.echo("\t".join(str(value) for value in row))


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _info_json(info: SessionInfo) -> dict[str, Any]:
    return {
        "id": key_name(info.session_id),
        "key": info.key,
        "size": info.size,
        "last_modified": info.last_modified.isoformat(),
        "etag": info.etag,
    }


def listing_table(infos: list[SessionInfo]) -> Table:
    table = Table()
    table.add_column("id", style="cyan")
    table.add_column("size", justify="right")
    table.add_column("last modified")
    for info in infos:
        table.add_row(
            Text(key_name(info.session_id)), decimal(info.size), _timestamp(info.last_modified)
        )
    return table


@contextmanager
def progress(description: str, total: int) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr when it is a terminal; yields the function that advances it."""
    if not sys.stderr.isatty():
        yield lambda: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)


async def in_order(
    items: Iterable[T], work: Callable[[T], Awaitable[R]], concurrency: int
) -> AsyncIterator[R]:
    """`work` over `items`, at most `concurrency` at a time, results in the items' order.

    Results come out in order as soon as they can, so memory stays bounded by
    the window rather than the whole input.
    """
    pending: deque[asyncio.Task[R]] = deque()
    try:
        for item in items:
            pending.append(asyncio.ensure_future(work(item)))
            if len(pending) >= concurrency:
                yield await pending.popleft()
        while pending:
            yield await pending.popleft()
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


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


def summary_table(report: dict[str, Any]) -> Table:
    def counts(by_name: dict[str, int]) -> str:
        return ", ".join(f"{count} {name}" for name, count in by_name.items())

    rows: list[tuple[str, str | Text]] = [
        ("session", Text(report["id"], style="cyan")),
        ("object", report["object"]),
        ("size", f"{decimal(report['size'])} ({report['size']} bytes)"),
        ("last modified", _timestamp(datetime.fromisoformat(report["last_modified"]))),
        ("version", report["version_id"] or "none (unversioned bucket)"),
        ("etag", report["etag"]),
        ("messages", f"{report['messages']}: {counts(report['messages_by_role'])}"),
        ("tool calls", f"{report['tool_calls']}: {counts(report['tool_calls_by_name'])}"),
    ]
    if report["always_allowed_actions"]:
        rows.append(("always allowed", ", ".join(report["always_allowed_actions"])))
    return fields_table(rows)


def fields_table(rows: Iterable[tuple[str, str | Text]]) -> Table:
    """Name and value in two columns, as `show` and `stats` print them on a terminal.

    Values are taken as plain text, not rich markup: ids and keys may hold `[`.
    """
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name, value in rows:
        table.add_row(name, Text(value) if isinstance(value, str) else value)
    return table


def _summary_rows(report: dict[str, Any]) -> Iterator[tuple[str, object]]:
    for name, value in report.items():
        if isinstance(value, dict):
            yield from ((f"{name}.{key}", count) for key, count in value.items())
        elif isinstance(value, list):
            yield name, ",".join(value)
        else:
            yield name, "" if value is None else value


# -- export and import -----------------------------------------------------------------


@dataclass
class ExportResult:
    sessions: int = 0
    bytes: int = 0
    corrupt: list[str] = field(default_factory=list)
    too_large: list[str] = field(default_factory=list)


async def export_sessions(
    store: S3SessionStore,
    infos: list[SessionInfo],
    out: IO[bytes],
    *,
    concurrency: int,
    advance: Callable[[], None] | None = None,
) -> ExportResult:
    """Write each listed session's stored JSON as one line of `out`, in the listing's order.

    Lines are the objects' bytes as stored, so importing them writes the same
    bytes back. Only line breaks are taken out (JSON allows them only as
    whitespace, so the value is unchanged). Objects that are not valid sessions
    are left out and named in the result, as are objects over the store's
    `max_session_bytes`.
    """
    result = ExportResult()

    async def fetch(info: SessionInfo) -> tuple[SessionInfo, bytes | None]:
        try:
            stored = await store._get(info.key)
        except SessionTooLargeError:
            result.too_large.append(info.key)
            return info, None
        if stored is None:  # deleted since the listing
            return info, None
        try:
            store._decode(stored.body, info.key, info.session_id)
        except CorruptSessionError:
            result.corrupt.append(info.key)
            return info, None
        return info, stored.body

    async for _, body in in_order(infos, fetch, concurrency):
        if body is not None:
            line = body.replace(b"\r", b"").replace(b"\n", b"") + b"\n"
            out.write(line)
            result.sessions += 1
            result.bytes += len(line)
        if advance:
            advance()
    return result


@dataclass
class ImportResult:
    written: list[SessionId] = field(default_factory=list)
    unchanged: int = 0
    conflicts: list[SessionId] = field(default_factory=list)
    failed: dict[SessionId, SessionStoreError] = field(default_factory=dict)


def read_export(lines: Iterable[bytes], source: str, prefix: str) -> list[tuple[SessionId, bytes]]:
    """Check every line of an export before anything is written: all valid, each with a
    key S3 takes under `prefix`, no id twice."""
    sessions: list[tuple[SessionId, bytes]] = []
    seen: dict[SessionId, int] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        try:
            session = AgentSession.model_validate_json(line)
        except ValidationError as exc:
            problem = exc.errors()[0]["msg"]
            raise UsageFailure(
                f"{source} line {number} is not a session ({problem}): fix or remove the "
                "line; nothing was imported"
            ) from None
        if session.id is None:
            raise UsageFailure(f"{source} line {number} has no session id: nothing was imported")
        try:
            session_key(prefix, session.id)
        except InvalidSessionIdError as exc:
            raise UsageFailure(f"{source} line {number}: {exc}; nothing was imported") from None
        if session.id in seen:
            raise UsageFailure(
                f"{source} has session {key_name(session.id)} twice (lines {seen[session.id]} and "
                f"{number}): keep one; nothing was imported"
            )
        seen[session.id] = number
        sessions.append((session.id, line))
    return sessions


async def import_sessions(
    store: S3SessionStore,
    sessions: list[tuple[SessionId, bytes]],
    *,
    overwrite: bool,
    concurrency: int,
    advance: Callable[[], None] | None = None,
) -> ImportResult:
    """Write each line as its session's object, byte for byte.

    Without `overwrite` a session is only created, never replaced: one stored
    with these very bytes counts as unchanged (so importing a file twice is
    harmless), one stored with other bytes as a conflict, left as it is. A session
    that fails to be written is kept in `failed`, and the others are still written.
    """
    result = ImportResult()

    async def write(item: tuple[SessionId, bytes]) -> None:
        session_id, body = item
        key = session_key(store.prefix, session_id)
        try:
            await store._put(key, body, if_match=None, if_absent=not overwrite, writes=())
            result.written.append(session_id)
        except SessionConflictError:
            stored = await store._get(key)
            if stored is not None and stored.body == body:
                result.unchanged += 1
            else:
                result.conflicts.append(session_id)
        except SessionStoreError as exc:
            result.failed[session_id] = exc

    async for _ in in_order(sessions, write, concurrency):
        if advance:
            advance()
    return result


# -- the commands ----------------------------------------------------------------------

_ID_ARGUMENT = click.argument("session_id", metavar="ID", callback=_session_id)

_MAX_SESSION_BYTES = click.option(
    "--max-session-bytes",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_SESSION_BYTES,
    show_default=True,
    help="Read sessions up to this size; larger ones are refused (export: left out, exit 3).",
)


def _list_info(connection: Connection) -> list[SessionInfo]:
    async def listing() -> list[SessionInfo]:
        async with connection.store() as store:
            return await store.list_info()

    return asyncio.run(listing())


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="s3store")
def cli() -> None:
    """Look into, export, import and erase the agent sessions in an S3 bucket.

    Configure with flags or the environment: S3STORE_BUCKET and S3STORE_PREFIX
    (the Terraform module's outputs), AWS_ENDPOINT_URL, AWS_PROFILE, AWS_REGION.
    With no bucket configured, or with --local, a command runs against an
    embedded S3 server that lasts as long as the command. Session ids are
    written as in the object key: 42, or 42(external-id) with the external id
    percent-encoded (7(a%2Fb) for a/b).

    Exit codes: 0 success, 1 not found, 2 usage or configuration, 3 conflict or
    storage error.
    """


@cli.command("ls")
@connection_options
@click.option("--limit", type=click.IntRange(min=1), help="Show at most this many sessions.")
@click.option("--after", callback=_session_id, help="Start after this session (the next page).")
@json_option
def ls_command(
    connection: Connection, limit: int | None, after: SessionId | None, as_json: bool
) -> None:
    """List sessions in key order: id, size and last-modified time.

    Piped, one tab-separated line per session. When --limit cuts the listing,
    the id to pass to --after for the next page goes to stderr (`next` in JSON).
    """

    infos = _list_info(connection)
    if after is not None:
        start = connection.key(after)
        infos = [info for info in infos if info.key > start]
    page = infos[:limit] if limit else infos
    following = key_name(page[-1].session_id) if len(page) < len(infos) else None
    if as_json:
        _print_json({"sessions": [_info_json(info) for info in page], "next": following})
        return
    if interactive():
        total = decimal(sum(info.size for info in page))
        screen = console()
        screen.print(Text(f"{connection}: {len(page)} session(s), {total}"))
        screen.print(listing_table(page))
    else:
        _print_rows(
            (key_name(info.session_id), info.size, info.last_modified.isoformat()) for info in page
        )
    if following is not None:
        _note(f"more sessions follow: s3store ls --after {shlex.quote(following)}")


@cli.command("show")
@connection_options
@_ID_ARGUMENT
@_MAX_SESSION_BYTES
@json_option
def show_command(
    connection: Connection, session_id: SessionId, max_session_bytes: int, as_json: bool
) -> None:
    """Summarize a session: messages by role, tool calls, size, time, version.

    With --json, the stored object itself, byte for byte.
    """

    async def fetch() -> tuple[SessionInfo | None, bytes | AgentSession | None]:
        async with connection.store(max_session_bytes=max_session_bytes) as store:
            info = await store.stat(session_id)
            if info is None:
                return None, None
            if as_json:
                stored = await store._get(info.key)
                return info, None if stored is None else stored.body
            return info, await store.load(session_id)

    try:
        info, content = asyncio.run(fetch())
    except CorruptSessionError as exc:
        raise CommandError(
            f"{exc.key} holds no valid session: `s3store show --json "
            f"{key_name(session_id)}` prints it as stored; fix it, or remove it with "
            f"`s3store rm {key_name(session_id)}`"
        ) from exc
    if info is None or content is None:
        raise NotFoundError(
            f"no session {key_name(session_id)} in {connection}: `s3store ls` lists the "
            "ones there are",
        )
    if isinstance(content, bytes):
        click.echo(content)
        return
    report = summary(info, content, connection.bucket)
    if interactive():
        console().print(summary_table(report))
    else:
        _print_rows(_summary_rows(report))


@cli.command("rm")
@connection_options
@_ID_ARGUMENT
@json_option
def rm_command(connection: Connection, session_id: SessionId, as_json: bool) -> None:
    """Delete a session (in a versioned bucket its old versions stay: see purge)."""

    async def delete() -> SessionInfo | None:
        async with connection.store() as store:
            info = await store.stat(session_id)
            if info is not None:
                await store.delete(session_id)
            return info

    info = asyncio.run(delete())
    if info is None:
        raise NotFoundError(f"no session {key_name(session_id)} in {connection}: nothing deleted")
    versioned = info.version_id not in (None, "null")
    if as_json:
        _print_json({"deleted": key_name(session_id), "key": info.key, "versions_kept": versioned})
    elif interactive():
        console().print(f"deleted [cyan]{key_name(session_id)}[/] ({escape(info.key)})")
    else:
        _print_rows([("deleted", key_name(session_id), info.key)])
    if versioned:
        _note(
            "earlier versions remain recoverable; "
            f"`s3store purge {key_name(session_id)}` erases them"
        )


@cli.command("purge")
@connection_options
@_ID_ARGUMENT
@json_option
def purge_command(connection: Connection, session_id: SessionId, as_json: bool) -> None:
    """Erase a session for good: every version and delete marker of its object."""

    async def erase() -> tuple[int, int]:
        async with connection.store() as store:
            purged = await store.purge(session_id)
            return purged.versions, purged.delete_markers

    versions, markers = asyncio.run(erase())
    if versions == markers == 0:
        raise NotFoundError(
            f"no session {key_name(session_id)} in {connection}, nor any version of it: "
            "nothing to purge",
        )
    if as_json:
        _print_json(
            {"purged": key_name(session_id), "versions": versions, "delete_markers": markers}
        )
    elif interactive():
        console().print(
            f"purged [cyan]{key_name(session_id)}[/]: {versions} version(s) and "
            f"{markers} delete marker(s) erased"
        )
    else:
        _print_rows([("purged", key_name(session_id), versions, markers)])


@cli.command("stats")
@connection_options
@json_option
def stats_command(connection: Connection, as_json: bool) -> None:
    """Count the sessions, their total size and the largest one."""

    infos = _list_info(connection)
    total = sum(info.size for info in infos)
    largest = max(infos, key=lambda info: info.size, default=None)
    if as_json:
        _print_json(
            {
                "location": str(connection),
                "sessions": len(infos),
                "total_bytes": total,
                "largest": None
                if largest is None
                else {"id": key_name(largest.session_id), "size": largest.size},
            }
        )
    elif interactive():
        rows: list[tuple[str, str | Text]] = [
            ("location", str(connection)),
            ("sessions", str(len(infos))),
            ("total size", decimal(total)),
        ]
        if largest is not None:
            largest_text = Text.assemble(
                (key_name(largest.session_id), "cyan"), f" ({decimal(largest.size)})"
            )
            rows.append(("largest", largest_text))
        console().print(fields_table(rows))
    else:
        _print_rows(
            [
                ("sessions", len(infos)),
                ("total_bytes", total),
                ("largest_id", "" if largest is None else key_name(largest.session_id)),
                ("largest_bytes", "" if largest is None else largest.size),
            ]
        )


_CONCURRENCY = click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=16,
    show_default=True,
    help="Requests in flight at once.",
)


@contextmanager
def _output_file(path: str) -> Iterator[IO[bytes]]:
    """`path` opened for writing, replaced only once the export is whole; `-` is stdout."""
    if path == "-":
        yield sys.stdout.buffer
        return
    partial = f"{path}.partial"
    try:
        out = open(partial, "wb")  # noqa: SIM115 (closed below, once the export is whole)
    except OSError as exc:
        raise UsageFailure(f"cannot write {path}: {exc.strerror}: pick a writable path") from None
    try:
        with out:
            yield out
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


@cli.command("export")
@connection_options
@click.argument("file", metavar="FILE.jsonl", type=click.Path(dir_okay=False, allow_dash=True))
@_CONCURRENCY
@_MAX_SESSION_BYTES
@json_option
def export_command(
    connection: Connection, file: str, concurrency: int, max_session_bytes: int, as_json: bool
) -> None:
    """Write every session to FILE.jsonl (`-` for stdout), one stored object per line."""

    async def export(out: IO[bytes]) -> ExportResult:
        async with connection.store(pool=concurrency, max_session_bytes=max_session_bytes) as store:
            infos = await store.list_info()
            with progress("exporting", len(infos)) as advance:
                return await export_sessions(
                    store, infos, out, concurrency=concurrency, advance=advance
                )

    with _output_file(file) as out:
        result = asyncio.run(export(out))
    destination = "stdout" if file == "-" else file
    if as_json:
        report = {
            "file": destination,
            "sessions": result.sessions,
            "bytes": result.bytes,
            "corrupt": result.corrupt,
            "too_large": result.too_large,
        }
        # Exported to stdout, the report must not mix with the sessions.
        click.echo(json.dumps(report), err=file == "-")
    else:
        _note(f"exported {result.sessions} session(s), {decimal(result.bytes)}, to {destination}")
    problems = []
    if result.corrupt:
        problems.append(
            f"{len(result.corrupt)} object(s) that are not valid sessions (first: "
            f"{result.corrupt[0]}): inspect them with `s3store show --json`, then fix or "
            "delete them"
        )
    if result.too_large:
        problems.append(
            f"{len(result.too_large)} session(s) over {max_session_bytes:,} bytes (first: "
            f"{result.too_large[0]}): export again with a larger --max-session-bytes"
        )
    if problems:
        raise CommandError(f"left out {'; and '.join(problems)}")


@cli.command("import")
@connection_options
@click.argument(
    "file", metavar="FILE.jsonl", type=click.Path(exists=True, dir_okay=False, allow_dash=True)
)
@click.option("--overwrite", is_flag=True, help="Replace sessions that exist with other content.")
@_CONCURRENCY
@json_option
def import_command(
    connection: Connection, file: str, overwrite: bool, concurrency: int, as_json: bool
) -> None:
    """Write each session of FILE.jsonl (`-` for stdin) back, byte for byte.

    Every line is checked first; one bad line and nothing is written. Sessions
    stored with other content are kept unless --overwrite; stored with the same
    bytes, they count as unchanged.
    """
    if file == "-":
        sessions = read_export(sys.stdin.buffer, "stdin", connection.prefix)
    else:
        with open(file, "rb") as lines:
            sessions = read_export(lines, file, connection.prefix)

    async def restore() -> ImportResult:
        async with connection.store(pool=concurrency) as store:
            with progress("importing", len(sessions)) as advance:
                return await import_sessions(
                    store, sessions, overwrite=overwrite, concurrency=concurrency, advance=advance
                )

    result = asyncio.run(restore())
    if as_json:
        _print_json(
            {
                "written": [key_name(session_id) for session_id in result.written],
                "unchanged": result.unchanged,
                "conflicts": [key_name(session_id) for session_id in result.conflicts],
                "failed": {key_name(key): str(error) for key, error in result.failed.items()},
            }
        )
    else:
        unchanged = f", {result.unchanged} already there unchanged" if result.unchanged else ""
        _note(f"imported {len(result.written)} session(s) into {connection}{unchanged}")
    problems = []
    if result.failed:
        first, error = next(iter(result.failed.items()))
        problems.append(
            f"{len(result.failed)} session(s) could not be written (first: {key_name(first)}: "
            f"{error}); the other {len(sessions) - len(result.failed)} were written or already "
            "there. Run the import again: what is already stored counts as unchanged"
        )
    if result.conflicts:
        problems.append(
            f"{len(result.conflicts)} session(s) exist with other content and were left as "
            f"they are (first: {key_name(result.conflicts[0])}): re-run with --overwrite to "
            "replace them"
        )
    if problems:
        raise CommandError("; and ".join(problems))


# -- events and history ------------------------------------------------------------------


def event_summary(logged: LoggedEvent) -> tuple[str, str, str, str]:
    """Time, agent, variant and a one-line gist of an event, for the timeline."""
    event = logged.event
    moment = datetime.fromtimestamp(int(logged.position.split("-")[0]) / 1e6, timezone.utc)
    agent = getattr(event, "agent_id", None) or ""
    if isinstance(event, (TextDelta, ThoughtDelta)):
        gist = event.text
    elif isinstance(event, ToolCallStarted):
        gist = f"{event.tool_name}({event.args_json})"
    elif isinstance(event, ToolCallFinished):
        gist = f"{event.tool_name}: {'denied' if event.denied else event.summary}"
    elif isinstance(event, ToolCallDraft):
        gist = f"{event.name} ({event.args_len} bytes of arguments)"
    elif isinstance(event, AwaitingApproval):
        gist = f"{event.request.title}: {event.request.message} ({event.request.risk_level})"
    elif isinstance(event, Checkpoint):
        gist = f"turn {event.checkpoint.turn_count}, {type(event.checkpoint.step).__name__}"
    elif isinstance(event, PlanUpdated):
        gist = event.objective
    elif isinstance(event, UserEvent):
        gist = f"{event.event.tag}: {getattr(event.event, 'text', '')}"
    else:
        gist = ""
    text = " ".join(gist.split())  # one line, whatever the event holds
    return _timestamp(moment), agent, event.runtime_event_type, text[:200]


@cli.command("events")
@connection_options
@_ID_ARGUMENT
@click.option("--follow", is_flag=True, help="Keep printing new events until Ctrl-C.")
@json_option
def events_command(
    connection: Connection, session_id: SessionId, follow: bool, as_json: bool
) -> None:
    """The session's events in append order: a timeline on a terminal, JSON lines
    (each event as agent-base writes it) when piped or with --json."""

    async def show() -> None:
        async with connection.store() as store:
            after: str | None = None
            while True:
                async for logged in store.events(session_id, after=after):
                    after = logged.position
                    if as_json or not interactive():
                        click.echo(event_json(logged.event).decode())
                    else:
                        console().print(Text("  ".join(event_summary(logged))))
                if not follow:
                    return
                await asyncio.sleep(1)

    with suppress(KeyboardInterrupt):
        asyncio.run(show())


@cli.command("history")
@connection_options
@_ID_ARGUMENT
@json_option
def history_command(connection: Connection, session_id: SessionId, as_json: bool) -> None:
    """The session's stored versions, newest first (a versioned bucket)."""

    async def listing() -> list[SessionVersion]:
        async with connection.store() as store:
            return await store.history(session_id)

    versions = asyncio.run(listing())
    if not versions:
        raise NotFoundError(f"no version of session {key_name(session_id)} in {connection}")
    if as_json:
        _print_json(
            [
                {
                    "version_id": version.version_id,
                    "last_modified": version.last_modified.isoformat(),
                    "size": version.size,
                    "latest": version.is_latest,
                }
                for version in versions
            ]
        )
        return
    _print_rows(
        (v.version_id, v.last_modified.isoformat(), v.size, "latest" if v.is_latest else "")
        for v in versions
    )


@cli.command("restore")
@connection_options
@_ID_ARGUMENT
@click.argument("version_id", metavar="VERSION")
@json_option
def restore_command(
    connection: Connection, session_id: SessionId, version_id: str, as_json: bool
) -> None:
    """Make VERSION (from `s3store history`) the session's current version again."""

    async def restore() -> int:
        async with connection.store() as store:
            return len((await store.restore(session_id, version_id)).chat_messages)

    messages = asyncio.run(restore())
    if as_json:
        _print_json({"restored": key_name(session_id), "version_id": version_id})
    else:
        _note(f"restored {key_name(session_id)} to version {version_id} ({messages} messages)")


@cli.command("local")
@click.option(
    "--bucket",
    envvar=ENV_BUCKET,
    default=DEFAULT_BUCKET,
    show_default=True,
    help="The bucket to create.",
)
@click.option("--prefix", envvar=ENV_PREFIX, default="sessions/", show_default=True)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, help="Port on 127.0.0.1 [default: free]."
)
def local_command(bucket: str, prefix: str, port: int) -> None:
    """Run an embedded S3 server in the foreground until Ctrl-C.

    Prints the environment variables that point an agent (S3SessionStore.from_env())
    and this command at it. Its data lives in memory and goes when it stops.
    """
    stop = threading.Event()
    with LocalS3(bucket, port=port) as server:
        for name, value in server.environment(normalize_prefix(prefix)).items():
            click.echo(f"export {name}={shlex.quote(value)}")
        sys.stdout.flush()
        _note(
            f"S3 on {server.endpoint_url}, bucket {bucket!r} (versioning on); export the "
            "variables above, Ctrl-C stops the server and discards its data"
        )
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        stop.wait()
    _note("stopped")


@cli.command("demo")
@connection_options
@click.option("--keep", is_flag=True, help="Leave the demo's sessions in the bucket.")
def demo_command(connection: Connection, keep: bool) -> None:
    """A scripted tool-using agent serving three users, one Lambda-style invocation per turn.

    Against a configured bucket it works under a fresh sub-prefix of its own and
    purges what it wrote at the end (unless --keep).
    """
    from s3store.demo import run_demo

    run_demo(connection, keep=keep)


def main() -> None:
    cli(prog_name="s3store")
