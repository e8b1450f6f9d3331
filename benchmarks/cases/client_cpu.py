"""Client CPU per save and per load, against the fake endpoint (no server cost counted).

s3store's store against raw aioboto3 `put_object`/`get_object` on one reused
client with default settings; for context, a client per call and obstore.
Process CPU time is used, so the work of any thread (obstore's runtime) counts.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable

import aioboto3
import obstore
from obstore.store import S3Store

from benchmarks.common import REGION, Options, Result, Servers, bucket_name, make_session
from s3store import S3SessionStore

MESSAGES = 8  # a small session (~2 KB): the request, not the payload, dominates


async def _cpu_per_op(
    batches: list[Callable[[], Awaitable[None]]], ops: int, rounds: int
) -> list[float]:
    """Median CPU seconds per operation of each batch; batches alternate to share any drift."""
    samples: list[list[float]] = [[] for _ in batches]
    for _ in range(rounds):
        for index, batch in enumerate(batches):
            start = time.process_time()
            await batch()
            samples[index].append((time.process_time() - start) / ops)
    return [statistics.median(sample) for sample in samples]


async def run(servers: Servers, options: Options) -> list[Result]:
    ops = options.pick(200, 1000)
    rounds = options.pick(5, 9)
    bucket = bucket_name()
    sessions = [make_session(number, MESSAGES) for number in range(ops)]
    bodies = [session.model_dump_json().encode() for session in sessions]
    aws = aioboto3.Session()
    async with (
        S3SessionStore(bucket, endpoint_url=servers.fake, region_name=REGION) as store,
        aws.client("s3", endpoint_url=servers.fake, region_name=REGION) as client,
    ):
        keys = [store.objects.key(store.name(session.id)) for session in sessions]  # type: ignore[arg-type]

        async def store_save() -> None:
            for session in sessions:
                await store.save(session)

        async def store_load() -> None:
            for session in sessions:
                await store.load(session.id)  # type: ignore[arg-type]

        async def raw_put() -> None:
            for key, body in zip(keys, bodies, strict=True):
                await client.put_object(
                    Bucket=bucket, Key=key, Body=body, ContentType="application/json"
                )

        async def raw_get() -> None:
            for key in keys:
                response = await client.get_object(Bucket=bucket, Key=key)
                async with response["Body"] as stream:
                    await stream.read()

        await store_save()
        await raw_put()  # warm both: connections, endpoint caches, lazy imports
        save, put = await _cpu_per_op([store_save, raw_put], ops, rounds)
        load, get = await _cpu_per_op([store_load, raw_get], ops, rounds)

        per_call_ops = options.pick(10, 40)

        async def client_per_call_put() -> None:
            for key, body in zip(keys[:per_call_ops], bodies, strict=False):
                async with aws.client("s3", endpoint_url=servers.fake, region_name=REGION) as own:
                    await own.put_object(Bucket=bucket, Key=key, Body=body)

        (per_call,) = await _cpu_per_op([client_per_call_put], per_call_ops, 3)

    obs = S3Store(
        bucket,
        endpoint=servers.fake,
        region=REGION,
        access_key_id="testing",
        secret_access_key="testing",
        client_options={"allow_http": True},
    )

    async def obstore_put() -> None:
        for key, body in zip(keys, bodies, strict=True):
            await obstore.put_async(obs, key, body)

    async def obstore_get() -> None:
        for key in keys:
            await (await obstore.get_async(obs, key)).bytes_async()

    await obstore_put()
    obs_put, obs_get = await _cpu_per_op([obstore_put, obstore_get], ops, rounds)

    us = 1e6
    unit = "µs CPU/op"
    return [
        Result("client_cpu.save", save * us, put * us, unit, target=0.85),
        Result("client_cpu.load", load * us, get * us, unit, target=0.85),
        Result("client_cpu.put.client_per_call", per_call * us, put * us, unit),
        Result("client_cpu.put.obstore", obs_put * us, put * us, unit),
        Result("client_cpu.get.obstore", obs_get * us, get * us, unit),
    ]
