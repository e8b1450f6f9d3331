"""load_many, save_many and delete_many of 1,000 sessions at 20 ms per request,
against a sequential loop of save/load/delete, on the fake endpoint: moto's own
CPU per request (several ms) would otherwise cap both sides, which S3 does not.
Both are given as time per session; with --quick the sequential loop runs on the
first 100 sessions only."""

from __future__ import annotations

import time

from benchmarks.common import REGION, Options, Result, Servers, bucket_name, make_session
from s3store import S3SessionStore

SESSIONS = 1000


async def run(servers: Servers, options: Options) -> list[Result]:
    bucket = bucket_name()
    sample = options.pick(100, SESSIONS)
    bulk_store = S3SessionStore(
        bucket, prefix="bulk/", endpoint_url=servers.fake_slow, region_name=REGION
    )
    loop_store = S3SessionStore(
        bucket, prefix="loop/", endpoint_url=servers.fake_slow, region_name=REGION
    )
    sessions = [make_session(number, 8) for number in range(SESSIONS)]
    ids = [session.id for session in sessions]
    timings: dict[str, float] = {}
    async with bulk_store, loop_store:
        start = time.perf_counter()
        await bulk_store.save_many(sessions)
        timings["save_many"] = (time.perf_counter() - start) / SESSIONS
        start = time.perf_counter()
        loaded = await bulk_store.load_many(ids)  # type: ignore[arg-type]
        timings["load_many"] = (time.perf_counter() - start) / SESSIONS
        assert all(loaded.values())
        start = time.perf_counter()
        await bulk_store.delete_many(ids)  # type: ignore[arg-type]
        timings["delete_many"] = (time.perf_counter() - start) / SESSIONS

        copies = [make_session(number, 8) for number in range(sample)]
        start = time.perf_counter()
        for session in copies:
            await loop_store.save(session)
        timings["save"] = (time.perf_counter() - start) / sample
        start = time.perf_counter()
        for session_id in ids[:sample]:
            assert await loop_store.load(session_id) is not None  # type: ignore[arg-type]
        timings["load"] = (time.perf_counter() - start) / sample
        start = time.perf_counter()
        for session_id in ids[:sample]:
            await loop_store.delete(session_id)  # type: ignore[arg-type]
        timings["delete"] = (time.perf_counter() - start) / sample
    unit = "ms/session"
    return [
        Result(f"bulk.{bulk}", timings[bulk] * 1e3, timings[single] * 1e3, unit, 0.05)
        for bulk, single in (
            ("save_many", "save"),
            ("load_many", "load"),
            ("delete_many", "delete"),
        )
    ]
