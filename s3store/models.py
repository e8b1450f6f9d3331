"""Session models, wire-compatible with agent-base's Rust types.

A session written by the Rust runtime loads here and saves back to an equal JSON
value, and the other way round. Fields this version does not know are kept and
written back, so a newer writer's data survives a round trip through this reader.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from functools import cache, partial
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    PlainSerializer,
    PlainValidator,
    PydanticUserError,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WrapSerializer,
    field_serializer,
    model_validator,
)
from pydantic_core import PydanticSerializationError, core_schema, to_json

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
    "Text",
    "ToolCall",
    "ToolMessage",
    "UrlImage",
    "UserMessage",
    "find_invalid",
    "serde_json_floats",
    "wire_json",
]

_U64_MAX = 2**64 - 1
_I64_MIN = -(2**63)


def _u64(value: int) -> int:
    # On the way out too: a value assigned after validation must not reach storage.
    if type(value) is not int or not 0 <= value <= _U64_MAX:
        raise ValueError(f"{value!r} is not an integer in agent-base's unsigned 64-bit range")
    return value


U64 = Annotated[int, Field(ge=0, le=_U64_MAX), PlainSerializer(_u64, when_used="json")]
"""An unsigned 64-bit integer, as agent-base's `u64` and `usize` counters are."""


class _ValidUnicode:
    """Refuses text with a lone surrogate, which is not Unicode and which no Rust
    `String` holds. Only Python input is checked: pydantic's JSON parser already
    refuses one, so loading pays nothing."""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        text = handler(source)
        return core_schema.json_or_python_schema(
            json_schema=text,
            python_schema=core_schema.no_info_after_validator_function(_valid_unicode, text),
        )


def _valid_unicode(text: str) -> str:
    _check_text(text, ())
    return text


Text = Annotated[str, _ValidUnicode]
"""A string that is valid Unicode, as a Rust `String` is."""


class _NotJson(ValueError):
    """A value outside serde_json's exact domain; `where` is the path within it."""

    def __init__(self, where: tuple[str, ...], problem: str) -> None:
        super().__init__(f"at {'.'.join(where)}: {problem}" if where else problem)
        self.where = where
        self.problem = problem


class _FloatsSeen:
    """Serialization context: set when a JSON value written held a float."""

    floats = False


def _json_value(value: Any, where: tuple[str, ...] = (), seen: _FloatsSeen | None = None) -> Any:
    """`value` as serde_json holds it exactly, object keys sorted as serde_json writes
    them; raises `_NotJson` naming where (a path within it) it is not."""
    if value is None or isinstance(value, (bool, str)):
        return value  # text is checked where it can come from Python (validation)
    if isinstance(value, int):
        if not _I64_MIN <= value <= _U64_MAX:
            raise _NotJson(where, f"{value} is outside the 64-bit integers")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NotJson(where, f"{value} is not a finite number")
        if seen is not None:
            seen.floats = True
        return value
    if isinstance(value, (list, tuple)):
        return [_json_value(item, (*where, str(index)), seen) for index, item in enumerate(value)]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise _NotJson(where, f"the object key {key!r} is not text")
        return {key: _json_value(value[key], (*where, key), seen) for key in sorted(value)}
    raise _NotJson(where, f"a value of type {type(value).__name__!r} is not JSON")


def _check_text(text: str, where: tuple[str, ...]) -> None:
    try:
        text.encode()
    except UnicodeEncodeError:
        raise _NotJson(where, "text with a lone surrogate is not valid Unicode") from None


def _validate_json_value(value: Any, info: ValidationInfo) -> Any:
    if info.mode == "python":  # JSON input cannot hold a lone surrogate: its parser refuses one
        _check_texts(value, ())
    return _json_value(value)


def _check_texts(value: Any, where: tuple[str, ...]) -> None:
    if isinstance(value, str):
        _check_text(value, where)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_texts(item, (*where, str(index)))
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                _check_text(key, where)
            _check_texts(item, (*where, str(key)))


def _write_json_value(value: Any, info: SerializationInfo) -> Any:
    context = info.context
    return _json_value(value, (), context if isinstance(context, _FloatsSeen) else None)


