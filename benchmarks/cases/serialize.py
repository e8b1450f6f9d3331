"""The save path's encoding of a 100 KB and a 5 MB session against pydantic's `model_dump_json`."""

from __future__ import annotations

import time
from functools import partial

from benchmarks.common import Options, Result, Servers, median_time, session_of_size
from s3store import InMemorySessionStore


async def run(servers: Servers, options: Options) -> list[Result]:
    store: InMemorySessionStore = InMemorySessionStore()
    results = []
    for label, size, repeat in (
        ("100KB", 100_000, options.pick(200, 1000)),
        ("5MB", 5_000_000, options.pick(10, 40)),
    ):
        session = session_of_size(1, size)
        store._encode(session)
        session.model_dump_json()
        value = baseline = 0.0
        # Alternate short runs so that both sides see the same machine state.
        for _ in range(5):
            value += median_time(partial(store._encode, session), repeat, time.process_time)
            baseline += median_time(session.model_dump_json, repeat, time.process_time)
        results.append(
            Result(f"serialize.{label}", value / 5 * 1e6, baseline / 5 * 1e6, "µs CPU", 1.0)
        )
    return results
