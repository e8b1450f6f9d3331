"""`s3store.openai_agents.S3Session` held to the OpenAI Agents SDK's session contract
(its own session tests: order, limit, pop, clear, settings), on moto and in memory;
concurrent writers; the SDK's real agent loop, resumed in a new process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, cast

import pytest

pytest.importorskip(
    "agents",
    reason="the OpenAI Agents SDK is not installed: pip install 's3store[openai-agents]'",
)

from agents import Agent, Runner, function_tool, set_tracing_disabled
from agents.items import TResponseInputItem
from agents.memory import SessionABC, SessionSettings
from agents.testing import ScriptedModel, assistant_message, function_call

from s3store import (
    ConfigurationError,
    CorruptSessionError,
    InMemoryObjects,
    InvalidSessionError,
    InvalidSessionIdError,
    S3Objects,
)
from s3store.openai_agents import S3Session
from tests.conftest import REGION

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

set_tracing_disabled(True)  # no exporter, no network

Factory = Callable[..., S3Session]


def items_of(*texts: str) -> list[TResponseInputItem]:
    return [{"role": "user", "content": text} for text in texts]


def contents(items: list[TResponseInputItem]) -> list[Any]:
    return [content(item) for item in items]


def content(item: TResponseInputItem | None) -> Any:
    return None if item is None else cast(dict[str, Any], item).get("content")


@pytest.fixture(params=["memory", "s3"])
async def new_session(
    request: pytest.FixtureRequest, moto_url: str, bucket: str
) -> AsyncIterator[Factory]:
    """Makes sessions of one backend, each as a process of its own would: its own
    client on S3, a `peer()` of the same objects in memory."""
    shared = InMemoryObjects()
    made: list[S3Session] = []

    def make(session_id: str = "chat-1", **kwargs: Any) -> S3Session:
        if request.param == "memory":
            session = S3Session(session_id, objects=shared.peer(), **kwargs)
        else:
            session = S3Session(
                session_id, bucket, endpoint_url=moto_url, region_name=REGION, **kwargs
            )
        made.append(session)
        return session

    yield make
    for session in made:
        await session.close()


# -- the SDK's session contract ----------------------------------------------------


async def test_it_is_an_agents_session(new_session: Factory) -> None:
    session = new_session()
    assert isinstance(session, SessionABC)
    assert session.session_id == "chat-1"
    assert session.session_settings == SessionSettings()


async def test_items_come_back_in_order_across_batches(new_session: Factory) -> None:
    session = new_session()
    assert await session.get_items() == []
    await session.add_items(items_of("Hello", "Hi there!"))
    await session.add_items(items_of("How are you?"))
    assert contents(await session.get_items()) == ["Hello", "Hi there!", "How are you?"]
    assert contents(await new_session().get_items()) == ["Hello", "Hi there!", "How are you?"]


async def test_items_round_trip_unchanged_as_json(new_session: Factory) -> None:
    items = cast(
        list[TResponseInputItem],
        [
            {"role": "user", "content": "héllo 🌍 \u2028 'quotes' \"double\" \\ ; DROP TABLE x;--"},
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "weather",
                "arguments": '{"city": "Zürich"}',
                "id": "fc_1",
            },
            {"type": "function_call_output", "call_id": "c1", "output": "12.5°C"},
            {
                "role": "assistant",
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "content": [{"type": "output_text", "text": "ok", "annotations": []}],
                "extra": {"n": 1.5, "big": 2**63, "none": None, "flag": False, "empty": []},
            },
        ],
    )
    session = new_session()
    await session.add_items(items)
    assert await new_session().get_items() == json.loads(json.dumps(items))


async def test_limit_returns_the_latest_n_in_chronological_order(new_session: Factory) -> None:
    session = new_session()
    await session.add_items(items_of(*(f"Message {n}" for n in range(6))))
    assert contents(await session.get_items(limit=2)) == ["Message 4", "Message 5"]
    assert contents(await session.get_items(limit=4)) == [f"Message {n}" for n in range(2, 6)]
    assert len(await session.get_items(limit=10)) == 6
    assert await session.get_items(limit=0) == []


async def test_the_settings_limit_is_the_default_and_an_explicit_limit_wins(
    new_session: Factory,
) -> None:
    session = new_session(session_settings=SessionSettings(limit=3))
    await session.add_items(items_of(*(f"Message {n}" for n in range(10))))
    assert contents(await session.get_items()) == ["Message 7", "Message 8", "Message 9"]
    assert contents(await session.get_items(limit=2)) == ["Message 8", "Message 9"]
    assert new_session(session_settings={"limit": 0}).session_settings == SessionSettings(limit=0)
    with pytest.raises(TypeError, match="limitt"):
        new_session(session_settings={"limitt": 1})


async def test_pop_item_returns_and_removes_the_latest(new_session: Factory) -> None:
    session = new_session()
    assert await session.pop_item() is None
    await session.add_items(items_of("Hello", "Hi there!", "How are you?"))
    assert content(await session.pop_item()) == "How are you?"
    assert contents(await new_session().get_items()) == ["Hello", "Hi there!"]
    assert content(await session.pop_item()) == "Hi there!"
    assert content(await session.pop_item()) == "Hello"
    assert await session.pop_item() is None
    assert await session.get_items() == []


async def test_clear_session_deletes_its_object_and_only_its_own(new_session: Factory) -> None:
    session, other = new_session("a"), new_session("b")
    await session.add_items(items_of("one", "two"))
    await other.add_items(items_of("kept"))
    await session.clear_session()
    assert await session.objects.head(session.name) is None
    assert await session.get_items() == []
    await session.clear_session()  # clearing an empty session is fine
    await session.add_items(items_of("fresh"))
    assert contents(await session.get_items()) == ["fresh"]
    assert contents(await other.get_items()) == ["kept"]


async def test_no_items_and_nothing_to_pop_write_nothing(new_session: Factory) -> None:
    session = new_session()
    await session.add_items([])
    assert await session.pop_item() is None
    assert await session.objects.head(session.name) is None


async def test_any_session_id_is_an_object_of_its_own_in_the_folder(new_session: Factory) -> None:
    ids = ["a/b", "a%2Fb", "..", "../../etc", "ünï cødé", "a" * 300]
    sessions = [new_session(session_id) for session_id in ids]
    for number, session in enumerate(sessions):
        await session.add_items(items_of(f"for {number}"))
    assert len({session.name for session in sessions}) == len(ids)
    for number, session in enumerate(sessions):
        assert session.name.startswith("openai-agents/")
        assert "/" not in session.name.removeprefix("openai-agents/")
        assert contents(await session.get_items()) == [f"for {number}"]


# -- refused, with a typed error ---------------------------------------------------


async def test_a_corrupt_object_is_a_typed_error_and_left_in_place(
    moto_url: str, bucket: str, s3: S3Client
) -> None:
    async with S3Session("chat-1", bucket, endpoint_url=moto_url, region_name=REGION) as session:
        for body in (
            b"not json {{{",
            b"\xff\xfe\x00garbage",
            b'[{"role": "user"}]',
            b'{"items": {"role": "user"}}',
            b'{"items": [{"role": "user"}, "a string"]}',
            b'{"items": [{"n": NaN}]}',
        ):
            await s3.put_object(Bucket=bucket, Key=session.key, Body=body)
            for call in (
                session.get_items,
                lambda: session.add_items(items_of("x")),
                session.pop_item,
            ):
                with pytest.raises(CorruptSessionError) as raised:
                    await call()
                assert raised.value.raw == body
                assert raised.value.key == session.key == "sessions/openai-agents/chat-1.json"
                assert raised.value.bucket == bucket
            stored = await s3.get_object(Bucket=bucket, Key=session.key)
            assert await stored["Body"].read() == body


async def test_items_json_cannot_hold_are_refused_before_any_write(new_session: Factory) -> None:
    session = new_session()
    await session.add_items(items_of("kept"))
    for bad in (
        [{"role": "user", "content": object()}],
        [{"role": "user", "content": float("nan")}],
        ["not an object"],
    ):
        with pytest.raises(InvalidSessionError):
            await session.add_items(cast(list[TResponseInputItem], bad))
    assert contents(await session.get_items()) == ["kept"]


def test_the_configuration_is_checked(bucket: str) -> None:
    with pytest.raises(ConfigurationError, match="one of the two"):
        S3Session("chat-1")
    with pytest.raises(ConfigurationError, match="one of the two"):
        S3Session("chat-1", bucket, objects=InMemoryObjects())
    with pytest.raises(ConfigurationError, match="prefix"):
        S3Session("chat-1", objects=InMemoryObjects(), prefix="other/")
    with pytest.raises(ConfigurationError, match="not a valid S3 bucket name"):
        S3Session("chat-1", "Not_A_Bucket")
    with pytest.raises(ConfigurationError, match="over S3's limit"):
        S3Session("x" * 1100, objects=InMemoryObjects())
    for bad_id in ("", "\ud800", None):
        with pytest.raises(InvalidSessionIdError):
            S3Session(cast(str, bad_id), objects=InMemoryObjects())


async def test_from_env_uses_the_environments_bucket_and_prefix(
    moto_url: str, bucket: str, s3: S3Client
) -> None:
    environ = {"S3STORE_BUCKET": bucket, "S3STORE_PREFIX": "agents"}
    async with S3Session.from_env(
        "chat-1", environ=environ, endpoint_url=moto_url, region_name=REGION
    ) as session:
        await session.add_items(items_of("hi"))
    listed = await s3.list_objects_v2(Bucket=bucket)
    assert [item["Key"] for item in listed["Contents"]] == ["agents/openai-agents/chat-1.json"]
    with pytest.raises(ConfigurationError, match="S3STORE_BUCKET"):
        S3Session.from_env("chat-1", environ={})


# -- concurrency and retries ---------------------------------------------------------


async def test_two_invocations_adding_at_once_both_land_each_once(new_session: Factory) -> None:
    first, second = new_session(), new_session()  # two Lambda invocations, two clients

    async def add_twenty(session: S3Session, who: str) -> None:
        await asyncio.gather(*(session.add_items(items_of(f"{who}-{n}")) for n in range(20)))

    await asyncio.gather(add_twenty(first, "a"), add_twenty(second, "b"))
    stored = contents(await new_session().get_items())
    assert sorted(stored) == sorted(f"{who}-{n}" for who in "ab" for n in range(20))


async def test_concurrent_pops_take_each_item_once(new_session: Factory) -> None:
    await new_session().add_items(items_of(*(str(n) for n in range(10))))
    first, second = new_session(), new_session()
    popped = await asyncio.gather(*(s.pop_item() for s in (first, second) for _ in range(6)))
    taken = [content(item) for item in popped if item is not None]
    assert sorted(taken, key=int) == [str(n) for n in range(10)]
    assert popped.count(None) == 2
    assert await first.get_items() == []


async def test_a_retried_invocation_adds_its_items_once(new_session: Factory) -> None:
    async def invocation(request_id: str) -> None:
        session = new_session(idempotency_key=request_id)
        await session.add_items(items_of(f"question {request_id}"))
        await session.add_items(items_of(f"answer {request_id}"))

    await invocation("req-1")
    await invocation("req-1")  # Lambda retries the invocation: nothing is stored twice
    await asyncio.gather(invocation("req-2"), invocation("req-2"))  # a duplicate, at once
    await invocation("req-3")
    assert contents(await new_session().get_items()) == [
        "question req-1",
        "answer req-1",
        "question req-2",
        "answer req-2",
        "question req-3",
        "answer req-3",
    ]


# -- the SDK's agent loop -------------------------------------------------------------


@function_tool
def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def scripted_turns() -> ScriptedModel:
    """Three turns: a plain answer, a tool call and its answer, a plain answer."""
    return ScriptedModel(
        [
            [assistant_message("Hello!", item_id="msg_1")],
            [function_call("weather", {"city": "Paris"}, call_id="call_1")],
            [assistant_message("It is sunny in Paris.", item_id="msg_2")],
            [assistant_message("You asked about Paris.", item_id="msg_3")],
        ]
    )


async def run_three_turns(session: S3Session) -> ScriptedModel:
    model = scripted_turns()
    agent = Agent(name="assistant", model=model, tools=[weather])
    for question in ("Hi", "Weather in Paris?", "What did I ask?"):
        await Runner.run(agent, question, session=session)
    model.assert_complete()
    return model


EXPECTED_HISTORY = [
    ("user", "Hi"),
    ("message", "Hello!"),
    ("user", "Weather in Paris?"),
    ("function_call", "weather"),
    ("function_call_output", "sunny in Paris"),
    ("message", "It is sunny in Paris."),
    ("user", "What did I ask?"),
    ("message", "You asked about Paris."),
]


def summary(items: list[Any]) -> list[tuple[str, str]]:
    """Each item as (its type or role, its text, tool name or output)."""

    def text(item: dict[str, Any]) -> str:
        if item.get("type") == "function_call":
            return str(item["name"])
        if item.get("type") == "function_call_output":
            return str(item["output"])
        content = item["content"]
        return content if isinstance(content, str) else content[0]["text"]

    return [(item.get("type", item.get("role")), text(item)) for item in items]


async def test_runner_persists_three_turns_and_a_new_process_resumes(
    moto_url: str, bucket: str, s3: S3Client
) -> None:
    async with S3Session("user-42", bucket, endpoint_url=moto_url, region_name=REGION) as session:
        model = await run_three_turns(session)
    # Each turn's model call saw the whole history before it.
    assert len(model.calls[-1].input) == len(EXPECTED_HISTORY) - 1
    stored = await s3.get_object(Bucket=bucket, Key="sessions/openai-agents/user-42.json")
    assert summary(json.loads(await stored["Body"].read())["items"]) == EXPECTED_HISTORY

    # A new process (a later Lambda invocation): a fresh session, client and model.
    resume = textwrap.dedent(
        f"""
        import asyncio, json
        from agents import Agent, Runner, set_tracing_disabled
        from agents.testing import ScriptedModel, assistant_message
        from s3store.openai_agents import S3Session

        set_tracing_disabled(True)

        async def main():
            model = ScriptedModel([[assistant_message("Still Paris.", item_id="msg_4")]])
            async with S3Session.from_env("user-42", endpoint_url={moto_url!r}) as session:
                result = await Runner.run(Agent(name="assistant", model=model), "And now?",
                                          session=session)
                print(json.dumps({{"seen": model.last_call.input,
                                  "output": result.final_output,
                                  "stored": await session.get_items()}}))

        asyncio.run(main())
        """
    )
    environment = {**os.environ, "S3STORE_BUCKET": bucket, "OPENAI_API_KEY": "unused"}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", resume],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["output"] == "Still Paris."
    assert summary(answer["seen"]) == [*EXPECTED_HISTORY, ("user", "And now?")]
    assert summary(answer["stored"]) == [
        *EXPECTED_HISTORY,
        ("user", "And now?"),
        ("message", "Still Paris."),
    ]


async def test_the_in_memory_twin_runs_the_agent_loop() -> None:
    session = S3Session("user-42", objects=InMemoryObjects())
    await run_three_turns(session)
    assert summary(await session.get_items()) == EXPECTED_HISTORY


async def test_a_turn_costs_five_requests_and_a_tool_round_two_more(
    moto_url: str, bucket: str
) -> None:
    objects = S3Objects(bucket, endpoint_url=moto_url, region_name=REGION)
    requests: list[str] = []

    def count(model: Any, **_: Any) -> None:
        requests.append(model.name)

    (await objects.client()).meta.events.register("before-call.s3", count)
    session = S3Session("user-42", objects=objects)
    model = scripted_turns()
    agent = Agent(name="assistant", model=model, tools=[weather])
    per_turn = []
    for question in ("Hi", "Weather in Paris?", "What did I ask?"):
        requests.clear()
        await Runner.run(agent, question, session=session)
        per_turn.append(list(requests))
    await objects.close()
    # One GET for the history; a GET and a conditional PUT per add_items (the user's
    # input, then each model response with its tool outputs).
    plain = ["GetObject", "GetObject", "PutObject", "GetObject", "PutObject"]
    assert per_turn == [plain, [*plain, "GetObject", "PutObject"], plain]
