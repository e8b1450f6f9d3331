"""The public API under hostile input: every failure is a `SessionStoreError`, nothing else."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from s3store import (
    AgentSession,
    BulkOperationError,
    ConfigurationError,
    CustomMessage,
    InvalidSessionError,
    InvalidSessionIdError,
    S3SessionStore,
    SessionId,
    SessionStore,
    SessionStoreError,
    UserMessage,
)
from tests.conftest import REGION

HOSTILE_EXTERNAL_IDS = [
    "\n\t\r\x00\x1b[31m",  # control characters and a terminal escape
    "line\nforged\trow",
    "../../etc/passwd",
    "%2F()%%",
    "'\"`$(rm -rf /)`",
    "x" * 2_000,  # a key over S3's 1,024 bytes
    "\ud800",  # a lone surrogate: not valid Unicode
    "",
]
HOSTILE_ID_TEXTS = ["", "-1", "18446744073709551616", "1(", "1)x", "01", " 1", "1(\n", "\ud800"]


async def outcome(call: Awaitable[Any]) -> str:
    """'ok', or the name of the SessionStoreError raised; any other exception fails."""
    try:
        await call
    except SessionStoreError as exc:
        return type(exc).__name__
    return "ok"


def operations(
    store: SessionStore, session_id: SessionId
) -> dict[str, Callable[[], Awaitable[Any]]]:
    def fn(session: AgentSession | None) -> AgentSession:
        return session or AgentSession(id=session_id)

    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "save": lambda: store.save(AgentSession(id=session_id)),
        "load": lambda: store.load(session_id),
        "update": lambda: store.update(session_id, fn, idempotency_key=str(session_id.external_id)),
        "delete": lambda: store.delete(session_id),
        "load_many": lambda: store.load_many([session_id]),
        "save_many": lambda: store.save_many([AgentSession(id=session_id)]),
        "delete_many": lambda: store.delete_many([session_id]),
        "list": store.list,
    }
    if isinstance(store, S3SessionStore):
        calls["stat"] = lambda: store.stat(session_id)
        calls["purge"] = lambda: store.purge(session_id)
    return calls


@pytest.mark.parametrize("external_id", HOSTILE_EXTERNAL_IDS, ids=repr)
async def test_hostile_ids_through_every_operation(store: SessionStore, external_id: str) -> None:
    session_id = SessionId(2**64 - 1, external_id)
    results = {name: await outcome(call()) for name, call in operations(store, session_id).items()}
    valid_key = len(external_id) < 1_000 and external_id != "\ud800"
    for name, result in results.items():
        if name == "list" or valid_key:
            assert result == "ok", (name, result)
        else:
            assert result in ("InvalidSessionIdError", "BulkOperationError"), (name, result)


@pytest.mark.parametrize("text", HOSTILE_ID_TEXTS, ids=repr)
def test_hostile_id_texts_are_refused_as_ids(text: str) -> None:
    with pytest.raises(InvalidSessionIdError):
        SessionId.parse(text)


@pytest.mark.parametrize(
    ("number", "external_id"),
    [(-1, None), (2**64, None), ("1", None), (1.5, None), (True, None), (1, 7), (1, ["x"])],
    ids=repr,
)
def test_hostile_id_values_are_refused(number: Any, external_id: Any) -> None:
    with pytest.raises(InvalidSessionIdError):
        SessionId(number, external_id)


def unencodable_sessions() -> Iterator[tuple[str, AgentSession]]:
    """Sessions changed in place after validation to hold what cannot be stored."""
    with_object = AgentSession(id=SessionId(1), chat_messages=[CustomMessage(role="r", data={})])
    with_object.chat_messages[0].data["handle"] = object()  # type: ignore[union-attr]
    yield "object in custom data", with_object
    message = UserMessage(content="ok").model_copy(update={"content": "\ud800"})
    yield "lone surrogate", AgentSession(id=SessionId(1), chat_messages=[message])
    yield (
        "counter over u64",
        AgentSession(id=SessionId(1)).model_copy(update={"total_tool_calls": 2**64}),
    )


UNENCODABLE = list(unencodable_sessions())


@pytest.mark.parametrize(("case", "session"), UNENCODABLE, ids=[case for case, _ in UNENCODABLE])
async def test_a_session_that_cannot_be_stored_is_a_typed_error_and_nothing_is_written(
    store: SessionStore, case: str, session: AgentSession
) -> None:
    with pytest.raises(InvalidSessionError) as caught:
        await store.save(session)
    assert caught.value.path, case
    assert await store.list() == []
    with pytest.raises(BulkOperationError) as bulk:
        await store.save_many([AgentSession(id=SessionId(0)), session])
    assert isinstance(bulk.value.errors[SessionId(1)], InvalidSessionError)
    assert bulk.value.done == [SessionId(0)]
    assert await store.list() == [SessionId(0)]


@pytest.fixture
def isolated_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No credentials in the environment; AWS_CONFIG_FILE at a file the test writes."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "config"
    config.write_text("[profile broken]\ncredential_process = /bin/false\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    return config


def test_an_unknown_profile_is_a_configuration_error(
    isolated_aws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    with pytest.raises(ConfigurationError, match="no-such-profile"):
        S3SessionStore("bucket")
    with pytest.raises(ConfigurationError, match="no-such-profile"):
        S3SessionStore.from_env({"S3STORE_BUCKET": "bucket"})


async def test_a_failing_credential_process_is_a_configuration_error(
    isolated_aws: Path, monkeypatch: pytest.MonkeyPatch, moto_url: str
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "broken")
    store = S3SessionStore("bucket", endpoint_url=moto_url, region_name=REGION)
    with pytest.raises(ConfigurationError):
        async with store:
            await store.load(SessionId(1))
