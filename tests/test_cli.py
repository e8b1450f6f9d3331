"""The `s3store` command against the moto server: every command, exit codes, output modes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner, Result

import s3store.cli
from s3store import (
    AgentSession,
    AssistantMessage,
    S3SessionStore,
    SessionId,
    SystemMessage,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from s3store.cli import cli
from s3store.events import TextDelta, ToolCallStarted, event_json
from s3store.keys import key_name, parse_name, session_key
from tests.faultproxy import Fault, FaultProxy

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

# Ids whose keys need percent-encoding, and ones that sort differently as keys than as numbers.
IDS = [SessionId(1, "alice"), SessionId(10), SessionId(2, "a/b (c)%"), SessionId(3, "ünï")]


def conversation(session_id: SessionId, turns: int = 1) -> AgentSession:
    session = AgentSession(id=session_id, chat_messages=[SystemMessage(content="be brief")])
    for turn in range(turns):
        call = ToolCall(id=f"c{turn}", name="search", arguments='{"q": "s3"}')
        session.chat_messages += [
            UserMessage(content=f"question {turn}"),
            AssistantMessage(tool_calls=[call]),
            ToolMessage(tool_call_id=call.id, content="found"),
            AssistantMessage(content="answer"),
        ]
    session.total_tool_calls = turns
    return session


async def invoke(*args: str, env: dict[str, str | None] | None = None, **kwargs: Any) -> Result:
    """Run the command in a thread: it calls asyncio.run(), which needs a thread with no loop."""
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, cli, list(args), env=env, **kwargs)


def run_command(*args: str, env: dict[str, str | None]) -> subprocess.CompletedProcess[str]:
    """Run `python -m s3store` in a process of its own.

    moto's buckets are shared by every server in one process, so a command that
    starts an embedded server runs apart from the suite's server.
    """
    environ = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-m", "s3store", *args],
        env={name: value for name, value in environ.items() if value is not None},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


NO_BUCKET: dict[str, str | None] = {"S3STORE_BUCKET": None, "AWS_ENDPOINT_URL": None}


@pytest.fixture
def env(moto_url: str, bucket: str) -> dict[str, str | None]:
    return {"S3STORE_BUCKET": bucket, "AWS_ENDPOINT_URL": moto_url, "S3STORE_PREFIX": None}


@pytest.fixture
async def seeded(s3_store: S3SessionStore) -> list[SessionId]:
    for number, session_id in enumerate(IDS, 1):
        await s3_store.save(conversation(session_id, turns=number))
    return IDS


@pytest.fixture
async def versioned(s3: S3Client, bucket: str) -> str:
    await s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return bucket


async def raw_objects(s3: S3Client, bucket: str) -> dict[str, bytes]:
    listing = await s3.list_objects_v2(Bucket=bucket)
    objects = {}
    for item in listing.get("Contents", ()):
        response = await s3.get_object(Bucket=bucket, Key=item["Key"])
        async with response["Body"] as body:
            objects[item["Key"]] = await body.read()
    return objects


def one_line_error(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("s3store: ")
    return lines[0]


# -- ls ------------------------------------------------------------------------------


async def test_ls_prints_tab_separated_lines_when_piped(
    env: dict[str, str | None], seeded: list[SessionId], s3: S3Client, bucket: str
) -> None:
    result = await invoke("ls", env=env)

    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    sizes = {
        item["Key"]: item["Size"] for item in (await s3.list_objects_v2(Bucket=bucket))["Contents"]
    }
    in_key_order = sorted(seeded, key=lambda session_id: session_key("sessions/", session_id))
    assert [parse_name(row[0]) for row in rows] == in_key_order
    assert [int(row[1]) for row in rows] == [
        sizes[session_key("sessions/", session_id)] for session_id in in_key_order
    ]
    assert "\x1b[" not in result.output
    assert "─" not in result.output


async def test_ls_json_pages_with_limit_and_after(
    env: dict[str, str | None], seeded: list[SessionId]
) -> None:
    first = json.loads((await invoke("ls", "--json", "--limit", "3", env=env)).stdout)
    assert len(first["sessions"]) == 3
    assert first["next"] == first["sessions"][-1]["id"]

    rest = json.loads((await invoke("ls", "--json", "--after", first["next"], env=env)).stdout)
    assert rest["next"] is None
    listed = [parse_name(item["id"]) for item in first["sessions"] + rest["sessions"]]
    assert sorted(listed) == sorted(seeded)
    assert len(listed) == len(seeded)
    assert {"key", "size", "last_modified", "etag"} <= set(rest["sessions"][0])


async def test_on_a_terminal_tables_show_ids_as_text_not_markup(
    env: dict[str, str | None], s3_store: S3SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3store.cli, "interactive", lambda: True)
    for session_id in (SessionId(1, "[bold]x[/]"), SessionId(2)):
        await s3_store.save(conversation(session_id))

    name = key_name(SessionId(1, "[bold]x[/]"))  # 1(%5Bbold%5Dx%5B%2F%5D)
    listed = await invoke("ls", "--limit", "1", env=env)
    shown = await invoke("show", name, env=env)
    stats = await invoke("stats", env=env)

    assert listed.exit_code == shown.exit_code == stats.exit_code == 0
    assert "1 session(s)" in listed.stdout
    assert "┃ id" in listed.stdout
    assert name in listed.stdout
    assert f"more sessions may follow: s3store ls --after '{name}'" in listed.stderr
    assert name in shown.stdout
    assert re.search(r"messages +5: 2 assistant, 1 system, 1 tool, 1 user", shown.stdout)
    assert name in stats.stdout


# -- show ----------------------------------------------------------------------------


async def test_show_summarizes_messages_tool_calls_and_version(
    env: dict[str, str | None], versioned: str, s3_store: S3SessionStore, s3: S3Client
) -> None:
    session_id = SessionId(7, "user-7")
    await s3_store.save(conversation(session_id, turns=2))
    key = s3_store.objects.key(s3_store.name(session_id))
    head = await s3.head_object(Bucket=versioned, Key=key)

    result = await invoke("show", "7(user-7)", env=env)

    assert result.exit_code == 0, result.output
    fields = dict(line.split("\t", 1) for line in result.stdout.splitlines())
    assert fields["id"] == "7(user-7)"
    assert fields["messages"] == "9"
    assert fields["messages_by_role.system"] == "1"
    assert fields["messages_by_role.user"] == "2"
    assert fields["messages_by_role.assistant"] == "4"
    assert fields["messages_by_role.tool"] == "2"
    assert fields["tool_calls"] == "2"
    assert fields["tool_calls_by_name.search"] == "2"
    assert fields["size"] == str(head["ContentLength"])
    assert fields["version_id"] == head["VersionId"]


async def test_show_json_prints_the_stored_object_byte_for_byte(
    env: dict[str, str | None], seeded: list[SessionId], s3: S3Client, bucket: str
) -> None:
    raw = await raw_objects(s3, bucket)

    result = await invoke("show", "--json", key_name(seeded[2]), env=env)

    assert result.exit_code == 0
    assert result.stdout_bytes == raw[session_key("sessions/", seeded[2])]  # no newline added
    assert SessionId(**json.loads(result.stdout)["id"]) == seeded[2]


async def test_show_of_a_corrupt_object_exits_3_and_json_still_shows_it(
    env: dict[str, str | None], s3: S3Client, bucket: str
) -> None:
    await s3.put_object(Bucket=bucket, Key="sessions/6.json", Body=b'{"id": {"id": 7}}')

    summarized = await invoke("show", "6", env=env)
    raw = await invoke("show", "--json", "6", env=env)

    assert summarized.exit_code == 3
    assert "s3store show --json 6" in one_line_error(summarized)
    assert raw.exit_code == 0
    assert raw.stdout == '{"id": {"id": 7}}'


async def test_show_of_a_missing_session_exits_1(env: dict[str, str | None], bucket: str) -> None:
    result = await invoke("show", "404", env=env)

    assert result.exit_code == 1
    assert "no session 404" in one_line_error(result)
    assert "s3store ls" in result.stderr


# -- rm and purge --------------------------------------------------------------------


async def test_rm_leaves_versions_that_purge_erases(
    env: dict[str, str | None], versioned: str, s3_store: S3SessionStore, s3: S3Client
) -> None:
    session_id = SessionId(5, "erase-me")
    key = s3_store.objects.key(s3_store.name(session_id))
    for turns in (1, 2, 3):
        await s3_store.update(session_id, lambda _, t=turns: conversation(session_id, t))

    removed = await invoke("rm", "--json", key_name(session_id), env=env)

    assert removed.exit_code == 0, removed.output
    assert json.loads(removed.stdout) == {
        "deleted": "5(erase-me)",
        "key": key,
        "versions_kept": True,
    }
    assert "s3store purge 5(erase-me)" in removed.stderr
    assert await s3_store.load(session_id) is None
    versions = await s3.list_object_versions(Bucket=versioned, Prefix=key)
    assert len(versions["Versions"]) == 3

    purged = await invoke("purge", "--json", key_name(session_id), env=env)

    assert purged.exit_code == 0, purged.output
    assert json.loads(purged.stdout) == {
        "purged": "5(erase-me)",
        "versions": 3,
        "delete_markers": 1,
    }
    versions = await s3.list_object_versions(Bucket=versioned, Prefix=key)
    assert "Versions" not in versions
    assert "DeleteMarkers" not in versions


async def test_rm_and_purge_of_a_missing_session_exit_1(
    env: dict[str, str | None], bucket: str
) -> None:
    for command in ("rm", "purge"):
        result = await invoke(command, "12(nobody)", env=env)
        assert result.exit_code == 1, command
        assert "no session 12(nobody)" in one_line_error(result)


async def test_plain_rm_and_purge_print_one_line(
    env: dict[str, str | None], seeded: list[SessionId], s3_store: S3SessionStore
) -> None:
    removed = await invoke("rm", "10", env=env)
    purged = await invoke("purge", "1(alice)", env=env)

    assert removed.stdout.split("\t") == ["deleted", "10", "sessions/10.json\n"]
    assert purged.stdout == "purged\t1(alice)\t1\t0\n"
    assert await s3_store.list() == [SessionId(2, "a/b (c)%"), SessionId(3, "ünï")]


# -- stats ---------------------------------------------------------------------------


async def test_stats_counts_sizes_and_the_largest(
    env: dict[str, str | None], seeded: list[SessionId], s3: S3Client, bucket: str
) -> None:
    sizes = {key: len(body) for key, body in (await raw_objects(s3, bucket)).items()}

    report = json.loads((await invoke("stats", "--json", env=env)).stdout)
    plain = await invoke("stats", env=env)

    assert report["sessions"] == 4
    assert report["total_bytes"] == sum(sizes.values())
    assert report["largest"] == {"id": "3(%C3%BCn%C3%AF)", "size": max(sizes.values())}
    assert report["location"] == f"s3://{bucket}/sessions/"
    assert plain.stdout.splitlines()[:2] == ["sessions\t4", f"total_bytes\t{sum(sizes.values())}"]


# -- export and import ---------------------------------------------------------------


async def test_export_then_import_round_trips_every_byte(
    env: dict[str, str | None],
    seeded: list[SessionId],
    s3: S3Client,
    bucket: str,
    tmp_path: Path,
) -> None:
    # Written by another agent-base writer: other key order, unescaped text, unknown fields.
    foreign = (
        '{"chat_messages":[{"User":{"content":"olá"}}],"id":{"id":99,"external_id":null},"x":1}'
    )
    await s3.put_object(Bucket=bucket, Key="sessions/99.json", Body=foreign.encode())
    before = await raw_objects(s3, bucket)
    export = tmp_path / "sessions.jsonl"

    exported = await invoke("export", str(export), "--concurrency", "2", env=env)

    assert exported.exit_code == 0, exported.output
    assert len(export.read_bytes().splitlines()) == 5
    target = f"{bucket}-copy"
    await s3.create_bucket(Bucket=target)
    imported = await invoke("import", str(export), "--json", env={**env, "S3STORE_BUCKET": target})

    assert imported.exit_code == 0, imported.output
    report = json.loads(imported.stdout)
    assert len(report.pop("written")) == 5
    assert report == {"unchanged": 0, "conflicts": [], "failed": {}}
    assert await raw_objects(s3, target) == before


async def test_export_to_stdout_and_import_from_stdin(
    env: dict[str, str | None], seeded: list[SessionId], s3: S3Client, bucket: str
) -> None:
    exported = await invoke("export", "-", env=env)

    imported = await invoke(
        "import", "-", input=exported.stdout_bytes, env={**env, "S3STORE_PREFIX": "restored/"}
    )

    assert imported.exit_code == 0, imported.output
    raw = await raw_objects(s3, bucket)
    originals = {key: body for key, body in raw.items() if key.startswith("sessions/")}
    restored = {key: body for key, body in raw.items() if key.startswith("restored/")}
    assert restored == {
        key.replace("sessions/", "restored/", 1): body for key, body in originals.items()
    }


async def test_import_keeps_existing_sessions_unless_overwrite(
    env: dict[str, str | None], seeded: list[SessionId], s3_store: S3SessionStore, tmp_path: Path
) -> None:
    export = tmp_path / "sessions.jsonl"
    await invoke("export", str(export), env=env)
    again = await invoke("import", "--json", str(export), env=env)
    assert again.exit_code == 0
    assert json.loads(again.stdout) == {
        "written": [],
        "unchanged": 4,
        "conflicts": [],
        "failed": {},
    }

    changed = conversation(seeded[0], turns=5)
    lines = export.read_bytes().splitlines()
    export.write_bytes(b"\n".join([changed.model_dump_json().encode(), *lines[1:]]) + b"\n")
    refused = await invoke("import", str(export), env=env)

    assert refused.exit_code == 3
    assert "--overwrite" in refused.stderr.splitlines()[-1]
    assert await s3_store.load(seeded[0]) == conversation(seeded[0], turns=1)

    replaced = await invoke("import", "--overwrite", str(export), env=env)

    assert replaced.exit_code == 0, replaced.output
    assert await s3_store.load(seeded[0]) == changed


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'{"id": {"id": 1}}\nnot json\n', "line 2 is not a session"),
        (b'{"chat_messages": []}\n', "line 1 has no session id"),
        (b'{"id": {"id": 1}}\n\n{"id": {"id": 1}}\n', "session 1 twice (lines 1 and 3)"),
    ],
)
async def test_import_of_a_bad_file_exits_2_and_writes_nothing(
    env: dict[str, str | None],
    s3_store: S3SessionStore,
    tmp_path: Path,
    content: bytes,
    problem: str,
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content)

    result = await invoke("import", str(bad), env=env)

    assert result.exit_code == 2
    assert problem in one_line_error(result)
    assert await s3_store.list() == []


async def test_export_leaves_out_corrupt_objects_and_exits_3(
    env: dict[str, str | None], seeded: list[SessionId], s3: S3Client, bucket: str, tmp_path: Path
) -> None:
    await s3.put_object(Bucket=bucket, Key="sessions/8.json", Body=b"\x00garbage")
    export = tmp_path / "sessions.jsonl"

    result = await invoke("export", str(export), env=env)

    assert result.exit_code == 3
    assert "sessions/8.json" in result.stderr.splitlines()[-1]
    assert len(export.read_bytes().splitlines()) == len(seeded)


# -- errors and configuration --------------------------------------------------------


async def test_a_missing_bucket_is_a_storage_error_in_one_line(
    env: dict[str, str | None],
) -> None:
    result = await invoke("ls", "--bucket", "no-such-bucket-here", env=env)

    assert result.exit_code == 3
    assert "the bucket does not exist" in one_line_error(result)


@pytest.mark.parametrize(
    "args",
    [("show", "not-an-id"), ("show",), ("ls", "--limit", "0"), ("ls", "--color"), ("frobnicate",)],
)
async def test_usage_errors_exit_2(env: dict[str, str | None], args: tuple[str, ...]) -> None:
    result = await invoke(*args, env=env)

    assert result.exit_code == 2, result.output


async def test_an_unknown_profile_is_a_configuration_error(env: dict[str, str | None]) -> None:
    result = await invoke("ls", "--profile", "no-such-profile", env=env)

    assert result.exit_code == 2
    assert "no-such-profile" in one_line_error(result)


async def test_with_no_bucket_the_command_uses_an_embedded_server() -> None:
    result = await asyncio.to_thread(run_command, "stats", "--json", env=NO_BUCKET)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sessions"] == 0
    assert "no bucket configured" in result.stderr
    assert "embedded S3 server at http://127.0.0.1:" in result.stderr


async def test_without_moto_the_embedded_server_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "moto.moto_server.werkzeug_app", None)  # as if no moto

    result = await invoke("ls", env=NO_BUCKET)

    assert result.exit_code == 2
    assert "pip install 's3store[local]'" in one_line_error(result)


async def test_local_flag_ignores_the_configured_bucket(
    env: dict[str, str | None], seeded: list[SessionId]
) -> None:
    result = await asyncio.to_thread(run_command, "ls", "--local", env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "--local: using an embedded S3 server" in result.stderr


# -- s3store local ---------------------------------------------------------------------


@pytest.fixture
def local_server() -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "s3store", "local", "--bucket", "dev-sessions"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "S3STORE_PREFIX": "agents/"},
    )
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


async def test_local_serves_until_interrupted_and_prints_the_variables(
    local_server: subprocess.Popen[str],
) -> None:
    assert local_server.stdout is not None
    exports = {}
    while "S3STORE_PREFIX" not in exports:
        line = await asyncio.to_thread(local_server.stdout.readline)
        assert line, "the server ended before printing its variables"
        name, _, value = line.removeprefix("export ").strip().partition("=")
        exports[name] = value
    assert exports["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert exports["S3STORE_BUCKET"] == "dev-sessions"
    assert exports["S3STORE_PREFIX"] == "agents/"

    store = S3SessionStore.from_env(
        exports, endpoint_url=exports["AWS_ENDPOINT_URL"], region_name=exports["AWS_REGION"]
    )
    async with store:
        await store.save(conversation(SessionId(1)))
        assert await store.list() == [SessionId(1)]
    versioning = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "s3store", "ls", "--json"],
        env={**os.environ, **exports},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(versioning.stdout)["sessions"][0]["key"] == "agents/1.json"

    local_server.send_signal(signal.SIGINT)
    assert await asyncio.to_thread(local_server.wait, 10) == 0


# -- the demo --------------------------------------------------------------------------


async def test_demo_runs_end_to_end_on_the_embedded_server() -> None:
    result = await asyncio.to_thread(run_command, "demo", env=NO_BUCKET)

    assert result.returncode == 0, result.stderr
    transcript = result.stdout
    assert "\x1b[" not in transcript
    assert "It is 4 °C and overcast in Oslo." in transcript  # the follow-up read the history
    # The refused save, then (after whatever the store checks) the save that lands.
    assert re.search(r"PutObject 412 → .*GetObject 200 → PutObject 200", transcript)
    assert "attempt 2 saved" in transcript
    assert "purged 2(bob): 2 version(s)" in transcript
    assert "HTTP requests to S3" in transcript
    assert "412 (1)" in transcript


async def test_demo_on_a_configured_bucket_keeps_to_a_prefix_of_its_own(
    env: dict[str, str | None], seeded: list[SessionId], s3: S3Client, bucket: str
) -> None:
    before = await raw_objects(s3, bucket)

    result = await invoke("demo", env=env)

    assert result.exit_code == 0, result.output
    assert "cleaned up: purged the demo's sessions" in result.stdout
    assert await raw_objects(s3, bucket) == before


async def test_the_local_s3_example_runs() -> None:
    example = Path(__file__).parent.parent / "examples" / "local_s3.py"

    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(example)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "1(user-42): 2 message(s)" in result.stdout
    assert "purged 2 versions and 1 delete marker" in result.stdout


# -- the review's findings: each a regression test -------------------------------------

HOSTILE = [
    SessionId(1, "a\nb"),
    SessionId(2, "x\ty"),
    SessionId(3, "\x1b[31mred\x1b[0m"),
    SessionId(4),
]


async def test_piped_ids_cannot_forge_rows_and_read_back_as_arguments(
    env: dict[str, str | None], s3_store: S3SessionStore
) -> None:
    for session_id in HOSTILE:
        await s3_store.save(conversation(session_id))

    listed = await invoke("ls", env=env)

    assert listed.exit_code == 0
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert len(rows) == len(HOSTILE)
    assert all(len(row) == 3 for row in rows)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", listed.stdout)
    assert [parse_name(row[0]) for row in rows] == HOSTILE
    for row in rows:  # as `s3store ls | cut -f1 | xargs -n1 s3store purge` passes them
        assert (await invoke("purge", row[0], env=env)).exit_code == 0
    assert await s3_store.list() == []


async def test_import_checks_every_key_before_the_first_write(
    env: dict[str, str | None], s3_store: S3SessionStore, tmp_path: Path
) -> None:
    lines = [conversation(SessionId(1)), conversation(SessionId(2, "x" * 1100))]
    source = tmp_path / "sessions.jsonl"
    source.write_bytes(b"".join(session.model_dump_json().encode() + b"\n" for session in lines))

    result = await invoke("import", str(source), env=env)

    assert result.exit_code == 2
    error = one_line_error(result)
    assert "line 2" in error
    assert "nothing was imported" in error
    assert await s3_store.list() == []


async def test_a_storage_failure_mid_import_says_what_was_written(
    moto_url: str, env: dict[str, str | None], s3_store: S3SessionStore, tmp_path: Path
) -> None:
    ids = [SessionId(number) for number in (1, 2, 3)]
    source = tmp_path / "sessions.jsonl"
    source.write_bytes(b"".join(conversation(i).model_dump_json().encode() + b"\n" for i in ids))
    # One request at a time: the first PUT lands, the second fails on every attempt.
    script = [None] + [Fault.ERROR_500] * 4
    async with FaultProxy(moto_url, {}, script=script) as url:
        result = await invoke(
            "import",
            "--json",
            "--concurrency",
            "1",
            str(source),
            env={**env, "AWS_ENDPOINT_URL": url},
        )

    assert result.exit_code == 3
    report = json.loads(result.stdout)
    assert report["written"] == ["1", "3"]
    assert list(report["failed"]) == ["2"]
    assert "InternalError" in report["failed"]["2"]
    assert "Run the import again" in one_line_error(result)
    assert await s3_store.list() == [SessionId(1), SessionId(3)]


async def test_a_missing_import_file_is_a_usage_error(
    env: dict[str, str | None], tmp_path: Path
) -> None:
    result = await invoke("import", str(tmp_path / "nowhere.jsonl"), env=env)

    assert result.exit_code == 2
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.output


async def test_an_export_into_a_missing_folder_is_a_usage_error(
    env: dict[str, str | None], seeded: list[SessionId], tmp_path: Path
) -> None:
    result = await invoke("export", str(tmp_path / "no" / "such" / "x.jsonl"), env=env)

    assert result.exit_code == 2
    assert "cannot write" in one_line_error(result)


async def test_export_leaves_out_sessions_over_the_size_limit_and_says_how_to_raise_it(
    env: dict[str, str | None], s3_store: S3SessionStore, tmp_path: Path
) -> None:
    await s3_store.save(conversation(SessionId(1)))
    await s3_store.save(conversation(SessionId(2), turns=40))  # about 6 KB
    export = tmp_path / "sessions.jsonl"

    cut = await invoke("export", "--max-session-bytes", "3000", str(export), env=env)

    assert cut.exit_code == 3
    error = cut.stderr.splitlines()[-1]  # after the note of what was exported
    assert "sessions/2.json" in error
    assert "--max-session-bytes" in error
    assert len(export.read_bytes().splitlines()) == 1

    whole = await invoke("export", "--max-session-bytes", "100000", str(export), env=env)
    assert whole.exit_code == 0, whole.output
    assert len(export.read_bytes().splitlines()) == 2
    big = await invoke("show", "--max-session-bytes", "3000", "2", env=env)
    assert big.exit_code == 3
    assert "max_session_bytes" in one_line_error(big)


@pytest.fixture
def failing_credentials(tmp_path: Path) -> dict[str, str | None]:
    config = tmp_path / "aws-config"
    config.write_text("[profile broken]\ncredential_process = /bin/false\n")
    return {
        "AWS_CONFIG_FILE": str(config),
        "AWS_ACCESS_KEY_ID": None,
        "AWS_SECRET_ACCESS_KEY": None,
        "AWS_PROFILE": "broken",
    }


COMMANDS = [
    ("ls",),
    ("ls", "--after", "1(a\nb)"),
    ("show", "1(\x1b[31m)"),
    ("show", "7(a%2Fb)"),
    ("rm", "1\t2"),
    ("purge", "99"),
    ("stats",),
    ("export", "-"),
    ("import", "/no/such/file.jsonl"),
]


@pytest.mark.parametrize("args", COMMANDS, ids=repr)
@pytest.mark.parametrize("trouble", ["none", "unknown profile", "failing credential process"])
async def test_hostile_input_never_ends_in_a_traceback(
    env: dict[str, str | None],
    failing_credentials: dict[str, str | None],
    args: tuple[str, ...],
    trouble: str,
) -> None:
    settings = {
        "none": env,
        "unknown profile": {**env, "AWS_PROFILE": "no-such-profile"},
        "failing credential process": {**env, **failing_credentials},
    }[trouble]

    result = await invoke(*args, env=settings)

    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 1, 2, 3)
    if result.exit_code:
        assert result.stderr.strip(), "an error says what went wrong"
    if trouble != "none" and args[0] != "import":
        assert result.exit_code == 2  # configuration


# -- events and history ---------------------------------------------------------------------


async def test_events_prints_json_lines_piped_and_a_timeline_on_a_terminal(
    env: dict[str, str | None], s3_store: S3SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    session_id = SessionId(5, "user\n5")
    appended = [
        TextDelta(session_id=session_id, text="Hello\nthere", agent_id="root"),
        ToolCallStarted(session_id=session_id, tool_name="bash", args_json='{"cmd":"ls"}'),
    ]
    for event in appended:
        await s3_store.append_event(session_id, event)

    piped = await invoke("events", key_name(session_id), env=env)

    assert piped.exit_code == 0, piped.output
    assert piped.stdout.splitlines() == [event_json(event).decode() for event in appended]

    monkeypatch.setattr(s3store.cli, "interactive", lambda: True)
    timeline = await invoke("events", key_name(session_id), env=env)
    lines = timeline.stdout.splitlines()
    assert len(lines) == 2
    assert "root" in lines[0]
    assert "textDelta" in lines[0]
    assert "Hello there" in lines[0]  # one line per event, whatever it holds
    assert 'bash({"cmd":"ls"})' in lines[1]


async def test_history_and_restore_put_a_session_back(
    env: dict[str, str | None], versioned: str, s3_store: S3SessionStore
) -> None:
    session_id = SessionId(6)
    for turns in (1, 2, 3):
        session = await s3_store.load(session_id)
        if session is None:
            await s3_store.save(conversation(session_id, turns))
        else:
            session.chat_messages = conversation(session_id, turns).chat_messages
            await s3_store.save(session)

    listed = await invoke("history", "--json", "6", env=env)
    assert listed.exit_code == 0, listed.output
    versions = json.loads(listed.stdout)
    assert [version["latest"] for version in versions] == [True, False, False]

    restored = await invoke("restore", "6", versions[-1]["version_id"], env=env)

    assert restored.exit_code == 0, restored.output
    assert await s3_store.load(session_id) == conversation(session_id, 1)
    unversioned = await invoke("history", "6", env={**env, "S3STORE_PREFIX": "other/"})
    assert unversioned.exit_code == 1  # nothing stored there


async def test_restore_refuses_an_empty_version_and_names_an_unknown_one(
    env: dict[str, str | None], versioned: str, s3_store: S3SessionStore
) -> None:
    await s3_store.save(conversation(SessionId(1), 1))
    before = await s3_store.history(SessionId(1))

    empty = await invoke("restore", "1", "", env=env)
    unknown = await invoke("restore", "1", "no-such-version", env=env)

    assert empty.exit_code == 2
    assert "VERSION is empty" in one_line_error(empty)
    assert unknown.exit_code == 1
    assert "no such version 'no-such-version'" in one_line_error(unknown)
    assert await s3_store.history(SessionId(1)) == before  # nothing written


async def test_events_of_objects_that_are_not_positions_print_without_a_traceback(
    env: dict[str, str | None], s3: S3Client, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another tool's copies under the events folder: names that are not positions.
    event = b'{"runtimeEventType":"textDelta","session_id":{"id":9,"external_id":null},"text":"hi"}'
    for name in ("00001764850000000000-aaaa-000000000001.json", "copy.json", "archive/old.json"):
        await s3.put_object(Bucket=bucket, Key=f"sessions/9/events/{name}", Body=event)
    await s3.put_object(Bucket=bucket, Key="sessions/9/events/broken.json", Body=b"{not json")
    monkeypatch.setattr(s3store.cli, "interactive", lambda: True)

    shown = await invoke("events", "9", env=env)

    assert shown.exit_code == 3  # the broken object is named, after what could be shown
    assert "Traceback" not in shown.stderr
    assert "sessions/9/events/broken.json" in one_line_error(shown)
    assert shown.stdout.count("textDelta") == 1  # the event before it, in key order


def test_events_follow_json_sees_every_event_of_a_slow_writer(moto_url: str, bucket: str) -> None:
    # The README's follow command, in a process of its own, while two writers append
    # through a proxy that holds each PUT back 0-250 ms.
    env = {**os.environ, "S3STORE_BUCKET": bucket, "AWS_ENDPOINT_URL": moto_url}
    follower = subprocess.Popen(
        [sys.executable, "-m", "s3store", "events", "--follow", "--json", "3"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    async def write() -> None:
        proxy = FaultProxy(moto_url, {Fault.LATENCY: 1.0}, latency=(0, 0.25), methods={"PUT"})
        async with proxy as url:
            writers = [S3SessionStore(bucket, endpoint_url=url) for _ in range(2)]

            async def append(writer: int) -> None:
                for number in range(20):
                    event = TextDelta(session_id=SessionId(3), text=f"{writer}:{number}")
                    await writers[writer].append_event(SessionId(3), event)

            await asyncio.gather(append(0), append(1))
            for store in writers:
                await store.close()

    try:
        asyncio.run(write())
        seen: list[str] = []
        assert follower.stdout is not None
        while len(seen) < 40:  # it polls every second: what is stored arrives
            line = follower.stdout.readline()
            assert line, follower.stderr.read() if follower.stderr else "follower ended"
            seen.append(json.loads(line)["text"])
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(timeout=30)
    assert sorted(seen) == sorted(f"{w}:{n}" for w in range(2) for n in range(20))


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("ls", "List sessions"),
        ("show", "Summarize a session"),
        ("rm", "Delete a session"),
        ("purge", "its events"),
        ("stats", "Count the sessions"),
        ("export", "Write every session"),
        ("import", "Write each session"),
        ("events", "events in append order"),
        ("history", "stored versions"),
        ("restore", "current version again"),
        ("local", "embedded S3 server"),
        ("demo", "scripted tool-using agent"),
    ],
)
async def test_each_command_says_what_it_does(command: str, says: str) -> None:
    helped = await invoke(command, "--help")
    assert helped.exit_code == 0
    assert says in " ".join(helped.stdout.split())
