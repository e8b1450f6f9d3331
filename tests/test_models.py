"""The models' wire format: agent-base's JSON, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from s3store import (
    AgentSession,
    AssistantMessage,
    Base64Image,
    CustomMessage,
    InvalidSessionError,
    InvalidSessionIdError,
    RunState,
    SessionId,
    SessionStore,
    SystemMessage,
    ToolCall,
    ToolMessage,
    UrlImage,
    UserMessage,
)
from s3store.models import serde_json_floats

GOLDEN = Path(__file__).parent / "golden"
"""Sessions as agent-base's serde derives write them, by hand from the Rust types:
`NAME.json` is written as it stands; `NAME.input.json`, an older or lenient layout,
is read and written as `NAME.json`."""

WRITTEN = sorted(path for path in GOLDEN.glob("*.json") if not path.name.endswith(".input.json"))


@pytest.mark.parametrize("path", WRITTEN, ids=lambda path: path.name)
def test_golden_files_load_and_write_back_agent_base_bytes(path: Path) -> None:
    given = path.with_name(path.name.replace(".json", ".input.json"))
    session = AgentSession.model_validate_json((given if given.exists() else path).read_bytes())
    written = serde_json_floats(session.model_dump_json().encode())  # as a store encodes it
    assert written == path.read_bytes()


def test_the_current_layout_holds_every_field() -> None:
    session = AgentSession.model_validate_json((GOLDEN / "current-session.json").read_bytes())
    assert session.id == SessionId(7, "user-7")
    _, user, _, assistant, tool, unnamed, _, custom = session.chat_messages
    assert user == UserMessage(
        content="look at these",
        images=[
            UrlImage(url="https://example.com/a.png"),
            UrlImage(url="https://example.com/b.png", detail="Low"),
            Base64Image(data="iVBORw0KGgo="),
            Base64Image(data="iVBORw0KGgo=", media_type="image/png", detail="High"),
        ],
    )
    assert assistant == AssistantMessage(
        reasoning_content="need a tool",
        thinking_signature="sig==",
        tool_calls=[ToolCall(id="call_1", name="bash", arguments='{"cmd":"ls"}')],
    )
    assert tool == ToolMessage(tool_call_id="call_1", name="bash", content="a\nb")
    assert unnamed == ToolMessage(tool_call_id="call_2", content="")
    assert isinstance(custom, CustomMessage)
    assert custom.data["big"] == 2**64 - 1
    assert session.total_tool_calls == 2**64 - 1
    assert session.run_state == RunState(
        turn_tool_calls=1,
        run_has_tool_calls=True,
        reasoning_only_strikes=2,
        empty_response_strikes=3,
        nudge_count=4,
        thinking_disabled_for_rest_of_run=True,
        original_thinking_enabled=True,
        truncation_strikes=5,
    )


def test_ephemeral_is_read_and_never_written() -> None:
    session = AgentSession.model_validate_json(
        (GOLDEN / "current-ephemeral.input.json").read_bytes()
    )
    system = session.chat_messages[0]
    assert isinstance(system, SystemMessage)
    assert system.ephemeral is True
    assert b"ephemeral" not in session.model_dump_json().encode()


def test_custom_data_keys_are_written_sorted_as_serde_json_writes_them() -> None:
    message = CustomMessage(role="r", data={"b": 1, "a": {"d": 2, "c": 3}, "A": 0})
    session = AgentSession(id=SessionId(1), chat_messages=[message])
    assert '"data":{"A":0,"a":{"c":3,"d":2},"b":1}' in session.model_dump_json()


def test_the_same_session_always_gives_the_same_bytes() -> None:
    first = AgentSession(id=SessionId(1), always_allowed_actions={"b", "c", "a"})
    second = AgentSession(id=SessionId(1), always_allowed_actions={"c", "a", "b"})
    assert first.model_dump_json() == second.model_dump_json()
    assert json.loads(first.model_dump_json())["always_allowed_actions"] == ["a", "b", "c"]


def test_unknown_fields_are_kept_everywhere() -> None:
    wire = json.loads((GOLDEN / "run-state-6.json").read_bytes())
    wire["future_field"] = {"x": 1}
    wire["run_state"]["future_counter"] = 2
    wire["chat_messages"][1]["User"]["future"] = True
    wire["chat_messages"][2]["Assistant"]["tool_calls"][0]["future"] = "y"
    session = AgentSession.model_validate(wire)
    assert json.loads(session.model_dump_json()) == wire


def test_the_older_flat_layout_is_read() -> None:
    old = {
        "id": {"id": 3, "external_id": None},
        "chat_messages": [],
        "always_allowed_actions": [],
        "total_tool_calls": 4,
        "nudge_count": 2,
        "turn_tool_calls": 1,
        "reasoning_only_strikes": 1,
        "empty_response_strikes": 3,
    }
    session = AgentSession.model_validate(old)
    assert session.run_state.nudge_count == 2
    assert session.run_state.turn_tool_calls == 1
    assert session.run_state.reasoning_only_strikes == 1
    assert session.run_state.empty_response_strikes == 3
    assert session.run_state.thinking_disabled_for_rest_of_run is False
    assert "nudge_count" not in json.loads(session.model_dump_json())


@pytest.mark.parametrize(
    "message",
    [{}, {"System": {"content": "a"}, "User": {"content": "b"}}, {"Developer": {"content": "a"}}],
)
def test_a_message_that_is_not_one_kind_is_refused(message: object) -> None:
    with pytest.raises(ValidationError):
        AgentSession.model_validate({"chat_messages": [message]})


def test_session_id_text_form_and_parse() -> None:
    assert str(SessionId(42)) == "42"
    assert str(SessionId(42, "ext")) == "42(ext)"
    for session_id in [SessionId(0), SessionId(42, ""), SessionId(5, "a(b)c"), SessionId(1, "é/")]:
        assert SessionId.parse(str(session_id)) == session_id


@pytest.mark.parametrize("text", ["", "x", "-1", "01", "4(", "4(a", "(a)", "4 ", str(2**64)])
def test_parse_refuses_what_is_not_an_id(text: str) -> None:
    with pytest.raises(InvalidSessionIdError):
        SessionId.parse(text)


def test_session_id_is_immutable_hashable_and_ordered() -> None:
    ids = [SessionId(2), SessionId(1, "b"), SessionId(1), SessionId(1, "")]
    assert sorted(ids) == [SessionId(1), SessionId(1, ""), SessionId(1, "b"), SessionId(2)]
    assert len({SessionId(1, "a"), SessionId(1, "a")}) == 1
    with pytest.raises(ValidationError):
        SessionId(1).id = 2  # type: ignore[misc]
    assert SessionId.model_validate_json('{"id": 42, "external_id": null}') == SessionId(42)


@pytest.mark.parametrize("value", [-1, 2**64, True, 1.5, "1"])
def test_session_id_number_is_an_unsigned_64_bit_integer(value: object) -> None:
    with pytest.raises(InvalidSessionIdError, match="2\\*\\*64-1"):
        SessionId(value)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):  # inside a session's JSON: the session is invalid
        SessionId.model_validate({"id": value})


# -- the value domain, generated -----------------------------------------------------------

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)  # valid Unicode
u64 = st.integers(0, 2**64 - 1)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
images = st.one_of(
    st.builds(UrlImage, url=text, detail=st.sampled_from([None, "Low", "High", "Auto"])),
    st.builds(Base64Image, data=text, media_type=st.none() | text),
)
messages = st.one_of(
    st.builds(SystemMessage, content=text),
    st.builds(UserMessage, content=text, images=st.lists(images, max_size=2)),
    st.builds(
        AssistantMessage,
        content=st.none() | text,
        reasoning_content=st.none() | text,
        thinking_signature=st.none() | text,
        tool_calls=st.none() | st.lists(st.builds(ToolCall, id=text, name=text, arguments=text)),
    ),
    st.builds(ToolMessage, tool_call_id=text, name=st.none() | text, content=text),
    st.builds(CustomMessage, role=text, data=json_values),
)
sessions = st.builds(
    AgentSession,
    id=st.none() | st.builds(SessionId, u64, st.none() | text),
    chat_messages=st.lists(messages, max_size=5),
    always_allowed_actions=st.sets(text, max_size=1),  # Rust's HashSet order is random
    total_tool_calls=u64,
    run_state=st.builds(
        RunState,
        turn_tool_calls=u64,
        reasoning_only_strikes=u64,
        truncation_strikes=u64,
        original_thinking_enabled=st.booleans(),
    ),
)


@given(sessions)
def test_a_session_inside_the_domain_round_trips_to_the_same_bytes(session: AgentSession) -> None:
    written = session.model_dump_json()
    again = AgentSession.model_validate_json(written)
    assert again == session.model_validate(json.loads(written))
    assert again.model_dump_json() == written


def out_of_domain(session: AgentSession, choice: int) -> tuple[AgentSession, str]:
    """`session`, changed in place after validation to hold one value agent-base cannot read."""
    broken = session.model_copy(deep=True)
    if choice == 0:
        broken.total_tool_calls = 2**64
        return broken, "total_tool_calls"
    if choice == 1:
        broken.run_state.nudge_count = -1
        return broken, "run_state.nudge_count"
    if choice == 2:
        broken.chat_messages.append(UserMessage(content="ok"))
        broken.chat_messages[-1].content = "\udc80"  # type: ignore[union-attr]
        return broken, f"chat_messages.{len(broken.chat_messages) - 1}.User.content"
    message = CustomMessage(role="r", data={"n": 1})
    broken.chat_messages.append(message)
    message.data["n"] = [2**64, object(), float("nan")][choice - 3]
    return broken, f"chat_messages.{len(broken.chat_messages) - 1}.data.n"


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(session=sessions.filter(lambda s: s.id is not None), choice=st.integers(0, 5))
async def test_a_session_outside_the_domain_is_refused_before_any_request(
    store: SessionStore, session: AgentSession, choice: int
) -> None:
    broken, path = out_of_domain(session, choice)
    with pytest.raises(InvalidSessionError) as caught:
        await store.save(broken)
    assert caught.value.path == path
    assert path in str(caught.value)
    assert await store.load(broken.id) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changes",
    [
        {"total_tool_calls": 2**64},
        {"total_tool_calls": -1},
        {"run_state": {"truncation_strikes": 2**64}},
        {
            "chat_messages": [
                {"User": {"content": "x", "images": [{"Url": {"url": "u", "detail": "low"}}]}}
            ]
        },
        {"chat_messages": [{"Custom": {"role": "r", "data": {"n": 2**64}}}]},
        {"chat_messages": [{"Custom": {"role": "r", "data": {"n": -(2**63) - 1}}}]},
        {"chat_messages": [{"Custom": {"role": "r", "data": [float("inf")]}}]},
    ],
    ids=lambda changes: str(changes)[:40],
)
def test_out_of_domain_values_are_refused_when_validated(changes: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AgentSession.model_validate({"id": {"id": 1}, **changes})
