"""S3Saver: LangGraph's own conformance suite, a real graph resumed in a new process,
requests per read on a long thread, the layout, conflicts, typed errors, sync calls."""

from __future__ import annotations

import asyncio
import json
import operator
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypedDict

import pytest

pytest.importorskip(
    "langgraph.checkpoint.conformance",
    reason="LangGraph's checkpoint conformance suite is not installed: "
    "pip install 's3store[frameworks]'",
)

import aioboto3
import ormsgpack
from langgraph.checkpoint.base import Checkpoint, CheckpointTuple
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.report import CapabilityReport
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.serde.types import INTERRUPT
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import interrupt

from s3store.errors import CorruptSessionError, InvalidSessionIdError, SessionConflictError
from s3store.langgraph import INLINE_BYTES, S3Saver
from tests.conftest import REGION

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

ROOT = Path(__file__).parents[1]
BASE = {"put", "put_writes", "get_tuple", "list", "delete_thread"}


# -- a real graph: draft, a human's review (an interrupt), publish ---------------------


class Article(TypedDict, total=False):
    topic: str
    draft: str
    verdict: str
    log: Annotated[list[str], operator.add]


def draft(state: Article) -> Article:
    # Over INLINE_BYTES: the draft is a blob, stored once and shared.
    return {"draft": f"All about {state['topic']}. " * 100, "log": ["drafted"]}


LENGTH = len("All about S3. " * 100)


def review(state: Article) -> Article:
    verdict = interrupt({"question": "publish this?", "length": len(state["draft"])})
    return {"verdict": verdict, "log": [f"reviewed: {verdict}"]}


def publish(state: Article) -> Article:
    return {"log": [f"published {len(state['draft'])} characters ({state['verdict']})"]}


def build_graph(saver: S3Saver) -> CompiledStateGraph[Any, Any, Any, Any]:
    builder = StateGraph(Article)
    builder.add_node("draft", draft)
    builder.add_node("review", review)
    builder.add_node("publish", publish)
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "review")
    builder.add_edge("review", "publish")
    builder.add_edge("publish", END)
    return builder.compile(checkpointer=saver)


# What a new process runs: a fresh saver, the sync API, the graph resumed to its end.
RESUME = """
import json, sys
from langgraph.types import Command
from s3store.langgraph import S3Saver
from tests.test_langgraph import build_graph

bucket, endpoint, region, prefix, thread_id = sys.argv[1:]
saver = S3Saver(bucket, endpoint_url=endpoint, region_name=region, prefix=prefix)
graph = build_graph(saver)
config = {"configurable": {"thread_id": thread_id}}
assert graph.get_state(config).next == ("review",)
result = graph.invoke(Command(resume="approved"), config)
print(json.dumps({"log": result["log"], "verdict": result["verdict"]}))
"""


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture
async def saver(moto_url: str, bucket: str) -> AsyncIterator[S3Saver]:
    async with S3Saver(bucket, endpoint_url=moto_url, region_name=REGION) as saver:
        yield saver
    saver.close()


