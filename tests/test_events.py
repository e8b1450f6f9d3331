"""agent-base's RuntimeEvent and the session's event log: wire format, order, exactly once."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pydantic import TypeAdapter, ValidationError

from s3store import (
    AgentSession,
    LoggedEvent,
    RuntimeEvent,
    S3SessionStore,
    SessionId,
    SessionStore,
)
from s3store.events import (
    Checkpoint,
    TextDelta,
    ToolCallFinished,
    UnknownEvent,
    UserEvent,
)
from s3store.models import serde_json_floats
from tests.conftest import REGION
from tests.faultproxy import Fault, FaultProxy

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

EVENTS = TypeAdapter(RuntimeEvent)
EXAMPLES = (Path(__file__).parent / "golden" / "events.jsonl").read_text().splitlines()
"""Every example of /work/shared/agent-base/EVENTS-FACTS.md, as agent-base's own types wrote it."""
SID = SessionId(1, "user")


def written(event: RuntimeEvent) -> str:
    return serde_json_floats(EVENTS.dump_json(event)).decode()


@pytest.mark.parametrize("line", EXAMPLES, ids=lambda line: json.loads(line)["runtimeEventType"])
def test_every_example_loads_and_writes_back_the_same_bytes(line: str) -> None:
    event = EVENTS.validate_json(line)
    assert not isinstance(event, UnknownEvent)
    assert written(event) == line


def test_every_variant_is_among_the_examples() -> None:
    tags = Counter(json.loads(line)["runtimeEventType"] for line in EXAMPLES)
    assert len(tags) == 11
    user_events = {
        json.loads(line)["event"]["userEventType"]
        for line in EXAMPLES
        if "event" in json.loads(line)
    }
    assert user_events == {"progress", "structured", "toolPartialResult", "notice"}


def test_an_unknown_variant_is_kept_as_it_was() -> None:
    line = (
        '{"session_id":{"id":1,"external_id":null},"runtimeEventType":"toolCallProgress",'
        '"pct":0.5,"z":{"b":1,"a":2}}'
    )
    event = EVENTS.validate_json(line)
    assert isinstance(event, UnknownEvent)
    assert event.runtime_event_type == "toolCallProgress"
    assert written(event) == line


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (  # the tag anywhere; written first, fields in declaration order
            '{"text":"x","session_id":{"external_id":"e","id":1},"agent_id":"root","runtimeEventType":"thoughtDelta"}',
            '{"runtimeEventType":"thoughtDelta","session_id":{"id":1,"external_id":"e"},"text":"x","agent_id":"root"}',
        ),
        (  # omit-if-null keys given as null
            '{"runtimeEventType":"textDelta","session_id":{"id":1,"external_id":null},"text":"x","agent_id":null,"trace_id":null}',
            '{"runtimeEventType":"textDelta","session_id":{"id":1,"external_id":null},"text":"x"}',
        ),
        (  # before 0.2: no denied
            '{"runtimeEventType":"toolCallFinished","session_id":{"id":1,"external_id":null},"tool_name":"bash","summary":"ok"}',
            '{"runtimeEventType":"toolCallFinished","session_id":{"id":1,"external_id":null},"tool_name":"bash","summary":"ok","denied":false}',
        ),
        (  # ephemeral inside a checkpoint's messages: read, not written
            '{"runtimeEventType":"checkpoint","session_id":{"id":1,"external_id":null},"checkpoint":{"session_id":{"id":1,"external_id":null},"user_input":"u","step":{"BeforeLlm":{"messages":[{"System":{"content":"s","ephemeral":true}}],"tools":[]}},"turn_count":0}}',
            '{"runtimeEventType":"checkpoint","session_id":{"id":1,"external_id":null},"checkpoint":{"session_id":{"id":1,"external_id":null},"user_input":"u","step":{"BeforeLlm":{"messages":[{"System":{"content":"s"}}],"tools":[]}},"turn_count":0}}',
        ),
        (
            '{"runtimeEventType":"checkpoint","session_id":{"id":1,"external_id":null},"checkpoint":{"session_id":{"id":1,"external_id":null},"user_input":"u","step":{"AfterUserInput":null},"turn_count":0}}',
            '{"runtimeEventType":"checkpoint","session_id":{"id":1,"external_id":null},"checkpoint":{"session_id":{"id":1,"external_id":null},"user_input":"u","step":"AfterUserInput","turn_count":0}}',
        ),
    ],
    ids=["tag-last", "null-omitted", "no-denied", "ephemeral", "unit-step-as-map"],
)
def test_lenient_inputs_are_written_as_agent_base_writes_them(given: str, expected: str) -> None:
    assert written(EVENTS.validate_json(given)) == expected


