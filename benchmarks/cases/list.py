"""`list()` of 10,000 sessions (2,000 with --quick) against botocore's paginator
collecting the same keys."""

from __future__ import annotations

import time

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

        value = baseline = 0.0
        for _ in range(options.pick(2, 5)):
            start = time.perf_counter()
            assert len(await store.list()) == sessions
            value += time.perf_counter() - start
            start = time.perf_counter()
            assert len(await paginate()) == sessions
            baseline += time.perf_counter() - start
    return [Result(f"list.{sessions}", value * 1e3, baseline * 1e3, "ms wall", 1.1)]
