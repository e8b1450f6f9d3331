"""One turn of a Strands `Agent` at 20 ms per request, as a Lambda invocation makes it:
a new session manager, a new `Agent` restoring the session from it, one prompt and
the model's answer (a scripted model: no network). Sessions of 10 and 200 messages.

s3store's `S3SessionManager` (one object per session) against Strands' own
(an object per message), each as a careful handler uses it: Strands' with one
boto3 session for the process, s3store's with the client its managers share. Both
agents keep the whole history (`NullConversationManager`), so both load every
message; with Strands' default sliding window of 40, its manager would read the
last 40. The sessions are written in Strands' layout (setup, not measured); s3store
carries its copy over in the warm-up turn. Medians of alternating turns; requests per
turn are shown beside.

`floor` is what no manager making s3store's 3 requests can beat: Strands' agent with
no manager at all, plus a plain boto3 GET and two PUTs of s3store's object (the
user's message before the model, the answer after) on the same endpoint.
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import aioboto3
import boto3
from botocore.config import Config
from botocore.handlers import add_expect_header
from pydantic import BaseModel
from strands import Agent
from strands.agent.conversation_manager import NullConversationManager
from strands.hooks import BeforeModelCallEvent
from strands.models import Model
from strands.session.s3_session_manager import S3SessionManager as StrandsS3SessionManager
from strands.types.content import Messages
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

from benchmarks.cases.serverless_turn import strands_messages
from benchmarks.common import REGION, Options, Result, Servers, bucket_name, put_all
from s3store.strands import S3SessionManager

T = TypeVar("T", bound=BaseModel)


class ScriptedModel(Model):
    """Answers every call at once with one text block, as Bedrock streams it."""

    def update_config(self, **model_config: Any) -> None:
        pass

    def get_config(self) -> Any:
        return {}

    async def structured_output(
        self,
        output_model: type[T],
        prompt: Messages,
        system_prompt: str | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[dict[str, T | Any], None]:
        raise NotImplementedError("no structured output from a scripted model")
        yield {}  # an async generator, as Model declares it

    async def stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        yield {"messageStart": {"role": "assistant"}}
        yield {"contentBlockStart": {"start": {}}}
        yield {"contentBlockDelta": {"delta": {"text": "The job fails at step 4. " * 4}}}
        yield {"contentBlockStop": {}}
        yield {"messageStop": {"stopReason": "end_turn"}}
        yield {"metadata": {"usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}}}


def history(size: int) -> list[dict[str, object]]:
    """`size` messages (an even number) of serverless_turn's conversation, ending with an
    answer rather than a tool call left without its result (which Strands would complete)."""
    whole = size - size % 4
    question, _, _, answer = strands_messages(4)
    return strands_messages(whole) + [question, answer] * (size % 4 // 2)


def strands_layout(prefix: str, session_id: str, size: int) -> list[tuple[str, bytes]]:
    """A `size`-message session as Strands' S3SessionManager stores it."""
    base = f"{prefix}/session_{session_id}/"
    agent = SessionAgent(
        agent_id="default",
        state={},
        conversation_manager_state=NullConversationManager().get_state(),
    )
    items: list[tuple[str, dict[str, Any]]] = [
        (f"{base}session.json", Session(session_id, SessionType.AGENT).to_dict()),
        (f"{base}agents/agent_default/agent.json", agent.to_dict()),
    ]
    items += [
        (
            f"{base}agents/agent_default/messages/message_{index}.json",
            SessionMessage.from_message(message, index).to_dict(),  # type: ignore[arg-type]
        )
        for index, message in enumerate(history(size))
    ]
    return [(key, json.dumps(data).encode()) for key, data in items]


def turn(make: Callable[[], Any], expected: int) -> None:
    """A Lambda invocation: a new manager and agent restore the session, then one turn."""
    agent = Agent(
        model=ScriptedModel(),
        session_manager=make(),
        conversation_manager=NullConversationManager(),
        callback_handler=None,
    )
    assert len(agent.messages) == expected
    agent("What does the log say about the failing job?")


def floor_turn(raw: Callable[..., Any], bucket: str, key: str, size: int) -> None:
    """The least any manager making s3store's 3 requests can cost: a GET of the
    session's object, an agent given its history with no manager, a PUT before the
    model runs and one after (no conditions, nothing decoded or encoded). `raw(name,
    **kwargs)` makes one aiobotocore request on the benchmark's own loop."""
    body = raw("get_object", Bucket=bucket, Key=key)
    agent = Agent(
        model=ScriptedModel(),
        messages=history(size),  # type: ignore[arg-type]
        conversation_manager=NullConversationManager(),
        callback_handler=None,
    )

    def put(_: object = None) -> None:
        raw("put_object", Bucket=bucket, Key=key, Body=body)

    agent.hooks.add_callback(BeforeModelCallEvent, put)
    agent("What does the log say about the failing job?")
    put()


