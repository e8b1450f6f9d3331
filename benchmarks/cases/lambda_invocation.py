"""The README's Lambda handler (terraform/examples/lambda/handler.py), invoked as Lambda
invokes it, one invocation after another in one process, at 20 ms per request.

- warm: `handler(event, context)` as written, `@lambda_handler` and all;
- floor: the same turn (`store.update()` appending a message) on a store whose
  client was opened once, on a loop kept open: what a warm turn cannot beat;
- asyncio_run: the pattern the README used to show, `asyncio.run()` per
  invocation, so a new event loop, client and connections each time (shown);
- cold: a fresh Python process's first invocation of the handler, against a fresh
  process that does the same GET and PUT with a raw aioboto3 client, each timed
  from its start to its answer.

Wall time and CPU time (this process's) per invocation, medians.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import aioboto3

from benchmarks.common import REGION, Options, Result, Servers, bucket_name, cold_medians
from s3store import AgentSession, S3SessionStore, SessionId, UserMessage, serverless

HANDLER = Path(__file__).parents[2] / "terraform" / "examples" / "lambda" / "handler.py"

COLD_HANDLER = """
import importlib.util, sys, types
spec = importlib.util.spec_from_file_location("handler", sys.argv[1])
handler = importlib.util.module_from_spec(spec)
spec.loader.exec_module(handler)
context = types.SimpleNamespace(aws_request_id="cold")
handler.handler({"session": int(sys.argv[2]), "text": "hello"}, context)
print("answered", flush=True)
"""

COLD_RAW = """
import asyncio, json, sys
import aioboto3

async def main():
    async with aioboto3.Session().client("s3", endpoint_url=sys.argv[1]) as c:
        key = f"raw/{sys.argv[3]}.json"
        try:
            await (await c.get_object(Bucket=sys.argv[2], Key=key))["Body"].read()
        except c.exceptions.NoSuchKey:
            pass
        body = json.dumps({"id": {"id": int(sys.argv[3]), "external_id": None},
                           "chat_messages": [{"User": {"content": "hello"}}]}).encode()
        await c.put_object(Bucket=sys.argv[2], Key=key, Body=body, ContentType="application/json")

asyncio.run(main())
print("answered", flush=True)
"""


def load_handler() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lambda_example_handler", HANDLER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed(invoke: Any, number: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    invoke(number)
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(invokes: dict[str, Any], repeat: int) -> dict[str, tuple[float, float]]:
    """Median wall and CPU milliseconds per call of each `invoke(n)`, after a warm-up.

    The patterns take turns, call by call, so that each sees the same machine state.
    """
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in invokes}
    for invoke in invokes.values():
        invoke(0)
    for number in range(1, repeat + 1):
        for name, invoke in invokes.items():
            times[name].append(timed(invoke, number))
    return {
        name: (
            statistics.median(wall for wall, _ in pairs) * 1e3,
            statistics.median(cpu for _, cpu in pairs) * 1e3,
        )
        for name, pairs in times.items()
    }


def warm_figures(handler: ModuleType, repeat: int) -> dict[str, tuple[float, float]]:
    """Runs in a thread of its own: the handler runs its own event loop, as on Lambda."""

    def event(session: int, text: str) -> dict[str, Any]:
        return {"session": session, "text": text}

    def warm(number: int) -> None:
        handler.handler(event(1, f"warm {number}"), SimpleNamespace(aws_request_id=f"w{number}"))

    def asyncio_run(number: int) -> None:
        context = SimpleNamespace(aws_request_id=f"r{number}")
        asyncio.run(handler.handler.__wrapped__(event(2, f"run {number}"), context))

    floor_loop = asyncio.new_event_loop()
    floor_store = S3SessionStore.from_env()  # the same settings; a client of its own

    def floor(number: int) -> None:
        def add(session: AgentSession | None) -> AgentSession:
            session = session or AgentSession(id=SessionId(3))
            session.chat_messages.append(UserMessage(content=f"floor {number}"))
            return session

        floor_loop.run_until_complete(floor_store.update(SessionId(3), add))

    try:
        figures = measure({"floor": floor, "warm": warm}, repeat)
        floor_loop.run_until_complete(floor_store.close())
    finally:
        floor_loop.close()
        serverless.shutdown()
    figures.update(measure({"asyncio_run": asyncio_run}, repeat))
    return figures


def cold_figures(servers: Servers, bucket: str, repeat: int) -> tuple[float, float]:
    env = {**os.environ, "S3STORE_BUCKET": bucket, "AWS_ENDPOINT_URL": servers.moto_slow}

    def commands(number: int) -> list[list[str]]:
        return [
            [sys.executable, "-c", COLD_HANDLER, str(HANDLER), str(100 + number)],
            [sys.executable, "-c", COLD_RAW, servers.moto_slow, bucket, str(number)],
        ]

    handler, raw = cold_medians(commands, repeat, env)
    return handler, raw


async def run(servers: Servers, options: Options) -> list[Result]:
    bucket = bucket_name()
    async with aioboto3.Session().client("s3", endpoint_url=servers.moto, region_name=REGION) as c:
        await c.create_bucket(Bucket=bucket)
    os.environ["S3STORE_BUCKET"] = bucket
    os.environ["AWS_ENDPOINT_URL"] = servers.moto_slow
    try:
        handler = load_handler()
        figures = await asyncio.to_thread(warm_figures, handler, options.pick(30, 80))
    finally:
        del os.environ["S3STORE_BUCKET"], os.environ["AWS_ENDPOINT_URL"]
    cold, raw = await asyncio.to_thread(cold_figures, servers, bucket, options.pick(11, 21))
    floor_wall, floor_cpu = figures["floor"]
    results = []
    for pattern, target in (("warm", 1.10), ("asyncio_run", None)):
        wall, cpu = figures[pattern]
        results += [
            Result(f"lambda_invocation.{pattern}.vs_floor.wall", wall, floor_wall, "ms", target),
            Result(f"lambda_invocation.{pattern}.vs_floor.cpu", cpu, floor_cpu, "ms cpu", target),
        ]
    results.append(Result("cold_invocation.vs_raw_aioboto3", cold, raw, "ms to answer", 1.10))
    return results
