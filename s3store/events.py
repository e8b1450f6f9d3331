"""agent-base's `RuntimeEvent`, as its serde derives write it (agent-base 0.9).

One JSON object per event, internally tagged: `runtimeEventType` first (the
variant in lowerCamelCase), then `session_id`, the variant's fields in their
declaration order, then `agent_id` and `trace_id` (omitted when None). An event
of a variant this version does not know is an `UnknownEvent`: kept as it was,
key order included, and written back unchanged.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    WrapSerializer,
    model_serializer,
)

from s3store.models import U64, ChatMessage, JsonValue, SessionId, serde_json_floats

__all__ = [
    "AfterToolCalls",
    "AfterUserInput",
    "ApprovalRequest",
    "AwaitingApproval",
    "BeforeLlm",
    "BeforeToolCalls",
    "Checkpoint",
    "CheckpointData",
    "CheckpointStep",
    "Notice",
    "PlanItem",
    "PlanUpdated",
    "Progress",
    "RunCancelled",
    "RunFinished",
    "RuntimeEvent",
    "Structured",
    "TextDelta",
    "ThoughtDelta",
    "ToolCallDraft",
    "ToolCallFinished",
    "ToolCallStarted",
    "ToolPartialResult",
    "ToolResultData",
    "UnknownEvent",
    "UserEvent",
    "UserEventPayload",
    "event_json",
    "parse_event",
]

U32 = Annotated[int, Field(ge=0, le=2**32 - 1)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


# -- shared types --------------------------------------------------------------------


class ApprovalRequest(_Wire):
    """What an agent asks a person to approve."""

    title: str
    message: str
    action_key: str | None = None
    risk_level: Literal["Safe", "Sensitive", "Destructive"]
    raw: JsonValue = None
    source: str | None = None


class PlanItem(_Wire):
    step: str
    status: Literal["pending", "in_progress", "completed"]


class ToolResultData(_Wire):
    tool_call_id: str
    tool_name: str
    summary: str


ToolCallTuple = tuple[str, str, str]
"""A tool call in a checkpoint: `[id, name, arguments as JSON text]`."""


class AfterUserInput(_Wire):
    """Written as the bare string `"AfterUserInput"`."""


class BeforeLlm(_Wire):
    messages: list[ChatMessage]
    tools: list[JsonValue]


class BeforeToolCalls(_Wire):
    tool_calls: list[ToolCallTuple]


class AfterToolCalls(_Wire):
    tool_calls: list[ToolCallTuple]
    results: list[ToolResultData]


_STEPS: dict[str, type[_Wire]] = {
    "AfterUserInput": AfterUserInput,
    "BeforeLlm": BeforeLlm,
    "BeforeToolCalls": BeforeToolCalls,
    "AfterToolCalls": AfterToolCalls,
}
_STEP_NAMES = {cls: name for name, cls in _STEPS.items()}


def _validate_step(value: Any) -> Any:
    if isinstance(value, tuple(_STEP_NAMES)):
        return value
    if value == "AfterUserInput" or value == {"AfterUserInput": None}:
        return AfterUserInput()
    if not isinstance(value, dict) or len(value) != 1:
        raise ValueError(f"a checkpoint step is one of {sorted(_STEPS)}, with one key")
    ((name, body),) = value.items()
    if name not in _STEPS or name == "AfterUserInput":
        raise ValueError(f"unknown checkpoint step {name!r}; known: {sorted(_STEPS)}")
    return _STEPS[name].model_validate(body)


def _serialize_step(value: _Wire, handler: SerializerFunctionWrapHandler) -> Any:
    name = _STEP_NAMES[type(value)]
    return name if isinstance(value, AfterUserInput) else {name: handler(value)}


CheckpointStep = Annotated[
    AfterUserInput | BeforeLlm | BeforeToolCalls | AfterToolCalls,
    PlainValidator(_validate_step),
    WrapSerializer(_serialize_step),
]


class CheckpointData(_Wire):
    session_id: SessionId
    user_input: str
    step: CheckpointStep
    turn_count: U32


# -- user events (internally tagged by `userEventType`) --------------------------------


class _UserEventBase(_Wire):
    tag: ClassVar[str]

    @model_serializer(mode="wrap")
    def _tag_first(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {"userEventType": self.tag, **handler(self)}


class Progress(_UserEventBase):
    tag = "progress"
    text: str


class Structured(_UserEventBase):
    tag = "structured"
    event_type: str
    data: JsonValue  # required; JSON null is a value


class ToolPartialResult(_UserEventBase):
    tag = "toolPartialResult"
    tool_call_id: str
    content: str
    is_partial: bool


class Notice(_UserEventBase):
    tag = "notice"
    kind: str  # Warning, Progress, Info: agent-base 0.9's spelling is not verified
    source: str
    text: str


_USER_EVENTS = {cls.tag: cls for cls in (Progress, Structured, ToolPartialResult, Notice)}


def _validate_user_event(value: Any) -> Any:
    if isinstance(value, _UserEventBase):
        return value
    if not isinstance(value, dict) or value.get("userEventType") not in _USER_EVENTS:
        raise ValueError(f"a user event has a userEventType, one of {sorted(_USER_EVENTS)}")
    body = {key: item for key, item in value.items() if key != "userEventType"}
    return _USER_EVENTS[value["userEventType"]].model_validate(body)


def _dump(value: BaseModel) -> Any:
    # Each variant writes itself; pydantic's union serializer would try them all.
    return value.model_dump(mode="json")


UserEventPayload = Annotated[
    Progress | Structured | ToolPartialResult | Notice,
    PlainValidator(_validate_user_event),
    PlainSerializer(_dump),
]


# -- the events ------------------------------------------------------------------------


class _Event(_Wire):
    """Fields every event has; the serializer puts them where agent-base writes them."""

    tag: ClassVar[str]
    tail: ClassVar[tuple[str, ...]] = ()  # written after agent_id and trace_id
    omitted_when_none: ClassVar[tuple[str, ...]] = ("agent_id", "trace_id")

    session_id: SessionId
    agent_id: str | None = None
    trace_id: str | None = None

    @property
    def runtime_event_type(self) -> str:
        return self.tag

    @model_serializer(mode="wrap")
    def _in_wire_order(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        last = ("agent_id", "trace_id", *self.tail)
        known = set(type(self).model_fields)
        ordered: dict[str, Any] = {"runtimeEventType": self.tag, "session_id": data["session_id"]}
        ordered.update(
            (key, value) for key, value in data.items() if key in known and key not in last
        )
        ordered.update((key, data[key]) for key in last)
        ordered.update((key, value) for key, value in data.items() if key not in known)
        for key in self.omitted_when_none:
            if ordered.get(key) is None:
                ordered.pop(key, None)
        return ordered


class TextDelta(_Event):
    tag = "textDelta"
    text: str


class ThoughtDelta(_Event):
    tag = "thoughtDelta"
    text: str


class ToolCallDraft(_Event):
    tag = "toolCallDraft"
    index: U64
    name: str
    args_len: U64
    count: U64


class ToolCallStarted(_Event):
    tag = "toolCallStarted"
    tool_name: str
    args_json: str


class ToolCallFinished(_Event):
    tag = "toolCallFinished"
    tail = ("denied", "details")
    omitted_when_none = ("agent_id", "trace_id", "details")
    tool_name: str
    summary: str
    denied: bool = False
    details: JsonValue = None  # JSON null reads back as no value, as in agent-base


class AwaitingApproval(_Event):
    tag = "awaitingApproval"
    request: ApprovalRequest


class Checkpoint(_Event):
    tag = "checkpoint"
    checkpoint: CheckpointData


class RunFinished(_Event):
    tag = "runFinished"


class RunCancelled(_Event):
    tag = "runCancelled"


class PlanUpdated(_Event):
    tag = "planUpdated"
    objective: str
    explanation: str | None = None
    plan: list[PlanItem]


class UserEvent(_Event):
    tag = "userEvent"
    event: UserEventPayload


class UnknownEvent(BaseModel):
    """An event of a variant this version does not know, kept exactly as it was read."""

    data: dict[str, Any]

    @property
    def runtime_event_type(self) -> str:
        return str(self.data["runtimeEventType"])

    @model_serializer(mode="plain")
    def _as_read(self) -> dict[str, Any]:
        return self.data


_EVENTS: dict[str, type[_Event]] = {
    cls.tag: cls
    for cls in (
        TextDelta,
        ThoughtDelta,
        ToolCallDraft,
        ToolCallStarted,
        ToolCallFinished,
        AwaitingApproval,
        Checkpoint,
        RunFinished,
        RunCancelled,
        PlanUpdated,
        UserEvent,
    )
}


def _validate_event(value: Any) -> Any:
    if isinstance(value, (_Event, UnknownEvent)):
        return value
    if not isinstance(value, dict) or not isinstance(value.get("runtimeEventType"), str):
        raise ValueError("an event is an object with a runtimeEventType")
    variant = _EVENTS.get(value["runtimeEventType"])
    if variant is None:
        return UnknownEvent(data=value)
    return variant.model_validate(
        {key: item for key, item in value.items() if key != "runtimeEventType"}
    )


RuntimeEvent = Annotated[
    TextDelta
    | ThoughtDelta
    | ToolCallDraft
    | ToolCallStarted
    | ToolCallFinished
    | AwaitingApproval
    | Checkpoint
    | RunFinished
    | RunCancelled
    | PlanUpdated
    | UserEvent
    | UnknownEvent,
    PlainValidator(_validate_event),
    PlainSerializer(_dump),
]
"""Any event agent-base 0.9 writes, or an `UnknownEvent`: construct a variant
(`TextDelta(...)`), read one with `parse_event`, write one with `event_json`."""

_ADAPTER: TypeAdapter[RuntimeEvent] = TypeAdapter(RuntimeEvent)


def parse_event(data: bytes | str) -> RuntimeEvent:
    """An event from its JSON; pydantic's `ValidationError` if it is not one."""
    return _ADAPTER.validate_json(data)


def event_json(event: RuntimeEvent) -> bytes:
    """The event's JSON, as agent-base's serde writes it, byte for byte."""
    return serde_json_floats(_ADAPTER.dump_json(event))
