"""A fresh process that imports s3store, opens a store and saves one session,
against one that imports aioboto3 and does the same put with a client of its own:
the time from starting each to its answer (see `benchmarks.common.cold_medians`).

A third process shows the floor any pydantic-based store stands on: the raw
put, its body made by a one-field pydantic model (pydantic's import, its plugin
scan and one model's validator and serializer, nothing of s3store's).
"""

from __future__ import annotations

import asyncio
import sys
import uuid

import aioboto3

from benchmarks.common import REGION, Options, Result, Servers, bucket_name, cold_medians

S3STORE = """
import asyncio, sys
from s3store import AgentSession, S3SessionStore, SessionId, UserMessage

async def main():
    async with S3SessionStore(sys.argv[1], endpoint_url=sys.argv[2], region_name=sys.argv[3]) as s:
        session = AgentSession(id=SessionId(int(sys.argv[4])))
        session.chat_messages.append(UserMessage(content="hello"))
        await s.save(session)

asyncio.run(main())
print("answered", flush=True)
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
print("answered", flush=True)
"""

PYDANTIC_FLOOR = """
import asyncio, sys
import aioboto3
from pydantic import BaseModel

class Message(BaseModel):
    content: str

async def main():
    session = aioboto3.Session()
    async with session.client("s3", endpoint_url=sys.argv[2], region_name=sys.argv[3]) as c:
        message = Message(content="hello").model_dump_json()
        body = (f'{{"id":{{"id":{sys.argv[4]},"external_id":null}},'
                f'"chat_messages":[{{"User":{message}}}]}}')
        await c.put_object(Bucket=sys.argv[1], Key=f"sessions/{sys.argv[4]}.json",
                           Body=body.encode(), ContentType="application/json")

asyncio.run(main())
print("answered", flush=True)
"""


async def run(servers: Servers, options: Options) -> list[Result]:
    bucket = bucket_name()
    async with aioboto3.Session().client("s3", endpoint_url=servers.moto, region_name=REGION) as c:
        await c.create_bucket(Bucket=bucket)
    first = uuid.uuid4().int % 10**9

    def commands(round_number: int) -> list[list[str]]:
        number = first + 3 * round_number
        return [
            [sys.executable, "-c", script, bucket, servers.moto, REGION, str(number + offset)]
            for offset, script in enumerate((S3STORE, RAW, PYDANTIC_FLOOR))
        ]

    store, raw, floor = await asyncio.to_thread(cold_medians, commands, options.pick(11, 21))
    return [
        Result("cold_start.save_one", store, raw, "ms to answer", 1.10),
        Result("cold_start.pydantic_floor", floor, raw, "ms to answer"),
        Result("cold_start.save_one.vs_pydantic_floor", store, floor, "ms to answer"),
    ]
