"""A Google ADK turn at 20 ms per request: `s3store.adk.S3SessionService` against ADK's
`DatabaseSessionService` on SQLite (`sqlite+aiosqlite`, the built-in backend ADK's
users pick), in sessions of 10 and 200 events.

A turn is what ADK's `Runner` asks of its session service in a turn with one tool
call, in its order: `get_session`, then `append_event` for the user's message, the
model's tool call, the tool's result and the model's answer. Each measured turn
runs on a session of its own, seeded to the size beforehand (not measured).

Figures: requests per turn (S3 requests, against the SQL statements the database
service executes: in-process calls on SQLite, a round trip each on a database
server); the median client CPU of a turn (process time, so aiosqlite's thread
counts too); and the median time of s3store's turn on the 20 ms endpoint against
its latency floor (one round trip for the three GETs `get_session` makes at once,
one per append).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

import aioboto3
from google.adk.events.event import Event
from google.adk.sessions.base_session_service import BaseSessionService
from google.adk.sessions.database_session_service import DatabaseSessionService
from google.genai import types
from sqlalchemy import event as sql_event

from benchmarks.common import LATENCY, REGION, Options, Result, Servers, bucket_name
from s3store.adk import S3SessionService

APP = "helpdesk"
USER = "ana"
EVENTS_PER_TURN = 4


class Counter:
    """Counts the calls of a hook it is registered as (botocore's or SQLAlchemy's)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.count += 1


def turn_events(turn: int) -> list[Event]:
    """One turn's events: the user's question, a tool call, its result, the answer."""
    call = f"call_{turn}"

    def event(author: str, role: str, part: types.Part) -> Event:
        content = types.Content(role=role, parts=[part])
        return Event(invocation_id=f"inv-{turn}", author=author, content=content)

    return [
        event("user", "user", types.Part(text=f"Question {turn}: what does the log say?")),
        event(
            APP,
            "model",
            types.Part(
                function_call=types.FunctionCall(
                    id=call, name="read_log", args={"job": "nightly", "n": 200}
                )
            ),
        ),
        event(
            APP,
            "user",
            types.Part(
                function_response=types.FunctionResponse(
                    id=call, name="read_log", response={"tail": "step 4 failed: " + "x" * 120}
                )
            ),
        ),
        event(APP, "model", types.Part(text="The nightly job fails at step 4: disk full. " * 2)),
    ]


async def seed(service: BaseSessionService, session_id: str, size: int) -> None:
    """A session of `size` events, appended as turns of `turn_events`."""
    session = await service.create_session(app_name=APP, user_id=USER, session_id=session_id)
    for number in range(size):
        events = turn_events(number // EVENTS_PER_TURN)
        await service.append_event(session, events[number % EVENTS_PER_TURN])


async def measure(
    service: BaseSessionService, session_ids: list[str], requests: Callable[[], int]
) -> tuple[float, float, float]:
    """Requests per turn, and the median CPU ms and wall ms of a turn, one on each session."""
    count, cpu, wall = 0, [], []
    for number, session_id in enumerate(session_ids):
        events = turn_events(10_000 + number)  # built outside the measurement
        before = requests()
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        session = await service.get_session(app_name=APP, user_id=USER, session_id=session_id)
        assert session is not None
        for event in events:
            await service.append_event(session, event)
        cpu.append(time.process_time() - cpu_start)
        wall.append(time.perf_counter() - wall_start)
        count += requests() - before
    return count / len(session_ids), median(cpu) * 1e3, median(wall) * 1e3


async def run(servers: Servers, options: Options) -> list[Result]:
    bucket = bucket_name()
    turns = options.pick(3, 10)
    aws = aioboto3.Session()
    sent = Counter()
    aws.events.register("before-send.s3", sent)
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as folder:
        database = DatabaseSessionService(f"sqlite+aiosqlite:///{Path(folder) / 'adk.db'}")
        statements = Counter()
        sql_event.listen(database.db_engine.sync_engine, "before_cursor_execute", statements)
        async with (
            S3SessionService(bucket, endpoint_url=servers.fake, region_name=REGION) as setup,
            S3SessionService(
                bucket, endpoint_url=servers.fake_slow, region_name=REGION, session=aws
            ) as s3,
            database,
        ):
            for size in (10, 200):
                ids = [f"s{size}-{number}" for number in range(turns + 1)]
                await asyncio.gather(*(seed(setup, session_id, size) for session_id in ids))
                for session_id in ids:
                    await seed(database, session_id, size)
                # The first turn of each warms connections, caches and lazy imports.
                await measure(s3, ids[:1], lambda: sent.count)
                await measure(database, ids[:1], lambda: statements.count)
                s3_requests, s3_cpu, s3_wall = await measure(s3, ids[1:], lambda: sent.count)
                db_statements, db_cpu, _ = await measure(
                    database, ids[1:], lambda: statements.count
                )
                floor = (1 + EVENTS_PER_TURN) * LATENCY * 1e3
                results += [
                    Result(
                        f"adk_turn.{size}.requests_vs_sqlite_statements",
                        s3_requests,
                        db_statements,
                        "requests/turn",
                    ),
                    Result(f"adk_turn.{size}.cpu_vs_sqlite", s3_cpu, db_cpu, "ms CPU/turn"),
                    Result(f"adk_turn.{size}.vs_floor", s3_wall, floor, "ms/turn"),
                ]
    return results
