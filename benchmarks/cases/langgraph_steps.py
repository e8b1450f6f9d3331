"""A LangGraph run of 10 super-steps (ten nodes in a row, each appending a message of
~200 characters) checkpointed by `S3Saver` at 20 ms per request, against the same
run with LangGraph's `InMemorySaver`.

Figures per super-step, from a run's totals over its 10 super-steps (so the run's
first read of the thread and its input checkpoint are counted in): client CPU
(process time, the graph's own work included on both sides), S3 requests (against
the floor of one PUT per super-step), and wall time, for context.

The run goes to moto behind the latency proxy rather than the fake endpoint: a run
starts by reading the thread's latest checkpoint, a LIST, which the fake endpoint
does not answer. The server is in a process of its own either way, so its CPU is
never counted.
"""

from __future__ import annotations

import operator
import statistics
import sys
import time
import uuid
from collections import Counter
from typing import Annotated, Any, TypedDict

import aioboto3
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph

from benchmarks.common import REGION, Options, Result, Servers, bucket_name
from s3store.langgraph import S3Saver
from s3store.s3 import S3Objects

STEPS = 10


class State(TypedDict):
    messages: Annotated[list[str], operator.add]
    count: int


def node(index: int) -> Any:
    def step(state: State) -> dict[str, Any]:
        text = f"step {index}: the tool returned what the model asked for. " * 3
        return {"messages": [text], "count": state["count"] + 1}

    return step


def graph(saver: BaseCheckpointSaver[Any]) -> Any:
    builder = StateGraph(State)
    previous = START
    for index in range(STEPS):
        builder.add_node(f"step_{index}", node(index))
        builder.add_edge(previous, f"step_{index}")
        previous = f"step_{index}"
    return builder.compile(checkpointer=saver)


async def _timed_run(compiled: Any) -> tuple[float, float]:
    """CPU and wall seconds of one run on a new thread."""
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    cpu, wall = time.process_time(), time.perf_counter()
    result = await compiled.ainvoke({"messages": [], "count": 0}, config)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert result["count"] == STEPS
    return cpu, wall


async def run(servers: Servers, options: Options) -> list[Result]:
    repeat = options.pick(5, 20)
    bucket = bucket_name()
    async with aioboto3.Session().client(
        "s3", endpoint_url=servers.moto, region_name=REGION
    ) as client:
        await client.create_bucket(Bucket=bucket)
    requests: Counter[str] = Counter()
    async with S3Saver(bucket, endpoint_url=servers.moto_slow, region_name=REGION) as saver:
        assert isinstance(saver.objects, S3Objects)
        s3_client = await saver.objects.client()
        s3_client.meta.events.register(
            "before-call.s3", lambda model, **_: requests.update([model.name])
        )
        on_s3, in_memory = graph(saver), graph(InMemorySaver())
        await _timed_run(on_s3)  # warm: connections, lazy imports
        await _timed_run(in_memory)
        requests.clear()
        s3_runs, memory_runs = [], []
        for _ in range(repeat):
            s3_runs.append(await _timed_run(on_s3))
            memory_runs.append(await _timed_run(in_memory))
    saver.close()

    def per_step(runs: list[tuple[float, float]], which: int) -> float:
        return statistics.median(sample[which] for sample in runs) / STEPS * 1e3

    per_run = {name: count / repeat for name, count in requests.items()}
    print(f"langgraph_steps: requests per run of {STEPS} super-steps: {per_run}", file=sys.stderr)
    return [
        Result(
            "langgraph_steps.cpu_per_superstep.vs_in_memory",
            per_step(s3_runs, 0),
            per_step(memory_runs, 0),
            "ms CPU/super-step",
        ),
        Result(
            "langgraph_steps.requests_per_superstep.vs_one_put",
            sum(requests.values()) / repeat / STEPS,
            1.0,
            "requests/super-step",
        ),
        Result(
            "langgraph_steps.wall_per_superstep.vs_in_memory",
            per_step(s3_runs, 1),
            per_step(memory_runs, 1),
            "ms/super-step",
        ),
    ]