class Requests:
    """The S3 requests a saver's client makes, by operation."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(self, model: Any, **_: Any) -> None:
        self.counts[model.name] += 1

    def take(self) -> dict[str, int]:
        counts, self.counts = dict(self.counts), Counter()
        return counts


@pytest.fixture
async def requests(saver: S3Saver) -> Requests:
    counter = Requests()
    client = await saver.objects.client()  # type: ignore[attr-defined]
    client.meta.events.register("before-call.s3", counter)
    return counter


def config(thread_id: str, checkpoint_ns: str = "", checkpoint_id: str | None = None) -> Any:
    configurable = {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def checkpoint(values: dict[str, Any] | None = None, versions: Any = None) -> Checkpoint:
    values = values or {}
    return {
        "v": 1,
        "id": str(uuid6(clock_seq=-1)),
        "ts": "2026-01-01T00:00:00+00:00",
        "channel_values": values,
        "channel_versions": versions if versions is not None else dict.fromkeys(values, 1),
        "versions_seen": {},
        "updated_channels": None,
    }


async def keys(s3: S3Client, bucket: str) -> list[str]:
    listed = await s3.list_objects_v2(Bucket=bucket)
    return [item["Key"] for item in listed.get("Contents", [])]


def print_report(report: CapabilityReport) -> None:
    report.print_report()
    for name, result in sorted(report.results.items()):
        for failure in result.failures:
            print(f"{name}: {failure}")


# -- LangGraph's conformance suite ------------------------------------------------------


async def test_conformance_on_s3(moto_url: str, bucket: str) -> None:
    @checkpointer_test(name="S3Saver on moto")
    async def on_s3() -> AsyncIterator[S3Saver]:
        async with S3Saver(bucket, endpoint_url=moto_url, region_name=REGION) as saver:
            yield saver
        saver.close()

    report = await validate(on_s3)
    print_report(report)
    assert report.passed_all_base(), report.to_dict()
    results = report.results
    assert {name for name, result in results.items() if result.passed} == {*BASE, "copy_thread"}
    # Not provided: deleting by run id scans every checkpoint of every thread, and a
    # safe prune must walk DeltaChannel ancestors. The suite sees them as missing.
    assert not results["delete_for_runs"].detected
    assert not results["prune"].detected


async def test_conformance_in_memory() -> None:
    @checkpointer_test(name="S3Saver in memory")
    async def in_memory() -> AsyncIterator[S3Saver]:
        yield S3Saver.in_memory()

    report = await validate(in_memory)
    print_report(report)
    assert report.passed_all_base(), report.to_dict()
    assert report.passed_all(), report.to_dict()


# -- a real graph, interrupted, resumed by a new process --------------------------------


async def test_a_graph_interrupted_here_is_resumed_by_a_new_process(
    moto_url: str, bucket: str, s3: S3Client
) -> None:
    prefix = "agents/"
    thread_id = f"article/{uuid.uuid4()}"  # a '/' in the id: percent-encoded in names
    run = config(thread_id)
    async with S3Saver(bucket, endpoint_url=moto_url, region_name=REGION, prefix=prefix) as saver:
        graph = build_graph(saver)
        paused = await graph.ainvoke({"topic": "S3", "log": []}, run)
        assert paused["__interrupt__"][0].value == {"question": "publish this?", "length": LENGTH}
        assert (await graph.aget_state(run)).next == ("review",)

        resumed = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", RESUME, bucket, moto_url, REGION, prefix, thread_id],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout) == {
            "log": ["drafted", "reviewed: approved", f"published {LENGTH} characters (approved)"],
            "verdict": "approved",
        }
        final = await graph.aget_state(run)
        assert final.next == ()
        assert final.values["log"][-1] == f"published {LENGTH} characters (approved)"
        history = [state async for state in graph.aget_state_history(run)]
        assert [state.metadata["step"] for state in history] == [3, 2, 1, 0, -1]  # type: ignore[index]

    stored = await keys(s3, bucket)
    folder = f"{prefix}langgraph/article%2F{thread_id.split('/')[1]}/root/"
    assert all(key.startswith(folder) for key in stored)
    # The draft is written once and shared by the 3 checkpoints after it.
    assert [key for key in stored if "/blobs/" in key] == [
        key for key in stored if key.startswith(f"{folder}blobs/draft/")
    ]
    assert len([key for key in stored if "/blobs/" in key]) == 1


# -- requests on a long thread -----------------------------------------------------------


async def test_a_thread_of_1000_checkpoints_latest_in_2_requests_and_a_page_in_11(
    saver: S3Saver, requests: Requests
) -> None:
    ids = [str(uuid6(clock_seq=-1)) for _ in range(1000)]
    slots = asyncio.Semaphore(32)

    async def put(step: int) -> None:
        parent = ids[step - 1] if step else None
        stored: Checkpoint = {**checkpoint({"step": step}, {"step": step + 1}), "id": ids[step]}
        async with slots:
            await saver.aput(
                config("long", checkpoint_id=parent),
                stored,
                {"source": "loop", "step": step, "parents": {}},
                {"step": step + 1},
            )

    await asyncio.gather(*(put(step) for step in range(1000)))
    assert requests.take() == {"PutObject": 1000}

    latest = await saver.aget_tuple(config("long"))
    assert latest is not None
    assert latest.checkpoint["id"] == ids[-1]
    assert latest.checkpoint["channel_values"] == {"step": 999}
    assert latest.parent_config == config("long", checkpoint_id=ids[-2])
    assert requests.take() == {"ListObjectsV2": 1, "GetObject": 1}

    page = [item async for item in saver.alist(config("long"), limit=10)]
    assert [item.checkpoint["id"] for item in page] == ids[::-1][:10]
    assert requests.take() == {"ListObjectsV2": 1, "GetObject": 10}

    older = [
        item.metadata["step"]
        async for item in saver.alist(
            config("long"), before=config("long", checkpoint_id=ids[500]), limit=3
        )
    ]
    assert older == [499, 498, 497]
    assert requests.take() == {"ListObjectsV2": 1, "GetObject": 3}


async def test_requests_for_a_checkpoint_with_a_blob_and_pending_writes(
    saver: S3Saver, requests: Requests
) -> None:
    big = "x" * (INLINE_BYTES + 1)
    first = await saver.aput(
        config("t"), checkpoint({"big": big, "small": 1}), {"step": 0}, {"big": 1, "small": 1}
    )
    assert requests.take() == {"PutObject": 2}  # the blob, then the checkpoint ("small" inline)
    second = await saver.aput(
        first,
        checkpoint({"big": big, "small": 2}, {"big": 1, "small": 2}),
        {"step": 1},
        {"small": 2},
    )
    assert requests.take() == {"PutObject": 1}  # the blob is shared, not written again
    await saver.aput_writes(second, [("small", 3), ("big", "y")], "task-1")
    assert requests.take() == {"PutObject": 2}

    latest = await saver.aget_tuple(config("t"))
    assert latest is not None
    assert latest.checkpoint["channel_values"] == {"big": big, "small": 2}
    assert latest.pending_writes == [("task-1", "small", 3), ("task-1", "big", "y")]
    # One LIST finds the checkpoint and its writes; then the checkpoint, its blob, the writes.
    assert requests.take() == {"ListObjectsV2": 1, "GetObject": 4}

    exact = await saver.aget_tuple(first)
    assert exact is not None
    assert exact.checkpoint["channel_values"] == {"big": big, "small": 1}
    assert exact.pending_writes == []
    assert requests.take() == {"GetObject": 2, "ListObjectsV2": 1}


# -- the layout ---------------------------------------------------------------------------


async def test_objects_hold_the_serializers_bytes_as_they_are(
    saver: S3Saver, bucket: str, s3: S3Client
) -> None:
    raw = bytes(range(256)) * 8  # over INLINE_BYTES: a blob
    stored = checkpoint({"raw": raw, "note": "é"})
    saved = await saver.aput(config("a/b", "parent|child:1"), stored, {"step": 1}, {"raw": 1})
    await saver.aput_writes(saved, [("note", "ü"), (INTERRUPT, {"ask": "?"})], "task/1")

    prefix = "sessions/langgraph/a%2Fb/ns-parent%7Cchild%3A1/"
    inverted = stored["id"].translate(str.maketrans("0123456789abcdef", "fedcba9876543210"))
    assert sorted(await keys(s3, bucket)) == [
        f"{prefix}blobs/raw/1",
        f"{prefix}checkpoints/{inverted}",
        f"{prefix}checkpoints/{inverted}/task%2F1.-3",
        f"{prefix}checkpoints/{inverted}/task%2F1.0",
    ]
    blob = await s3.get_object(Bucket=bucket, Key=f"{prefix}blobs/raw/1")
    assert blob["ContentType"] == "application/octet-stream"
    body = await blob["Body"].read()
    assert ormsgpack.unpackb(body) == ["bytes", raw]  # the type tag, then the bytes as they are
    assert len(body) < len(raw) + 16

    record = await s3.get_object(Bucket=bucket, Key=f"{prefix}checkpoints/{inverted}")
    fields = ormsgpack.unpackb(await record["Body"].read())
    assert fields["blobs"] == {"raw": 1}
    assert fields["inline"] == {"note": ["msgpack", JsonPlusSerializer().dumps_typed("é")[1]]}

    loaded = await saver.aget_tuple(config("a/b", "parent|child:1"))
    assert loaded is not None
    assert loaded.checkpoint["channel_values"] == {"raw": raw, "note": "é"}
    assert loaded.pending_writes == [("task/1", INTERRUPT, {"ask": "?"}), ("task/1", "note", "ü")]
    # Names do not run into each other: thread 'a' is not a folder of thread 'a/b'.
    assert await saver.aget_tuple(config("a", "parent|child:1")) is None
    assert [item async for item in saver.alist(config("a"))] == []


async def test_alist_of_a_thread_without_namespace_and_of_every_thread(saver: S3Saver) -> None:
    for thread_id, checkpoint_ns in [("one", ""), ("one", "child:1"), ("two", "")]:
        await saver.aput(config(thread_id, checkpoint_ns), checkpoint(), {"step": 0}, {})
    everywhere = [item.config["configurable"] async for item in saver.alist(None)]
    assert [(c["thread_id"], c["checkpoint_ns"]) for c in everywhere] == [
        ("one", "child:1"),
        ("one", ""),
        ("two", ""),
    ]
    thread = [item async for item in saver.alist({"configurable": {"thread_id": "one"}})]
    assert len(thread) == 2
    assert [item async for item in saver.alist(None, filter={"step": 1})] == []


async def test_sse_kms_on_every_object(moto_url: str, bucket: str, s3: S3Client) -> None:
    async with aioboto3.Session().client("kms", endpoint_url=moto_url) as kms:
        key_id = (await kms.create_key())["KeyMetadata"]["KeyId"]
    async with S3Saver(
        bucket, endpoint_url=moto_url, region_name=REGION, kms_key_id=key_id
    ) as saver:
        saved = await saver.aput(
            config("k"), checkpoint({"big": "z" * 2000}), {"step": 0}, {"big": 1}
        )
        await saver.aput_writes(saved, [("c", 1)], "task")
    saver.close()
    stored = await keys(s3, bucket)
    assert len(stored) == 3
    for key in stored:
        head = await s3.head_object(Bucket=bucket, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms"
        assert key_id in head["SSEKMSKeyId"]


# -- conflicts and errors ---------------------------------------------------------------------


async def test_a_checkpoint_id_is_stored_once(saver: S3Saver) -> None:
    stored = checkpoint({"a": 1})
    await saver.aput(config("c"), stored, {"step": 0}, {"a": 1})
    changed: Checkpoint = {**stored, "channel_values": {"a": 2}}
    with pytest.raises(SessionConflictError):
        await saver.aput(config("c"), changed, {"step": 0}, {"a": 1})
    loaded = await saver.aget_tuple(config("c"))
    assert loaded is not None
    assert loaded.checkpoint["channel_values"] == {"a": 1}


async def test_writes_are_kept_once_and_special_ones_replaced(saver: S3Saver) -> None:
    saved = await saver.aput(config("w"), checkpoint(), {"step": 0}, {})
    await saver.aput_writes(saved, [("ch", "first"), (INTERRUPT, "ask 1")], "task")
    await saver.aput_writes(saved, [("ch", "retried"), (INTERRUPT, "ask 2")], "task")
    loaded = await saver.aget_tuple(saved)
    assert loaded is not None
    assert loaded.pending_writes == [("task", INTERRUPT, "ask 2"), ("task", "ch", "first")]


async def test_failures_are_typed(saver: S3Saver, bucket: str, s3: S3Client) -> None:
    with pytest.raises(InvalidSessionIdError, match="no thread"):
        await saver.aget_tuple({"configurable": {}})
    with pytest.raises(InvalidSessionIdError, match="not a lower-case uuid"):
        await saver.aput(config("e"), {**checkpoint(), "id": "step-1"}, {}, {})
    assert await saver.aget_tuple(config("e", checkpoint_id="step-1")) is None

    saved = await saver.aput(config("e"), checkpoint({"a": 1}), {"step": 0}, {"a": 1})
    (key,) = await keys(s3, bucket)
    # A value LangGraph's serializer refuses: its own error, before any request.
    with pytest.raises(TypeError, match="not msgpack serializable"):
        await saver.aput_writes(saved, [("ok", 1), ("lock", threading.Lock())], "task")
    assert await keys(s3, bucket) == [key]
    await s3.put_object(Bucket=bucket, Key=key, Body=b"\xc1 not msgpack")
    with pytest.raises(CorruptSessionError) as caught:
        await saver.aget_tuple(saved)
    assert caught.value.key == key
    assert caught.value.raw == b"\xc1 not msgpack"
    await s3.put_object(Bucket=bucket, Key=key, Body=ormsgpack.packb({"checkpoint": 1}))
    with pytest.raises(CorruptSessionError, match="is not a checkpoint"):
        [item async for item in saver.alist(config("e"))]


# -- the sync API ------------------------------------------------------------------------------


async def test_sync_calls_from_threads_and_async_calls_share_the_objects(saver: S3Saver) -> None:
    first = await saver.aput(config("s"), checkpoint({"n": 1}), {"step": 0}, {"n": 1})

    def in_a_thread() -> list[CheckpointTuple]:
        second = saver.put(first, checkpoint({"n": 2}, {"n": 2}), {"step": 1}, {"n": 2})
        saver.put_writes(second, [("n", 3)], "task")
        return list(saver.list(config("s")))

    listed = await asyncio.to_thread(in_a_thread)
    assert [item.metadata["step"] for item in listed] == [1, 0]
    assert listed[0].pending_writes == [("task", "n", 3)]
    # Async again on this loop while the background loop runs: each has its own client.
    latest = await saver.aget_tuple(config("s"))
    assert latest is not None
    assert latest.checkpoint["channel_values"] == {"n": 2}
    # A sync call from inside this running loop works too (it blocks the loop meanwhile).
    assert saver.get_tuple(config("s")) == latest
    await asyncio.to_thread(saver.delete_thread, "s")
    assert await saver.aget_tuple(config("s")) is None


def test_a_sync_call_on_the_background_loops_own_thread_is_refused() -> None:
    refused: list[BaseException] = []

    class Reentrant(JsonPlusSerializer):
        # Called by put() on the background loop: a sync call there would wait for itself.
        def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
            try:
                reentrant.get_tuple(config("r"))
            except RuntimeError as exc:
                refused.append(exc)
            return super().dumps_typed(obj)

    reentrant = S3Saver.in_memory(serde=Reentrant())
    try:
        reentrant.put(config("r"), checkpoint({"a": 1}), {"step": 0}, {"a": 1})
    finally:
        reentrant.close()
    assert refused
    assert "await the async method instead" in str(refused[0])
    assert threading.current_thread() is threading.main_thread()


def test_the_in_memory_twin_with_the_sync_api() -> None:
    saver = S3Saver.in_memory()
    try:
        saved = saver.put(config("m"), checkpoint({"a": 1}), {"step": 0}, {"a": 1})
        peer = S3Saver.in_memory(saver.objects.peer())  # type: ignore[attr-defined]
        loaded = peer.get_tuple(saved)
        assert loaded is not None
        assert loaded.checkpoint["channel_values"] == {"a": 1}
        peer.close()
    finally:
        saver.close()