@asynccontextmanager
async def raw_requests(url: str) -> AsyncIterator[Callable[..., Any]]:
    """`raw(name, **kwargs)`, callable from other threads: one request of a plain aiobotocore
    client on this loop, a GET's body read. Without `Expect: 100-continue` (as s3store's
    client): it would add a round trip to every PUT."""
    loop = asyncio.get_running_loop()
    async with aioboto3.Session().client("s3", endpoint_url=url, region_name=REGION) as client:
        client.meta.events.unregister("before-call.s3", add_expect_header)

        async def request(name: str, **kwargs: Any) -> Any:
            answer = await getattr(client, name)(**kwargs)
            return await answer["Body"].read() if "Body" in answer else answer

        yield lambda name, **kwargs: asyncio.run_coroutine_threadsafe(
            request(name, **kwargs), loop
        ).result()


async def _turns(servers: Servers, bucket: str, size: int, repeat: int) -> list[Result]:
    session_id = f"turn{size}"
    sent = {"s3store": 0, "strands": 0}

    def counter(name: str) -> Callable[..., None]:
        def count(**_: Any) -> None:
            sent[name] += 1

        return count

    boto_session = boto3.Session(region_name=REGION)
    boto_session.events.register("before-send.s3", counter("strands"))
    aws = aioboto3.Session()
    aws.events.register("before-send.s3", counter("s3store"))
    makers = {
        "s3store": lambda: S3SessionManager(
            session_id,
            bucket,
            "s3store",
            endpoint_url=servers.moto_slow,
            region_name=REGION,
            session=aws,
        ),
        "strands": lambda: StrandsS3SessionManager(
            session_id,
            bucket,
            "strands",
            boto_session=boto_session,
            endpoint_url=servers.moto_slow,
        ),
    }
    for make in makers.values():  # warm-up: clients, connections, s3store's carry-over
        await asyncio.to_thread(turn, make, size)
    async with raw_requests(servers.moto_slow) as raw:
        return await _timed(makers, raw, bucket, session_id, size, repeat, sent)


async def _timed(
    makers: dict[str, Callable[[], Any]],
    raw: Callable[..., Any],
    bucket: str,
    session_id: str,
    size: int,
    repeat: int,
    sent: dict[str, int],
) -> list[Result]:
    listed = await asyncio.to_thread(raw, "list_objects_v2", Bucket=bucket, Prefix="s3store/")
    (key,) = (
        item["Key"] for item in listed["Contents"] if item["Key"].endswith(f"{session_id}.json")
    )
    await asyncio.to_thread(floor_turn, raw, bucket, key, size)  # warm-up
    messages = size + 2
    times: dict[str, list[float]] = {name: [] for name in (*makers, "floor")}
    sent.update(dict.fromkeys(sent, 0))
    for _ in range(repeat):  # in turns, so that all meet the same load
        for name, make in makers.items():
            gc.collect()  # each side's turn pays for its own garbage, not the other's
            start = time.perf_counter()
            await asyncio.to_thread(turn, make, messages)
            times[name].append(time.perf_counter() - start)
        gc.collect()
        start = time.perf_counter()
        await asyncio.to_thread(floor_turn, raw, bucket, key, size)
        times["floor"].append(time.perf_counter() - start)
        messages += 2
    ms = {name: statistics.median(values) * 1e3 for name, values in times.items()}
    requests = {name: count / repeat for name, count in sent.items()}
    return [
        Result(
            f"strands_turn.{size}.vs_strands",
            ms["s3store"],
            ms["strands"],
            "ms/turn",
            0.2 if size == 10 else 0.05,
        ),
        Result(f"strands_turn.{size}.floor.vs_strands", ms["floor"], ms["strands"], "ms/turn"),
        Result(f"strands_turn.{size}.vs_floor", ms["s3store"], ms["floor"], "ms/turn"),
        Result(
            f"strands_turn.{size}.requests",
            requests["s3store"],
            requests["strands"],
            "requests/turn",
        ),
    ]


async def run(servers: Servers, options: Options) -> list[Result]:
    bucket = bucket_name()
    aws = aioboto3.Session()
    config = Config(max_pool_connections=64)
    results: list[Result] = []
    async with aws.client("s3", endpoint_url=servers.moto, region_name=REGION, config=config) as c:
        await c.create_bucket(Bucket=bucket)
        for size in (10, 200):
            for prefix in ("strands", "s3store"):
                await put_all(c, bucket, strands_layout(prefix, f"turn{size}", size))
            results += await _turns(servers, bucket, size, options.pick(5, 15))
    return results
