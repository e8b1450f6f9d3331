"""How the command line and the demo show sessions on a terminal (rich tables)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from rich.filesize import decimal
from rich.table import Table
from rich.text import Text

from s3store.keys import key_name
from s3store.store import SessionInfo

__all__ = ["fields_table", "listing_table", "summary_table", "timestamp"]


def timestamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def listing_table(infos: Iterable[SessionInfo]) -> Table:
    table = Table()
    table.add_column("id", style="cyan")
    table.add_column("size", justify="right")
    table.add_column("last modified")
    for info in infos:
        table.add_row(
            Text(key_name(info.session_id)), decimal(info.size), timestamp(info.last_modified)
        )
    return table


def summary_table(report: dict[str, Any]) -> Table:
    """A session's summary (`s3store.operations.summary`) as `show` prints it."""

    def counts(by_name: dict[str, int]) -> str:
        return ", ".join(f"{count} {name}" for name, count in by_name.items())

    rows: list[tuple[str, str | Text]] = [
        ("session", Text(report["id"], style="cyan")),
        ("object", report["object"]),
        ("size", f"{decimal(report['size'])} ({report['size']} bytes)"),
        ("last modified", timestamp(datetime.fromisoformat(report["last_modified"]))),
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