@pytest.mark.parametrize(
    "line",
    [
        '{"runtimeEventType":"textDelta","session_id":{"id":1,"external_id":null}}',
        '{"runtimeEventType":"runFinished","session_id":{"id":-1,"external_id":null}}',
        '{"runtimeEventType":"planUpdated","session_id":{"id":1,"external_id":null},"objective":"o","explanation":null,"plan":[{"step":"s","status":"InProgress"}]}',
        '{"runtimeEventType":"checkpoint","session_id":{"id":1,"external_id":null},"checkpoint":{"session_id":{"id":1,"external_id":null},"user_input":"u","step":"AfterUserInput","turn_count":4294967296}}',
        '{"session_id":{"id":1,"external_id":null},"text":"x"}',
    ],
    ids=["missing-text", "negative-id", "bad-status", "turn-count-over-u32", "no-tag"],
)
def test_what_agent_base_refuses_is_refused(line: str) -> None:
    with pytest.raises(ValidationError):
        EVENTS.validate_json(line)


# -- the event log, on both stores --------------------------------------------------------


async def collect(store: SessionStore, **options: object) -> list[LoggedEvent]:
    return [logged async for logged in store.events(SID, **options)]  # type: ignore[arg-type]


async def test_events_come_back_in_append_order_and_tail_from_a_position(
    store: SessionStore,
) -> None:
    for number in range(5):
        await store.append_event(SID, TextDelta(session_id=SID, text=str(number)))
    logged = await collect(store)
    assert [event.event.text for event in logged] == ["0", "1", "2", "3", "4"]  # type: ignore[union-attr]
    assert [event.position for event in logged] == sorted(event.position for event in logged)
    tail = await collect(store, after=logged[1].position)
    assert tail == logged[2:]
    assert await collect(store, after=logged[1].position, limit=2) == logged[2:4]
    assert await collect(store, after=logged[-1].position) == []


async def test_the_listing_never_sees_events_and_delete_leaves_them(
    store: SessionStore,
) -> None:
    await store.save(AgentSession(id=SID))
    await store.append_event(SID, TextDelta(session_id=SID, text="x"))
    assert await store.list() == [SID]
    await store.delete(SID)
    assert await store.list() == []
    assert len(await collect(store)) == 1  # the audit trail stays


async def test_concurrent_appenders_give_one_order_every_reader_sees(
    moto_url: str, bucket: str
) -> None:
    # 4 stores (4 writers) append 250 events each to one session, all at once.
    writers = [S3SessionStore(bucket, endpoint_url=moto_url, region_name=REGION) for _ in range(4)]

    async def append_all(writer: int) -> None:
        for number in range(250):
            event = TextDelta(session_id=SID, text=f"{writer}:{number}", agent_id=f"w{writer}")
            await writers[writer].append_event(SID, event)

    try:
        await asyncio.gather(*(append_all(writer) for writer in range(4)))
        first = await collect(writers[0])
        second = await collect(writers[3])
    finally:
        for writer in writers:
            await writer.close()
    texts = [logged.event.text for logged in first]  # type: ignore[union-attr]
    assert len(texts) == 1000
    assert len(set(texts)) == 1000  # each exactly once
    assert second == first  # the same order for every reader
    for writer in range(4):
        own = [int(text.split(":")[1]) for text in texts if text.startswith(f"{writer}:")]
        assert own == list(range(250))  # each writer's events in its own order


