"""The save path's encoding of a 100 KB and a 5 MB session against pydantic's `model_dump_json`."""

from __future__ import annotations

import statistics
import time
from functools import partial

from benchmarks.common import Options, Result, Servers, median_time, session_of_size
from s3store import InMemorySessionStore

ROUNDS = 15


async def run(servers: Servers, options: Options) -> list[Result]:
    store: InMemorySessionStore = InMemorySessionStore()
    results = []
    for label, size, repeat in (
        ("100KB", 100_000, options.pick(200, 1000)),
        ("5MB", 5_000_000, options.pick(5, 20)),
    ):
        session = session_of_size(1, size)
        store.encode(session)
        session.model_dump_json()
        values, baselines = [], []
        # Alternate short runs so that both sides see the same machine state, and
        # take the median of the rounds: both sides run the same pydantic
        # serializer, so a mean of 5 rounds let one slow round decide the ratio.
        for _ in range(ROUNDS):
            values.append(median_time(partial(store.encode, session), repeat, time.process_time))
            baselines.append(median_time(session.model_dump_json, repeat, time.process_time))
        results.append(
            Result(
                f"serialize.{label}",
                statistics.median(values) * 1e6,
                statistics.median(baselines) * 1e6,
                "µs CPU",
                1.0,
            )
        )
    return results
