"""Session models, wire-compatible with agent-base's Rust types.

A session written by the Rust runtime loads here and saves back to an equal JSON
value, and the other way round. Fields this version does not know are kept and
written back, so a newer writer's data survives a round trip through this reader.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SerializerFunctionWrapHandler,
    ValidationError,
    WrapSerializer,
    field_serializer,
    model_validator,
)

from s3store.errors import InvalidSessionIdError

__all__ = [
    "U64",
    "AgentSession",
    "AssistantMessage",
    "Base64Image",
    "ChatMessage",
    "CustomMessage",
    "Image",
    "ImageDetail",
    "JsonValue",
    "RunState",
    "SessionId",
    "SystemMessage",
    "ToolCall",
    "ToolMessage",
    "UrlImage",
    "UserMessage",
    "find_invalid",
    "serde_json_floats",
]

_U64_MAX = 2**64 - 1
_I64_MIN = -(2**63)


def _u64(value: int) -> int:
    # On the way out too: a value assigned after validation must not reach storage.
    if not 0 <= value <= _U64_MAX:
        raise ValueError(f"{value} is outside agent-base's unsigned 64-bit range")
    return value


U64 = Annotated[int, Field(ge=0, le=_U64_MAX), PlainSerializer(_u64, when_used="json")]
"""An unsigned 64-bit integer, as agent-base's `u64` and `usize` counters are."""


def _json_value(value: Any, where: tuple[str, ...] = ()) -> Any:
    """`value` as serde_json holds it exactly, object keys sorted as serde_json writes
    them; raises `ValueError` naming where (a dotted path within it) it is not."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        _check_text(value, where)
        return value
    if isinstance(value, int):
        if not _I64_MIN <= value <= _U64_MAX:
            raise _not_json(where, f"{value} is outside the 64-bit integers")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _not_json(where, f"{value} is not a finite number")
        return value
    if isinstance(value, (list, tuple)):
        return [_json_value(item, (*where, str(index))) for index, item in enumerate(value)]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise _not_json(where, f"the object key {key!r} is not text")
            _check_text(key, where)
        return {key: _json_value(value[key], (*where, key)) for key in sorted(value)}
    raise _not_json(where, f"a {type(value).__name__} is not a JSON value")


def _check_text(text: str, where: tuple[str, ...]) -> None:
    try:
        text.encode()
    except UnicodeEncodeError:
        raise _not_json(where, "text with a lone surrogate is not valid Unicode") from None


def _not_json(where: tuple[str, ...], problem: str) -> ValueError:
    return ValueError(f"at {'.'.join(where)}: {problem}" if where else problem)


JsonValue = Annotated[
    Any, AfterValidator(_json_value), PlainSerializer(_json_value, when_used="json")
]
"""Any JSON value within serde_json's exact domain: integers within signed or
unsigned 64-bit, finite floats, valid Unicode. Written with object keys sorted."""
_SESSION_ID_TEXT = re.compile(r"(0|[1-9][0-9]*)(?:\((.*)\))?", re.DOTALL)


class _Wire(BaseModel):
    """A wire type that keeps the fields it does not know."""

    model_config = ConfigDict(extra="allow")


class SessionId(_Wire):
    """Identifies a session: a numeric id and an optional external id.

    Immutable, hashable and ordered by (id, external_id), with no external id first.
    `str()` gives `42` or `42(ext)`; `SessionId.parse()` inverts it.
    """

    model_config = ConfigDict(frozen=True)

    id: Annotated[U64, Field(strict=True)]
    external_id: str | None = None

    def __init__(self, id: int, external_id: str | None = None, **extra: Any) -> None:
        try:
            super().__init__(id=id, external_id=external_id, **extra)
        except ValidationError as exc:
            raise InvalidSessionIdError(
                f"not a session id: id must be an integer from 0 to 2**64-1 and external_id "
                f"a string or None; got id={id!r}, external_id={external_id!r}: "
                f"{exc.errors()[0]['msg']}"
            ) from None

    def __str__(self) -> str:
        if self.external_id is None:
            return str(self.id)
        return f"{self.id}({self.external_id})"

    @classmethod
    def parse(cls, text: str) -> SessionId:
        """Parse `42` or `42(ext)`; raises `InvalidSessionIdError` on anything else."""
        match = _SESSION_ID_TEXT.fullmatch(text)
        if match is None:
            raise InvalidSessionIdError(
                f"{text!r} is not a session id: expected a number, optionally followed by "
                "an external id in parentheses, such as 42 or 42(user-7)"
            )
        return cls(int(match[1]), match[2])

    def _order(self) -> tuple[int, bool, str]:
        return (self.id, self.external_id is not None, self.external_id or "")

    # By id and external id alone: fields a newer writer added to the id are kept
    # on round trip, but the same session is the same session.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SessionId):
            return NotImplemented
        return (self.id, self.external_id) == (other.id, other.external_id)

    def __hash__(self) -> int:
        return hash((self.id, self.external_id))

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, SessionId):
            return NotImplemented
        return self._order() < other._order()

    def __le__(self, other: object) -> bool:
        if not isinstance(other, SessionId):
            return NotImplemented
        return self._order() <= other._order()

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, SessionId):
            return NotImplemented
        return self._order() > other._order()

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, SessionId):
            return NotImplemented
        return self._order() >= other._order()


class _Variant(_Wire):
    omit_when_empty: ClassVar[tuple[str, ...]] = ()


def _externally_tagged(
    variants: dict[str, type[_Variant]], what: str
) -> tuple[PlainValidator, WrapSerializer]:
    """Validator and serializer for a serde "externally tagged" enum: `{"Tag": {...}}`.

    Optional fields left at None (and lists left empty) are omitted on output, as
    serde's `skip_serializing_if` does for these types.
    """
    tags = {cls: tag for tag, cls in variants.items()}

    def validate(value: Any) -> Any:
        if isinstance(value, tuple(tags)):
            return value
        if not isinstance(value, dict) or len(value) != 1:
            raise ValueError(f"a {what} is an object with one key, one of {sorted(variants)}")
        ((tag, body),) = value.items()
        if tag not in variants:
            raise ValueError(f"unknown {what} kind {tag!r}; known: {sorted(variants)}")
        return variants[tag].model_validate(body)

    def serialize(value: _Variant, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        body = handler(value)
        for name in type(value).omit_when_empty:
            if body.get(name) in (None, []):
                del body[name]
        return {tags[type(value)]: body}

    return PlainValidator(validate), WrapSerializer(serialize)


ImageDetail = Literal["Low", "High", "Auto"]
"""How closely a model should look at an image: agent-base's `ImageDetail` enum."""