async def test_a_retried_append_never_makes_two_events(moto_url: str, bucket: str) -> None:
    # The PUT lands and its answer is lost; the retry meets the event already there.
    proxy = FaultProxy(moto_url, {}, script=[Fault.RESET_AFTER], methods={"PUT"})
    async with proxy as url, S3SessionStore(bucket, endpoint_url=url, region_name=REGION) as store:
        await store.append_event(SID, TextDelta(session_id=SID, text="once"))
        logged = await collect(store)
    assert proxy.injected[Fault.RESET_AFTER] == 1
    assert proxy.by_method["PUT"] == 2
    assert [event.event.text for event in logged] == ["once"]  # type: ignore[union-attr]


async def test_every_kind_of_event_is_stored_as_agent_base_wrote_it(
    s3_store: S3SessionStore, s3: S3Client, bucket: str
) -> None:
    for line in EXAMPLES:
        await s3_store.append_event(SID, EVENTS.validate_json(line))
    logged = await collect(s3_store)
    listing = await s3.list_objects_v2(Bucket=bucket, Prefix="sessions/1(user)/events/")
    bodies = [
        await (await s3.get_object(Bucket=bucket, Key=item["Key"]))["Body"].read()
        for item in listing["Contents"]
    ]
    assert [body.decode() for body in bodies] == EXAMPLES
    assert [written(event.event) for event in logged] == EXAMPLES
    assert isinstance(logged[-1].event, UserEvent)
    assert any(isinstance(event.event, Checkpoint) for event in logged)
    assert any(isinstance(event.event, ToolCallFinished) for event in logged)


async def test_positions_are_consecutive_and_a_new_writer_continues_the_log(
    store: SessionStore,
) -> None:
    for number in range(3):
        await store.append_event(SID, TextDelta(session_id=SID, text=str(number)))
    # A store that has not appended yet (a new process) finds where the log ends.
    other = SessionStore(store.objects)
    await other.append_event(SID, TextDelta(session_id=SID, text="3"))
    logged = await collect(store)
    assert [event.event.text for event in logged] == ["0", "1", "2", "3"]  # type: ignore[union-attr]
    assert [int(event.position) for event in logged] == [1, 2, 3, 4]


async def test_a_follower_sees_every_event_once_however_puts_land(
    moto_url: str, bucket: str
) -> None:
    # 4 writers append 40 events each; every event PUT is held back 0-250 ms, so
    # PUTs land in another order than they were sent. A follower polls every 10 ms
    # from the last position it got: no event may appear before that position later.
    proxy = FaultProxy(moto_url, {Fault.LATENCY: 1.0}, latency=(0, 0.25), methods={"PUT"})
    async with proxy as url:
        writers = [S3SessionStore(bucket, endpoint_url=url, region_name=REGION) for _ in range(4)]
        follower = S3SessionStore(bucket, endpoint_url=moto_url, region_name=REGION)
        seen: list[str] = []
        done = asyncio.Event()

        async def append_all(writer: int) -> None:
            for number in range(40):
                event = TextDelta(session_id=SID, text=f"{writer}:{number}")
                await writers[writer].append_event(SID, event)

        async def follow() -> None:
            after = None
            while True:
                finished = done.is_set()
                async for logged in follower.events(SID, after=after):
                    seen.append(logged.event.text)  # type: ignore[union-attr]
                    after = logged.position
                if finished:
                    return
                await asyncio.sleep(0.01)

        try:
            following = asyncio.ensure_future(follow())
            await asyncio.gather(*(append_all(writer) for writer in range(4)))
            done.set()
            await following
        finally:
            for store in (*writers, follower):
                await store.close()
    assert proxy.injected[Fault.LATENCY] >= 160
    assert len(seen) == 160
    assert Counter(seen) == Counter(f"{w}:{n}" for w in range(4) for n in range(40))