JsonValue = Annotated[
    Any,
    AfterValidator(_validate_json_value),
    PlainSerializer(_write_json_value, when_used="json"),
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
    """A variant of a serde "externally tagged" enum, written as `{tag: {fields}}`."""

    tag: ClassVar[str]
    omit_when_empty: ClassVar[tuple[str, ...]] = ()


def _externally_tagged(
    variants: tuple[type[_Variant], ...], what: str
) -> tuple[PlainValidator, WrapSerializer]:
    """Validator and serializer for a serde "externally tagged" enum: `{"Tag": {...}}`.

    Optional fields left at None (and lists left empty) are omitted on output, as
    serde's `skip_serializing_if` does for these types.
    """
    by_tag = {variant.tag: variant for variant in variants}
    tags = {variant: variant.tag for variant in variants}

    def validate(value: Any) -> Any:
        if isinstance(value, variants):
            return value
        if not isinstance(value, dict) or len(value) != 1:
            raise ValueError(f"a {what} is an object with one key, one of {sorted(by_tag)}")
        ((tag, body),) = value.items()
        if tag not in by_tag:
            raise ValueError(f"unknown {what} kind {tag!r}; known: {sorted(by_tag)}")
        return by_tag[tag].model_validate(body)

    def serialize(value: _Variant, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        tag = tags[type(value)]  # a KeyError for anything else: not written
        body = handler(value)
        for name in value.omit_when_empty:
            if body.get(name) in (None, []):
                del body[name]
        return {tag: body}

    return PlainValidator(validate), WrapSerializer(serialize)


def _image_detail(detail: str) -> str:
    # On the way out too: a value assigned after validation must not reach storage.
    if detail not in ("Low", "High", "Auto"):
        raise ValueError(f"{detail!r} is not one of agent-base's ImageDetail: Low, High, Auto")
    return detail


ImageDetail = Annotated[
    Literal["Low", "High", "Auto"], PlainSerializer(_image_detail, when_used="json")
]
"""How closely a model should look at an image: agent-base's `ImageDetail` enum."""


class UrlImage(_Variant):
    """An image given by URL. Wire form: `{"Url": {"url", "detail"?}}`."""

    tag = "Url"
    omit_when_empty = ("detail",)

    url: Text
    detail: ImageDetail | None = None


class Base64Image(_Variant):
    """An inline image. Wire form: `{"Base64": {"data", "media_type"?, "detail"?}}`."""

    tag = "Base64"
    omit_when_empty = ("media_type", "detail")

    data: Text
    media_type: Text | None = None
    detail: ImageDetail | None = None


_image_validator, _image_serializer = _externally_tagged((UrlImage, Base64Image), "image")
Image = Annotated[UrlImage | Base64Image, _image_validator, _image_serializer]


class SystemMessage(_Variant):
    """Wire form: `{"System": {"content"}}`.

    `ephemeral`, which agent-base reads but never writes, is read and not written.
    """

    tag = "System"

    content: Text
    ephemeral: bool = Field(default=False, exclude=True)


class UserMessage(_Variant):
    """Wire form: `{"User": {"content", "images"?}}`; images are omitted when empty.

    `ephemeral`, which agent-base reads but never writes, is read and not written.
    """

    tag = "User"
    omit_when_empty = ("images",)

    content: Text
    images: list[Image] = Field(default_factory=lambda: [])
    ephemeral: bool = Field(default=False, exclude=True)


class ToolCall(_Wire):
    """A tool call requested by the assistant; `arguments` is the raw JSON text."""

    id: Text
    name: Text
    arguments: Text


class AssistantMessage(_Variant):
    """Wire form: `{"Assistant": {"content", "reasoning_content", "thinking_signature"?,
    "tool_calls"}}`: nulls written, except `thinking_signature`, omitted when None."""

    tag = "Assistant"
    omit_when_empty = ("thinking_signature",)

    content: Text | None = None
    reasoning_content: Text | None = None
    thinking_signature: Text | None = None
    tool_calls: list[ToolCall] | None = None


class ToolMessage(_Variant):
    """A tool's result. Wire form: `{"Tool": {"tool_call_id", "name", "content"}}`;
    `name` is written as null when None, as agent-base writes it."""

    tag = "Tool"

    tool_call_id: Text
    name: Text | None = None
    content: Text


class CustomMessage(_Variant):
    """An application-defined message. Wire form: `{"Custom": {"role", "data"}}`.

    `data` is any JSON value agent-base holds exactly (see `JsonValue`).
    """

    tag = "Custom"

    role: Text
    data: JsonValue


_message_validator, _message_serializer = _externally_tagged(
    (SystemMessage, UserMessage, AssistantMessage, ToolMessage, CustomMessage), "chat message"
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
    chat_messages: list[ChatMessage] = Field(default_factory=lambda: [])
    always_allowed_actions: set[Text] = Field(default_factory=lambda: set())
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


def wire_json(adapter: TypeAdapter[Any], value: Any) -> bytes:
    """`value`'s JSON as agent-base's serde_json writes it, floats spelled its way.

    Raises `PydanticSerializationError` for a value the models refuse to write,
    assigned or changed in place after validation (`find_invalid` says where).
    A pass over the bytes for floats only when a `JsonValue` written held one.
    """
    seen = _FloatsSeen()
    body = adapter.dump_json(value, warnings="error", context=seen)
    return serde_json_floats(body) if seen.floats else body


def find_invalid(model: BaseModel) -> tuple[str, str]:
    """Where (a dotted path, as the field is written on the wire, such as
    `chat_messages.3.Custom.data.n`) and why `model` cannot be written as JSON that
    agent-base reads back: for a model that validated, then was changed in place.
    For the failure path only: it validates every field again."""
    found = _first_invalid(model, ())
    if found is None:
        return "", "pydantic could not serialize it"
    where, problem = found
    return ".".join(where), problem


_Found = tuple[tuple[str, ...], str]


def _first_invalid(model: BaseModel, where: tuple[str, ...]) -> _Found | None:
    if isinstance(model, _Variant):
        where = (*where, model.tag)
    for name, field in type(model).model_fields.items():
        if field.exclude:
            continue
        value = getattr(model, name)
        found = _invalid_field(
            type(model), name, value, (*where, field.serialization_alias or name)
        )
        if found is not None:
            return found
    for name, value in (model.__pydantic_extra__ or {}).items():
        found = _unwritable(to_json, value, (*where, name))
        if found is not None:
            return found
    return None


def _invalid_field(
    model: type[BaseModel], name: str, value: Any, where: tuple[str, ...]
) -> _Found | None:
    """The first problem in one field's value: strict validation against the field's
    type, a value it would have had to convert, the models within it, and last
    whether the field's serializer can write it at all."""
    adapter = _field_adapter(model, name)
    if adapter is None:
        return _unwritable(to_json, value, where)
    try:
        validated = adapter.validate_python(value, strict=True)
    except ValidationError as exc:
        return _first_error(exc, where)
    found = _converted(value, validated, where)
    if found is not None:
        return found
    for inner, item in _models_within(value, where):
        found = _first_invalid(item, inner)
        if found is not None:
            return found
    return _unwritable(partial(adapter.dump_json, warnings="error"), value, where)


@cache
def _field_adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any] | None:
    annotation = model.model_fields[name].rebuild_annotation()
    # Some types need the model's config (arbitrary types), and model types refuse one.
    for config in (model.model_config, None):
        try:
            return TypeAdapter(annotation, config=config)
        except PydanticUserError:
            continue
    return None


def _unwritable(
    write: Callable[[Any], object], value: Any, where: tuple[str, ...]
) -> _Found | None:
    try:
        write(value)
    except PydanticSerializationError as exc:
        return where, str(exc)
    return None


def _first_error(exc: ValidationError, where: tuple[str, ...]) -> _Found:
    error = exc.errors(include_url=False, include_input=False)[0]
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, _NotJson):  # a problem within a JSON value: its own path
        return (*where, *map(str, error["loc"]), *cause.where), cause.problem
    return (*where, *map(str, error["loc"])), error["msg"]


def _converted(value: Any, validated: Any, where: tuple[str, ...]) -> _Found | None:
    """Where strict validation still had to convert `value` (a dict where a model
    belongs): the serializer refuses what is not already of its type."""
    if isinstance(value, (list, tuple)) and isinstance(validated, list):
        for index, (item, valid) in enumerate(zip(value, validated, strict=True)):
            found = _converted(item, valid, (*where, str(index)))
            if found is not None:
                return found
        return None
    if isinstance(validated, BaseModel) and type(value) is not type(validated):
        return where, f"a {type(value).__name__} where a {type(validated).__name__} belongs"
    return None


def _models_within(
    value: Any, where: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], BaseModel]]:
    if isinstance(value, BaseModel):
        yield where, value
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _models_within(item, (*where, str(index)))
