"""What `import s3store` loads: only what the first load or save needs (a cold start
pays for every module), never the command line's, the embedded server's or a framework's."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FRAMEWORKS = ("strands", "google.adk", "agents", "openai", "langgraph", "langchain_core")
NEVER_AT_IMPORT = ("s3store.events", "rich", "click", "moto", "flask", *FRAMEWORKS)


def imported_by(statement: str) -> set[str]:
    """The modules a fresh interpreter holds after running `statement`."""
    script = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    return set(json.loads(done.stdout))


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(f"{n}.") for n in names))


def added(statement: str) -> set[str]:
    """What `statement` imports beyond aioboto3 itself: aiobotocore imports httpx where it
    is installed (a framework brings it), and httpx its command line's click and rich."""
    return imported_by(statement) - imported_by("import aioboto3")


def test_import_s3store_loads_no_event_model_cli_server_or_framework() -> None:
    assert loaded(added("import s3store"), NEVER_AT_IMPORT) == []


def test_the_public_names_are_all_there_and_the_events_load_on_first_use() -> None:
    modules = imported_by(
        "import s3store\n"
        "missing = [n for n in s3store.__all__ if getattr(s3store, n, None) is None]\n"
        "assert not missing, missing"
    )
    assert "s3store.events" in modules  # RuntimeEvent, asked for, was loaded then


@pytest.mark.parametrize(
    ("adapter", "framework"),
    [
        ("s3store.strands", "strands"),
        ("s3store.adk", "google.adk"),
        ("s3store.openai_agents", "agents"),
        ("s3store.langgraph", "langgraph"),
    ],
)
def test_an_adapter_loads_its_framework_and_no_other(adapter: str, framework: str) -> None:
    pytest.importorskip(framework, reason=f"{framework} is not installed")
    try:
        modules = added(f"import {adapter}")
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"import {adapter} failed: {exc.stderr}")
    # What a framework itself imports: the Agents SDK the openai client (and, through
    # mcp's server and uvicorn, click), LangGraph's checkpoint base langchain_core.
    own = {
        "agents": ("agents", "openai", "click"),
        "langgraph": ("langgraph", "langchain_core"),
    }
    others = tuple(name for name in FRAMEWORKS if name not in own.get(framework, (framework,)))
    assert loaded(modules, others) == []
    assert (
        loaded(
            modules, tuple(n for n in ("rich", "click", "moto") if n not in own.get(framework, ()))
        )
        == []
    )
