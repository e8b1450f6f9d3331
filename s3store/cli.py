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
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import IO, Any

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
    NoSuchVersionError,
    SessionStoreError,
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
from s3store.keys import key_name, normalize_prefix, parse_name
from s3store.local import DEFAULT_BUCKET, LocalS3
from s3store.models import AgentSession, SessionId
from s3store.operations import (
    Connection,
    ExportResult,
    ImportResult,
    InvalidExportError,
    check_export,
    connect,
    export_sessions,
    import_sessions,
    summary,
)
from s3store.s3 import ENV_BUCKET, ENV_PREFIX, SessionVersion
from s3store.store import DEFAULT_MAX_SESSION_BYTES, LoggedEvent, SessionInfo
from s3store.tables import fields_table, listing_table, summary_table, timestamp

__all__ = ["cli", "main"]

EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_FAILED = 3


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
            note=_note,
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


def _info_json(info: SessionInfo) -> dict[str, Any]:
    return {
        "id": key_name(info.session_id),
        "key": info.key,
        "size": info.size,
        "last_modified": info.last_modified.isoformat(),
        "etag": info.etag,
    }


@contextmanager
def progress(description: str, total: int | None = None) -> Iterator[Callable[[], None]]:
    """Progress on stderr when it is a terminal: a bar towards `total`, or, when the
    total is not known (a listing still under way), the count so far. Yields the
    function that advances it."""
    if not sys.stderr.isatty():
        yield lambda: None
        return
    columns = (
        TextColumn("{task.description}"),
        *((BarColumn(), MofNCompleteColumn()) if total else (TextColumn("{task.completed}"),)),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)


def _summary_rows(report: dict[str, Any]) -> Iterator[tuple[str, object]]:
    for name, value in report.items():
        if isinstance(value, dict):
            yield from ((f"{name}.{key}", count) for key, count in value.items())
        elif isinstance(value, list):
            yield name, ",".join(value)
        else:
            yield name, "" if value is None else value


# -- the commands ----------------------------------------------------------------------

_ID_ARGUMENT = click.argument("session_id", metavar="ID", callback=_session_id)

