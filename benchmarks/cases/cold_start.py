"""A fresh process that imports s3store, opens a store and saves one session,
against one that imports aioboto3 and does the same put with a client of its own."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
import uuid

import aioboto3

from benchmarks.common import REGION, Options, Result, Servers, bucket_name

S3STORE = """
import asyncio, sys
from s3store import AgentSession, S3SessionStore, SessionId, UserMessage

async def main():
    async with S3SessionStore(sys.argv[1], endpoint_url=sys.argv[2], region_name=sys.argv[3]) as s:
        session = AgentSession(id=SessionId(int(sys.argv[4])))
        session.chat_messages.append(UserMessage(content="hello"))
        await s.save(session)

asyncio.run(main())
"""

RAW = """
import asyncio, json, sys
import aioboto3

async def main():
    session = aioboto3.Session()
    async with session.client("s3", endpoint_url=sys.argv[2], region_name=sys.argv[3]) as c:
        body = json.dumps({"id": {"id": int(sys.argv[4]), "external_id": None},
                           "chat_messages": [{"User": {"content": "hello"}}]}).encode()
        await c.put_object(Bucket=sys.argv[1], Key=f"sessions/{sys.argv[4]}.json", Body=body,
                           ContentType="application/json")

asyncio.run(main())
"""


def _wall(script: str, bucket: str, url: str, number: int) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", script, bucket, url, REGION, str(number)],
        check=True,
    )
    return time.perf_counter() - start


async def run(servers: Servers, options: Options) -> list[Result]:
    bucket = bucket_name()
    async with aioboto3.Session().client("s3", endpoint_url=servers.moto, region_name=REGION) as c:
        await c.create_bucket(Bucket=bucket)
    store_times, raw_times = [], []
    first = uuid.uuid4().int % 10**9
    for run_number in range(options.pick(5, 15)):
        store_times.append(_wall(S3STORE, bucket, servers.moto, first + 2 * run_number))
        raw_times.append(_wall(RAW, bucket, servers.moto, first + 2 * run_number + 1))
    return [
        Result(
            "cold_start.save_one",
            statistics.median(store_times) * 1e3,
            statistics.median(raw_times) * 1e3,
            "ms wall",
            1.2,  # pydantic is a required dependency: see BENCHMARKS.md for where it goes
        )
    ]