class UrlImage(_Variant):
    """An image given by URL. Wire form: `{"Url": {"url", "detail"?}}`."""

    omit_when_empty = ("detail",)

    url: str
    detail: ImageDetail | None = None


class Base64Image(_Variant):
    """An inline image. Wire form: `{"Base64": {"data", "media_type"?, "detail"?}}`."""

    omit_when_empty = ("media_type", "detail")

    data: str
    media_type: str | None = None
    detail: ImageDetail | None = None


_image_validator, _image_serializer = _externally_tagged(
    {"Url": UrlImage, "Base64": Base64Image}, "image"
)
Image = Annotated[UrlImage | Base64Image, _image_validator, _image_serializer]


class SystemMessage(_Variant):
    """Wire form: `{"System": {"content"}}`.

    `ephemeral`, which agent-base reads but never writes, is read and not written.
    """

    content: str
    ephemeral: bool = Field(default=False, exclude=True)


class UserMessage(_Variant):
    """Wire form: `{"User": {"content", "images"?}}`; images are omitted when empty.

    `ephemeral`, which agent-base reads but never writes, is read and not written.
    """

    omit_when_empty = ("images",)

    content: str
    images: list[Image] = Field(default_factory=list)
    ephemeral: bool = Field(default=False, exclude=True)


class ToolCall(_Wire):
    """A tool call requested by the assistant; `arguments` is the raw JSON text."""

    id: str
    name: str
    arguments: str


class AssistantMessage(_Variant):
    """Wire form: `{"Assistant": {"content", "reasoning_content", "thinking_signature"?,
    "tool_calls"}}`: nulls written, except `thinking_signature`, omitted when None."""

    omit_when_empty = ("thinking_signature",)

    content: str | None = None
    reasoning_content: str | None = None
    thinking_signature: str | None = None
    tool_calls: list[ToolCall] | None = None


