"""One agent turn at 20 ms per request: load the session, append a user message, a tool
call and its result, save. Sessions of 10, 200 and 2,000 messages.

Against Strands' `S3SessionManager` (one object per message), driven through its
session repository as its session manager does in a turn: read the session and
the agent, list and read the messages, create the three new ones, update the
agent. And against the floor: an unsigned GET of the session object plus an
unsigned PUT of the new one with plain aiohttp, two round trips plus transfer.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aioboto3
import aiohttp
from botocore.config import Config
from strands.session.s3_session_manager import S3SessionManager
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

from benchmarks.common import (
    REGION,
    Options,
    Result,
    Servers,
    bucket_name,
    make_session,
    put_all,
    turn_messages,
)
from s3store import S3SessionStore, SessionId


def strands_messages(count: int) -> list[dict[str, object]]:
    """The same conversation as `make_session`, in Strands' (Bedrock) message format."""
    messages: list[dict[str, object]] = []
    turn = 0
    while len(messages) < count:
        call = f"call_{turn}"
        messages += [
            {"role": "user", "content": [{"text": f"Question {turn}: what does the log say?"}]},
            {
                "role": "assistant",
                "content": [
                    {"toolUse": {"toolUseId": call, "name": "read_log", "input": {"n": 200}}}
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "toolResult": {
                            "toolUseId": call,
                            "status": "success",
                            "content": [{"text": "step 4 failed: " + "x" * 120}],
                        }
                    }
                ],
            },
            {"role": "assistant", "content": [{"text": "The job fails at step 4. " * 4}]},
        ]
        turn += 1
    return messages[:count]


async def _turns(c: Any, servers: Servers, bucket: str, size: int, repeat: int) -> list[Result]:
    # Strands' layout, written directly (setup is not measured).
    sid = f"s{size}"
    base = f"strands/session_{sid}/"
    agent = SessionAgent(agent_id="default", state={}, conversation_manager_state={})
    items = [
        (f"{base}session.json", Session(sid, SessionType.AGENT).to_dict()),
        (f"{base}agents/agent_default/agent.json", agent.to_dict()),
    ] + [
        (
            f"{base}agents/agent_default/messages/message_{index}.json",
            SessionMessage.from_message(message, index).to_dict(),  # type: ignore[arg-type]
        )
        for index, message in enumerate(strands_messages(size))
    ]
    await put_all(c, bucket, [(key, json.dumps(data).encode()) for key, data in items])
    session = make_session(size, size)
    await c.put_object(
        Bucket=bucket, Key=f"sessions/{size}.json", Body=session.model_dump_json().encode()
    )

    async with S3SessionStore(bucket, endpoint_url=servers.moto_slow, region_name=REGION) as store:

        async def s3store_turn(turn: int) -> None:
            loaded = await store.load(SessionId(size))
            assert loaded is not None
            loaded.chat_messages += turn_messages(turn)
            await store.save(loaded)

        manager = await asyncio.to_thread(
            S3SessionManager,
            sid,
            bucket,
            prefix="strands",
            region_name=REGION,
            endpoint_url=servers.moto_slow,
        )
        next_index = size

        def strands_turn(turn: int) -> None:
            nonlocal next_index
            manager.read_session(sid)
            stored_agent = manager.read_agent(sid, "default")
            assert stored_agent is not None
            history = manager.list_messages(sid, "default")
            assert len(history) == next_index
            for message in strands_messages(3 + 4 * turn)[-3:]:
                manager.create_message(
                    sid,
                    "default",
                    SessionMessage.from_message(message, next_index),  # type: ignore[arg-type]
                )
                next_index += 1
            manager.update_agent(sid, stored_agent)

        url = f"{servers.moto_slow}/{bucket}/sessions/{size}.json"
        async with aiohttp.ClientSession() as http:

            async def floor_turn(turn: int) -> None:
                async with http.get(url) as response:
                    body = await response.read()
                async with http.put(url, data=body + b" " * 300) as response:
                    await response.read()

            await s3store_turn(0)  # warm connections on every side
            await floor_turn(0)
            times = {"s3store": 0.0, "strands": 0.0, "floor": 0.0}
            for turn in range(1, repeat + 1):
                start = time.perf_counter()
                await s3store_turn(turn)
                times["s3store"] += time.perf_counter() - start
                start = time.perf_counter()
                await asyncio.to_thread(strands_turn, turn)
                times["strands"] += time.perf_counter() - start
                start = time.perf_counter()
                await floor_turn(turn)
                times["floor"] += time.perf_counter() - start
    ms = {name: total / repeat * 1e3 for name, total in times.items()}
    return [
        Result(
            f"serverless_turn.{size}.vs_strands",
            ms["s3store"],
            ms["strands"],
            "ms/turn",
            0.5 if size == 200 else None,
        ),
        Result(f"serverless_turn.{size}.vs_floor", ms["s3store"], ms["floor"], "ms/turn", 1.15),
    ]


async def run(servers: Servers, options: Options) -> list[Result]:
    bucket = bucket_name()
    aws = aioboto3.Session()
    config = Config(max_pool_connections=64)
    results: list[Result] = []
    async with aws.client("s3", endpoint_url=servers.moto, region_name=REGION, config=config) as c:
        await c.create_bucket(Bucket=bucket)
        for size in (10, 200, 2000):
            repeat = options.pick(3 if size < 2000 else 1, 10 if size < 2000 else 3)
            results += await _turns(c, servers, bucket, size, repeat)
    return results
