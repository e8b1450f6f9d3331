"""The models' wire format: agent-base's JSON, byte for byte."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from s3store import (
    AgentSession,
    AssistantMessage,
    Base64Image,
    CustomMessage,
    InvalidSessionIdError,
    SessionId,
    SystemMessage,
    ToolCall,
    ToolMessage,
    UrlImage,
    UserMessage,
)

# As the Rust runtime writes it (serde_json, compact).
GOLDEN = (
    '{"id":{"id":7,"external_id":null},"chat_messages":[{"System":{"content":"sys"}},'
    '{"User":{"content":"hi"}},{"Assistant":{"content":null,"reasoning_content":null,'
    '"tool_calls":[{"id":"c1","name":"read_file","arguments":"{}"}]}},'
    '{"Tool":{"tool_call_id":"c1","content":"..."}}],"always_allowed_actions":["read_file"],'
    '"total_tool_calls":1,"run_state":{"turn_tool_calls":0,"run_has_tool_calls":false,'
    '"reasoning_only_strikes":0,"empty_response_strikes":0,"nudge_count":0,'
    '"thinking_disabled_for_rest_of_run":false}}'
)


def test_golden_json_round_trips_to_an_equal_value() -> None:
    session = AgentSession.model_validate_json(GOLDEN)
    assert session.id == SessionId(7)
    assert session.chat_messages == [
        SystemMessage(content="sys"),
        UserMessage(content="hi"),
        AssistantMessage(tool_calls=[ToolCall(id="c1", name="read_file", arguments="{}")]),
        ToolMessage(tool_call_id="c1", content="..."),
    ]
    assert json.loads(session.model_dump_json()) == json.loads(GOLDEN)
    assert session.model_dump_json() == GOLDEN  # even the same bytes


def test_every_message_kind_has_its_wire_form() -> None:
    session = AgentSession(
        id=SessionId(1, "x"),
        chat_messages=[
            UserMessage(
                content="look",
                images=[
                    UrlImage(url="https://example.com/a.png", detail="low"),
                    Base64Image(data="aGk=", media_type="image/png"),
                ],
            ),
            AssistantMessage(content="ok", reasoning_content="because"),
            CustomMessage(role="memory", data={"k": [1, 2]}),
        ],
    )
    wire = json.loads(session.model_dump_json())
    assert wire["id"] == {"id": 1, "external_id": "x"}
    assert wire["chat_messages"] == [
        {
            "User": {
                "content": "look",
                "images": [
                    {"Url": {"url": "https://example.com/a.png", "detail": "low"}},
                    {"Base64": {"data": "aGk=", "media_type": "image/png"}},
                ],
            }
        },
        {"Assistant": {"content": "ok", "reasoning_content": "because", "tool_calls": None}},
        {"Custom": {"role": "memory", "data": {"k": [1, 2]}}},
    ]
    assert AgentSession.model_validate(wire) == session


def test_the_same_session_always_gives_the_same_bytes() -> None:
    first = AgentSession(id=SessionId(1), always_allowed_actions={"b", "c", "a"})
    second = AgentSession(id=SessionId(1), always_allowed_actions={"c", "a", "b"})
    assert first.model_dump_json() == second.model_dump_json()
    assert json.loads(first.model_dump_json())["always_allowed_actions"] == ["a", "b", "c"]


def test_unknown_fields_are_kept_everywhere() -> None:
    wire = json.loads(GOLDEN)
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
