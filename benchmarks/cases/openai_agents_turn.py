"""One turn of the OpenAI Agents SDK's agent loop on `S3Session`, at 20 ms per request:
`Runner.run` with a scripted model that calls a tool once and then answers, on a
session of 10 and of 200 items (user, tool call, tool result, answer, repeated).

Against `SQLiteSession` on a local file, the backend the SDK ships and its users
pick today: client CPU per turn (this process's, every thread's, so SQLite's
worker threads count; the fake S3 endpoint runs in another process) and wall time
per turn. And the S3 requests a turn makes, counted on the client, against the
session calls the SDK makes in it (each at least one request).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

os.environ.setdefault("OPENAI_API_KEY", "unused")  # the model is scripted: nothing is sent

from agents import Agent, Runner, SQLiteSession, function_tool, set_tracing_disabled
from agents.memory import Session
from agents.testing import ScriptedModel, assistant_message, function_call

from benchmarks.common import REGION, Options, Result, Servers, bucket_name
from s3store import S3Objects
from s3store.openai_agents import S3Session


@function_tool
def read_log(job: str) -> str:
    """The tail of a job's log."""
    return f"{job}: 2026-11-24 03:00:01 step 4 failed: " + "x" * 120


def history(size: int) -> list[Any]:
    """`size` items of earlier turns: a question, a tool call, its result, an answer."""
    items: list[Any] = []
    turn = 0
    while len(items) < size:
        call = f"call_{turn}"
        items += [
            {"role": "user", "content": f"Question {turn}: what does the log say?"},
            {
                "type": "function_call",
                "call_id": call,
                "name": "read_log",
                "arguments": '{"job": "nightly"}',
                "id": f"fc_{turn}",
            },
            {"type": "function_call_output", "call_id": call, "output": "step 4 failed"},
            {
                "role": "assistant",
                "type": "message",
                "id": f"msg_{turn}",
                "status": "completed",
                "content": [
                    {
                        "type": "output_text",
                        "text": "The job fails at step 4. " * 4,
                        "annotations": [],
                    }
                ],
            },
        ]
        turn += 1
    return items[:size]


def turn_model(turn: int) -> ScriptedModel:
    return ScriptedModel(
        [
            [function_call("read_log", {"job": "nightly"}, call_id=f"new_{turn}")],
            [assistant_message("The nightly job fails at step 4.", item_id=f"answer_{turn}")],
        ]
    )


async def _timed_turns(
    session: Session, reset: Callable[[], Awaitable[None]], repeat: int
) -> tuple[float, float]:
    """Means over `repeat` turns, each from the same history: (CPU s, wall s) per turn."""
    cpu = wall = 0.0
    for turn in range(repeat + 1):
        await reset()
        agent = Agent(name="assistant", model=turn_model(turn), tools=[read_log])
        started_cpu, started = time.process_time(), time.perf_counter()
        await Runner.run(agent, "Why does the nightly job fail?", session=session)
        if turn:  # the first turn warms connections, imports and caches
            cpu += time.process_time() - started_cpu
            wall += time.perf_counter() - started
    return cpu / repeat, wall / repeat


async def _size(servers: Servers, bucket: str, folder: str, size: int, repeat: int) -> list[Result]:
    items = history(size)
    body = json.dumps({"items": items}, ensure_ascii=False, separators=(",", ":")).encode()
    requests: list[str] = []
    async with S3Objects(bucket, endpoint_url=servers.fake_slow, region_name=REGION) as objects:
        session = S3Session(f"bench-{size}", objects=objects)
        (await objects.client()).meta.events.register(
            "before-call.s3", lambda model, **_: requests.append(model.name)
        )

        async def reset_s3() -> None:
            await objects.write(session.name, body, base=None, conditional=False)
            requests.clear()

        s3_cpu, s3_wall = await _timed_turns(session, reset_s3, repeat)
        per_turn = len(requests)  # the last turn's

    sqlite = SQLiteSession(f"bench-{size}", os.path.join(folder, f"{size}.db"))

    async def reset_sqlite() -> None:
        await sqlite.clear_session()
        await sqlite.add_items(items)

    sqlite_cpu, sqlite_wall = await _timed_turns(sqlite, reset_sqlite, repeat)
    sqlite.close()
    # What Runner.run called on the session in that turn: get_items once, add_items for
    # the input and for each model response (the tool call with its output, the answer).
    session_calls = 4
    return [
        Result(
            f"openai_agents_turn.{size}.cpu_vs_sqlite",
            s3_cpu * 1e3,
            sqlite_cpu * 1e3,
            "ms CPU/turn",
        ),
        Result(
            f"openai_agents_turn.{size}.wall_vs_sqlite", s3_wall * 1e3, sqlite_wall * 1e3, "ms/turn"
        ),
        Result(
            f"openai_agents_turn.{size}.requests_vs_session_calls",
            per_turn,
            session_calls,
            "requests/turn",
        ),
    ]


async def run(servers: Servers, options: Options) -> list[Result]:
    set_tracing_disabled(True)
    bucket = bucket_name()  # the fake endpoint stores any bucket's objects without creating it
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as folder:
        for size in (10, 200):
            results += await _size(servers, bucket, folder, size, options.pick(3, 10))
    return results