_MAX_SESSION_BYTES = click.option(
    "--max-session-bytes",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_SESSION_BYTES,
    show_default=True,
    help="Read sessions up to this size; larger ones are refused (export: left out, exit 3).",
)


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

    Piped, one tab-separated line per session. With --limit, it lists no further
    than that (one request per 1,000); when the page is full, the id to pass to
    --after for the next page goes to stderr (`next` in JSON).
    """

    async def listing() -> list[SessionInfo]:
        async with connection.store() as store:
            return [info async for info in store.iter_info(after=after, limit=limit)]

    page = asyncio.run(listing())
    # A full page may have more after it: ⌈limit/1000⌉ requests, never a look past it.
    following = key_name(page[-1].session_id) if limit and len(page) == limit else None
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
        _note(f"more sessions may follow: s3store ls --after {shlex.quote(following)}")


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
                stored = await store.objects.read(store.name(session_id))
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
        sys.stdout.buffer.write(content)  # the stored bytes exactly, not a line of them
        sys.stdout.flush()
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
    """Erase a session for good: every version and delete marker of its object, and its events."""

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
    """Count the sessions, their total size and the largest one (one listing,
    read as it goes: memory stays flat however many sessions there are)."""

    async def count() -> tuple[int, int, SessionInfo | None]:
        sessions = total = 0
        largest: SessionInfo | None = None
        async with connection.store() as store:
            with progress("counting") as advance:
                async for info in store.iter_info():
                    sessions += 1
                    total += info.size
                    if largest is None or info.size > largest.size:
                        largest = info
                    advance()
        return sessions, total, largest

    sessions, total, largest = asyncio.run(count())
    if as_json:
        _print_json(
            {
                "location": str(connection),
                "sessions": sessions,
                "total_bytes": total,
                "largest": None
                if largest is None
                else {"id": key_name(largest.session_id), "size": largest.size},
            }
        )
    elif interactive():
        rows: list[tuple[str, str | Text]] = [
            ("location", str(connection)),
            ("sessions", str(sessions)),
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
                ("sessions", sessions),
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
def _output_file(path: str, resume: Callable[[], str | None]) -> Iterator[IO[bytes]]:
    """`path` opened for writing, replaced only once the export is whole; `-` is stdout.

    An export that stops part way leaves what it wrote in `<path>.partial` and says
    how to go on from there (`resume()`: the last session written).
    """
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
    except BaseException:
        last = resume()
        if last is None:
            os.remove(partial)
        else:
            _note(
                f"stopped part way: the sessions up to {last} are in {partial}; "
                f"`s3store export --after {shlex.quote(last)} FILE` exports the rest"
            )
        raise
    os.replace(partial, path)


@cli.command("export")
@connection_options
@click.argument("file", metavar="FILE.jsonl", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--after", callback=_session_id, help="Start after this session (to resume).")
@_CONCURRENCY
@_MAX_SESSION_BYTES
@json_option
def export_command(
    connection: Connection,
    file: str,
    after: SessionId | None,
    concurrency: int,
    max_session_bytes: int,
    as_json: bool,
) -> None:
    """Write every session to FILE.jsonl (`-` for stdout), one stored object per line,
    in key order, listing and reading as it writes (memory stays flat)."""
    written: list[str] = []

    async def export(out: IO[bytes]) -> ExportResult:
        async with connection.store(pool=concurrency, max_session_bytes=max_session_bytes) as store:
            with progress("exporting") as advance:

                def done(info: SessionInfo) -> None:
                    written[:] = [key_name(info.session_id)]
                    advance()

                return await export_sessions(
                    store, out, concurrency=concurrency, after=after, advance=done
                )

    with _output_file(file, lambda: written[0] if written else None) as out:
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
    with _export_file(file) as lines:
        # Two passes: all checked before anything is written, one line in memory at a time.
        try:
            count = check_export(lines, "stdin" if file == "-" else file, connection.prefix)
        except InvalidExportError as exc:
            raise UsageFailure(str(exc)) from None
        lines.seek(0)

        async def restore() -> ImportResult:
            async with connection.store(pool=concurrency) as store:
                with progress("importing", count) as advance:
                    return await import_sessions(
                        store, lines, overwrite=overwrite, concurrency=concurrency, advance=advance
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
            f"{error}); the other {count - len(result.failed)} were written or already "
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


@contextmanager
def _export_file(path: str) -> Iterator[IO[bytes]]:
    """The export to import, to be read twice: stdin is spooled to a temporary file."""
    if path != "-":
        with open(path, "rb") as lines:
            yield lines
        return
    with tempfile.TemporaryFile() as spool:
        shutil.copyfileobj(sys.stdin.buffer, spool)
        spool.seek(0)
        yield spool


# -- events and history ------------------------------------------------------------------


def event_summary(logged: LoggedEvent) -> tuple[str, str, str, str]:
    """Time, agent, variant and a one-line gist of an event, for the timeline."""
    event = logged.event
    moment = logged.stored_at
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
    return timestamp(moment), agent, event.runtime_event_type, text[:200]


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
                sys.stdout.flush()  # a follower reading the pipe gets each event as it comes
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

    if not version_id:
        raise UsageFailure("VERSION is empty: pass a version id that `s3store history` lists")

    async def restore() -> int:
        async with connection.store() as store:
            return len((await store.restore(session_id, version_id)).chat_messages)

    try:
        messages = asyncio.run(restore())
    except NoSuchVersionError as exc:
        raise NotFoundError(
            f"no such version {version_id!r} of session {key_name(session_id)} in "
            f"{connection}: `s3store history {key_name(session_id)}` lists them"
        ) from exc
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