class ToolMessage(_Variant):
    """A tool's result. Wire form: `{"Tool": {"tool_call_id", "name", "content"}}`;
    `name` is written as null when None, as agent-base writes it."""

    tool_call_id: str
    name: str | None = None
    content: str


class CustomMessage(_Variant):
    """An application-defined message. Wire form: `{"Custom": {"role", "data"}}`.

    `data` is any JSON value agent-base holds exactly (see `JsonValue`).
    """

    role: str
    data: JsonValue


_message_validator, _message_serializer = _externally_tagged(
    {
        "System": SystemMessage,
        "User": UserMessage,
        "Assistant": AssistantMessage,
        "Tool": ToolMessage,
        "Custom": CustomMessage,
    },
    "chat message",
)
ChatMessage = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolMessage | CustomMessage,
    _message_validator,
    _message_serializer,
]


class RunState(_Wire):
    """Counters of the current agent run (agent-base 0.9: eight fields)."""

    turn_tool_calls: U64 = 0
    run_has_tool_calls: bool = False
    reasoning_only_strikes: U64 = 0
    empty_response_strikes: U64 = 0
    nudge_count: U64 = 0
    thinking_disabled_for_rest_of_run: bool = False
    original_thinking_enabled: bool = False
    truncation_strikes: U64 = 0


# Older agent-base versions kept these at the top level of the session.
_FLAT_RUN_STATE_FIELDS = (
    "nudge_count",
    "turn_tool_calls",
    "reasoning_only_strikes",
    "empty_response_strikes",
)


class AgentSession(_Wire):
    """A snapshot of one agent session, as agent-base's `AgentSession` stores it."""

    id: SessionId | None = None
    chat_messages: list[ChatMessage] = Field(default_factory=list)
    always_allowed_actions: set[str] = Field(default_factory=set)
    total_tool_calls: U64 = 0
    run_state: RunState = Field(default_factory=RunState)

    @model_validator(mode="before")
    @classmethod
    def _read_flat_layout(cls, data: Any) -> Any:
        # As agent-base's shim: a missing or null `run_state` is made of the flat
        # counters that older versions kept at the top level.
        if not isinstance(data, dict) or data.get("run_state") is not None:
            return data
        flat = {name: data[name] for name in _FLAT_RUN_STATE_FIELDS if name in data}
        rest = {name: value for name, value in data.items() if name not in flat}
        return {**rest, "run_state": flat}

    @field_serializer("always_allowed_actions")
    def _sorted_actions(self, actions: set[str]) -> list[str]:
        # Sorted, so that the same session always serializes to the same bytes.
        return sorted(actions)


# A JSON string (skipped whole), or the `e+` of a number's exponent.
_STRING_OR_EXPONENT = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|e\+')


def serde_json_floats(body: bytes) -> bytes:
    """`body` with floats spelled as serde_json spells them: `1e300`, not pydantic's
    `1e+300` (every other float pydantic writes as serde_json does). A pass over the
    bytes only when `e+` occurs in them at all."""
    if b"e+" not in body:
        return body
    return _STRING_OR_EXPONENT.sub(lambda match: b"e" if match[0] == b"e+" else match[0], body)


def find_invalid(model: BaseModel) -> tuple[str, str]:
    """Where (a dotted field path) and why `model` cannot be written as JSON that
    agent-base reads back: for a model that validated, then was changed in place."""
    dumped = model.model_dump(mode="python")  # json-only checks do not run here
    try:
        type(model).model_validate(dumped)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        inner, _, problem = first["msg"].removeprefix("Value error, ").partition(": ")
        if inner.startswith("at ") and problem:  # a path within a JSON value
            return f"{where}.{inner[3:]}", problem
        return where, first["msg"]
    try:
        _json_value(dumped)  # what validation lets through: lone surrogates, extra fields
    except ValueError as exc:
        where, _, problem = str(exc).removeprefix("at ").partition(": ")
        return where, problem
    return "", "pydantic could not serialize it"
