"""`list()` of 10,000 sessions (2,000 with --quick) against botocore's paginator
collecting the same keys."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import aioboto3
from botocore.config import Config

from benchmarks.common import REGION, Options, Result, Servers, bucket_name, put_all
from s3store import S3SessionStore


async def run(servers: Servers, options: Options) -> list[Result]:
    sessions = options.pick(2_000, 10_000)
    bucket = bucket_name()
    config = Config(max_pool_connections=64)
    aws = aioboto3.Session()
    async with (
        aws.client("s3", endpoint_url=servers.moto, region_name=REGION, config=config) as client,
        S3SessionStore(bucket, endpoint_url=servers.moto, region_name=REGION) as store,
    ):
        await client.create_bucket(Bucket=bucket)
        await put_all(client, bucket, [(f"sessions/{n}.json", b"{}") for n in range(sessions)])

        async def paginate() -> list[str]:
            paginator = client.get_paginator("list_objects_v2")
            keys = []
            async for page in paginator.paginate(Bucket=bucket, Prefix="sessions/", Delimiter="/"):
                keys += [item["Key"] for item in page.get("Contents", ())]
            return keys

        async def timed(fn: Callable[[], Awaitable[list[Any]]]) -> float:
            start = time.perf_counter()
            assert len(await fn()) == sessions
            return time.perf_counter() - start

        value = baseline = 0.0
        # Each side goes first in every other round, so that neither always
        # meets the server (and the machine) in the state the other left.
        for round_number in range(options.pick(4, 6)):
            if round_number % 2:
                baseline += await timed(paginate)
                value += await timed(store.list)
            else:
                value += await timed(store.list)
                baseline += await timed(paginate)
    return [Result(f"list.{sessions}", value * 1e3, baseline * 1e3, "ms wall", 1.1)]
