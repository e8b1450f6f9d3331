"""README.md runs as shown: every ```python block, and every console transcript.

Each block runs in a fresh interpreter (`python -X dev -W error::ResourceWarning`), as a
reader would run it, against the embedded S3 server (`s3store.local.LocalS3`) with a
bucket `my-sessions-bucket`, emptied before each block, and the variables that
`S3SessionStore.from_env()` and AWS's SDK read. It must exit 0 and print nothing about
a resource left open (which a finalizer's warning does not turn into an exit status). A
block whose every `print(...)` line ends in a `# comment` must print those comments, in
order.

The comment `<!-- readme-test: ... -->` right before a block says how to run it:
`skip (reason)` does not run it, reporting the reason; `lambda EVENT` runs it as a
Lambda function's module: its `handler` is called with the JSON EVENT and a context,
then again with the same request id, as Lambda retries an invocation, and must return
the same. A block that imports an agent framework, or s3store's adapter for one, is
skipped when that framework is not installed, saying which extra installs it.

The transcripts are checked by `scripts/readme_transcripts.py --check`, which runs
their commands (about 40 s on a busy two-core machine).
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.session import Session as BotocoreSession

from s3store.local import LOCAL_CREDENTIALS, LOCAL_REGION, LocalS3

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
TRANSCRIPTS = ROOT / "scripts" / "readme_transcripts.py"
BUCKET = "my-sessions-bucket"
BLOCK = re.compile(
    r"(?:<!-- readme-test: (?P<directive>.*?) -->\n(?:[ \t]*\n)*)?^```python\n(?P<code>.*?)^```$",
    re.DOTALL | re.MULTILINE,
)
# What Python and asyncio print about a resource left open, since a ResourceWarning in
# a finalizer, an error there or aiohttp's unclosed session does not change the exit code.
LEAK = re.compile(r"Exception ignored|ResourceWarning|Unclosed|Task was destroyed")
# The frameworks a block may need: the extra that installs one, the module it brings,
# and s3store's adapter for it.
FRAMEWORKS = {
    "strands": ("strands", "s3store.strands"),
    "adk": ("google.adk", "s3store.adk"),
    "openai-agents": ("agents", "s3store.openai_agents"),
    "langgraph": ("langgraph", "s3store.langgraph"),
}


@dataclass(frozen=True)
class Block:
    line: int  # where its code starts in README.md
    code: str
    directive: str | None

    def __str__(self) -> str:
        return f"README.md:{self.line}"


def readme_blocks() -> list[Block]:
    text = README.read_text()
    return [
        Block(text.count("\n", 0, match.start("code")) + 1, match["code"], match["directive"])
        for match in BLOCK.finditer(text)
    ]


BLOCKS = readme_blocks()


def imported(code: str) -> set[str]:
    """Every module the code imports (absolute imports), with the packages above it."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return {".".join(name.split(".")[:n]) for name in names for n in range(1, name.count(".") + 2)}


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a package above it is missing
        return False


def expected_output(code: str) -> str | None:
    """What the block says it prints: the comments of its `print(...)` lines, when each
    has one; None when it says nothing (or not for every print)."""
    prints = [line for line in code.splitlines() if line.strip().startswith("print(")]
    said = [re.search(r"\)\s+# (.*)$", line) for line in prints]
    if not prints or None in said:
        return None
    return "".join(f"{match[1]}\n" for match in said if match)


@pytest.fixture(scope="module")
def server() -> Iterator[LocalS3]:
    with LocalS3(BUCKET) as local:
        yield local


@pytest.fixture
def environment(server: LocalS3) -> dict[str, str]:
    """A reader's environment pointed at the server, with its bucket emptied: nothing
    reaches AWS (no AWS or s3store variable of this one is passed on, no AWS files read)."""
    empty(server)
    kept = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "S3STORE_"))
    }
    return {
        **kept,
        **server.environment("sessions/"),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def empty(server: LocalS3) -> None:
    """Every version and delete marker in the server's bucket, deleted."""
    key_id, secret = LOCAL_CREDENTIALS
    s3: Any = BotocoreSession().create_client(
        "s3",
        endpoint_url=server.endpoint_url,
        region_name=LOCAL_REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET):
        stored = [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        if stored:
            objects = [{"Key": o["Key"], "VersionId": o["VersionId"]} for o in stored]
            s3.delete_objects(Bucket=BUCKET, Delete={"Objects": objects})
    s3.close()


def lambda_driver(event: str) -> str:
    """A script that imports the block (`handler.py`, in the folder it runs in) as Lambda
    does, and invokes its handler twice with one request id: an invocation and Lambda's
    retry."""
    return textwrap.dedent(
        f"""
        import inspect, json, types
        import handler
        event = json.loads({event!r})
        context = types.SimpleNamespace(
            aws_request_id="8f5b7e8c-readme", function_name="readme",
            get_remaining_time_in_millis=lambda: 30_000,
        )
        first = handler.handler(event, context)
        assert not inspect.isawaitable(first), "Lambda calls a plain function: not awaited"
        retried = handler.handler(event, context)
        assert retried == first, f"Lambda's retry returned {{retried!r}}, not {{first!r}}"
        print(json.dumps(first))
        """
    )


def test_the_readme_has_python_blocks() -> None:
    assert BLOCKS, f"no ```python block found in {README}"


@pytest.mark.parametrize("block", BLOCKS, ids=str)
def test_the_block_runs_as_shown(block: Block, environment: dict[str, str], tmp_path: Path) -> None:
    if block.directive and block.directive.startswith("skip"):
        pytest.skip(f"{block}: {block.directive}")
    for extra, (framework, adapter) in FRAMEWORKS.items():
        modules = imported(block.code)
        if (framework in modules or adapter in modules) and not installed(framework):
            pytest.skip(f"{block} needs {framework}: pip install 's3store[{extra}]'")
    python = [sys.executable, "-X", "dev", "-W", "error::ResourceWarning"]
    if block.directive and block.directive.startswith("lambda "):
        (tmp_path / "handler.py").write_text(block.code)
        command = [*python, "-c", lambda_driver(block.directive[len("lambda ") :])]
    elif block.directive:
        pytest.fail(f"{block}: unknown directive {block.directive!r} (skip or lambda)")
    else:
        (tmp_path / "block.py").write_text(block.code)
        command = [*python, str(tmp_path / "block.py")]
    done = subprocess.run(
        command, env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    report = f"{block.code}\n-- stdout:\n{done.stdout}\n-- stderr:\n{done.stderr}"
    assert done.returncode == 0, f"{block} exited with {done.returncode}\n{report}"
    # A warning raised where Python cannot raise it (a finalizer) is printed, not fatal.
    leaks = [line for line in done.stderr.splitlines() if LEAK.search(line)]
    assert not leaks, f"{block} left something open: {leaks}\n{report}"
    expected = expected_output(block.code)
    if expected is not None:
        assert done.stdout == expected, f"{block} printed what its comments do not say"


def test_the_transcripts_are_current() -> None:
    """The script runs every transcript's commands (the demo twice): the slowest test here."""
    for module in ("click", "rich", "moto"):
        pytest.importorskip(module, reason=f"{module}: pip install 's3store[local]'")
    process = subprocess.Popen(
        [sys.executable, str(TRANSCRIPTS), "--check"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # so that a timeout ends the servers it started too
    )
    try:
        output, _ = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{TRANSCRIPTS.name} --check ran over 300 s:\n{output}")
    assert process.returncode == 0, output
