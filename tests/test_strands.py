"""s3store.strands: Strands Agents sessions on s3store, against the suite's moto server.

Strands' repository contract (learned from its tests in strands-agents/sdk-python,
tests/strands/session/), real `strands.Agent`s driven by a scripted model (no
network, no key), concurrent invocations, idempotent retries, the cost of a load,
carrying over what Strands' own S3SessionManager stored, and typed errors.
"""

from __future__ import annotations

import pytest

pytest.importorskip(
    "strands", reason="Strands Agents is not installed: pip install 's3store[strands]'"
)

import asyncio
import json
import threading
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, TypeVar

import aioboto3
import boto3
from pydantic import BaseModel
from strands import Agent
from strands.agent.conversation_manager import NullConversationManager
from strands.models import Model
from strands.multiagent import GraphBuilder
from strands.session.s3_session_manager import S3SessionManager as StrandsS3SessionManager
from strands.types.content import Messages
from strands.types.exceptions import SessionException
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

from s3store import CorruptSessionError, InMemoryObjects, InvalidSessionIdError, S3Objects
from s3store.strands import S3SessionManager, migrate_prefix
from tests.conftest import REGION

PREFIX = "strands/"


T = TypeVar("T", bound=BaseModel)


class ScriptedModel(Model):
    """A model that answers each call with the next of its replies, as Bedrock streams."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.calls = 0

    def update_config(self, **model_config: Any) -> None:
        pass

    def get_config(self) -> Any:
        return {}

    async def structured_output(
        self,
        output_model: type[T],
        prompt: Messages,
        system_prompt: str | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[dict[str, T | Any], None]:
        raise NotImplementedError("no structured output from a scripted model")
        yield {}  # an async generator, as Model declares it

    async def stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        reply = (
            self.replies[self.calls] if self.calls < len(self.replies) else f"reply {self.calls}"
        )
        self.calls += 1
        yield {"messageStart": {"role": "assistant"}}
        yield {"contentBlockStart": {"start": {}}}
        yield {"contentBlockDelta": {"delta": {"text": reply}}}
        yield {"contentBlockStop": {}}
        yield {"messageStop": {"stopReason": "end_turn"}}
        yield {"metadata": {"usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}}}


def agent(manager: S3SessionManager | StrandsS3SessionManager, *replies: str) -> Agent:
    return Agent(
        model=ScriptedModel(*replies),
        session_manager=manager,
        conversation_manager=NullConversationManager(),
        callback_handler=None,
    )


def texts(messages: list[Any]) -> list[str]:
    return [block["text"] for message in messages for block in message["content"]]


@pytest.fixture
def raw(moto_url: str) -> Any:
    """A plain boto3 client, to look at the bucket without going through the manager."""
    return boto3.client("s3", endpoint_url=moto_url, region_name=REGION)


@pytest.fixture
def manager_for(moto_url: str, bucket: str) -> Any:
    def make(session_id: str, **options: Any) -> S3SessionManager:
        return S3SessionManager(
            session_id, bucket, PREFIX, endpoint_url=moto_url, region_name=REGION, **options
        )

    return make


@pytest.fixture
def manager(manager_for: Any) -> S3SessionManager:
    """A manager whose own session is "test"; the contract tests use "s1"."""
    made: S3SessionManager = manager_for("test")
    return made


def new_session(manager: S3SessionManager, session_id: str = "s1") -> None:
    manager.create_session(Session(session_id=session_id, session_type=SessionType.AGENT))
    manager.create_agent(
        session_id,
        SessionAgent(
            agent_id="a1",
            state={"k": "v"},
            conversation_manager_state=NullConversationManager().get_state(),
        ),
    )


def message(text: str, index: int = 0) -> SessionMessage:
    return SessionMessage.from_message({"role": "user", "content": [{"text": text}]}, index)


class MultiAgent:
    """What the repository reads of a Graph or Swarm: an id and its serialized state."""

    def __init__(self, id: str, state: dict[str, Any]) -> None:
        self.id = id
        self.state = state

    def serialize_state(self) -> dict[str, Any]:
        return self.state


# -- Strands' repository contract ---------------------------------------------------


def test_sessions_are_created_once_read_and_deleted(manager: S3SessionManager, raw: Any) -> None:
    session = Session(session_id="s1", session_type=SessionType.AGENT)
    assert manager.create_session(session) is session
    with pytest.raises(SessionException, match="already exists"):
        manager.create_session(Session(session_id="s1", session_type=SessionType.AGENT))
    read = manager.read_session("s1")
    assert read is not None
    assert (read.session_id, read.session_type) == ("s1", "AGENT")
    assert manager.read_session("nonexistent") is None

    manager.delete_session("s1")
    assert manager.read_session("s1") is None
    with pytest.raises(SessionException, match="does not exist"):
        manager.delete_session("s1")


def test_agents_are_created_read_and_updated(manager: S3SessionManager) -> None:
    new_session(manager)
    agent_read = manager.read_agent("s1", "a1")
    assert agent_read is not None
    assert agent_read.state == {"k": "v"}
    assert manager.read_agent("s1", "nonexistent") is None

    created_at = agent_read.created_at
    changed = SessionAgent(agent_id="a1", state={"updated": 1}, conversation_manager_state={})
    manager.update_agent("s1", changed)
    assert changed.created_at == created_at  # kept, as Strands keeps it
    updated = manager.read_agent("s1", "a1")
    assert updated is not None
    assert (updated.state, updated.created_at) == ({"updated": 1}, created_at)

    with pytest.raises(SessionException, match="does not exist"):
        manager.update_agent("s1", SessionAgent("nobody", {}, {}))
    with pytest.raises(SessionException, match="does not exist"):
        manager.create_agent("no-session", SessionAgent("a1", {}, {}))


def test_messages_are_created_read_listed_and_updated(manager: S3SessionManager) -> None:
    new_session(manager)
    for index in range(10):
        manager.create_message("s1", "a1", message(f"m{index}", index))
    first = manager.read_message("s1", "a1", 0)
    assert first is not None
    assert first.message["content"] == [{"text": "m0"}]
    assert manager.read_message("s1", "a1", 999) is None

    assert [m.message_id for m in manager.list_messages("s1", "a1")] == list(range(10))
    assert [m.message_id for m in manager.list_messages("s1", "a1", limit=3)] == [0, 1, 2]
    assert [m.message_id for m in manager.list_messages("s1", "a1", offset=5)] == [5, 6, 7, 8, 9]
    assert [m.message_id for m in manager.list_messages("s1", "a1", limit=2, offset=8)] == [8, 9]
    assert manager.list_messages("s1", "nobody") == []

    first.message["content"] = [{"text": "updated"}]
    manager.update_message("s1", "a1", first)
    again = manager.read_message("s1", "a1", 0)
    assert again is not None
    assert again.message["content"] == [{"text": "updated"}]
    assert again.created_at == first.created_at
    with pytest.raises(SessionException, match="does not exist"):
        manager.update_message("s1", "a1", message("never stored", 999))
    with pytest.raises(SessionException, match="does not exist"):
        manager.create_message("s1", "nobody", message("x"))


def test_bytes_in_messages_round_trip(manager: S3SessionManager) -> None:
    new_session(manager)
    image = {"image": {"format": "png", "source": {"bytes": b"\x89PNG\x00\xff"}}}
    manager.create_message("s1", "a1", SessionMessage({"role": "user", "content": [image]}, 0))
    [read] = manager.list_messages("s1", "a1")
    assert read.message["content"][0]["image"]["source"]["bytes"] == b"\x89PNG\x00\xff"


def test_multi_agent_state_is_created_read_and_updated(manager: S3SessionManager) -> None:
    new_session(manager)
    manager.create_multi_agent("s1", MultiAgent("graph", {"id": "graph", "status": "executing"}))
    assert manager.read_multi_agent("s1", "graph") == {"id": "graph", "status": "executing"}
    assert manager.read_multi_agent("s1", "nonexistent") is None
    manager.update_multi_agent("s1", MultiAgent("graph", {"id": "graph", "status": "completed"}))
    assert manager.read_multi_agent("s1", "graph") == {"id": "graph", "status": "completed"}
    with pytest.raises(SessionException, match="does not exist"):
        manager.update_multi_agent("s1", MultiAgent("nonexistent", {}))


@pytest.mark.parametrize("bad", ["a/b", "a/../b"])
def test_ids_with_path_separators_are_refused_as_strands_refuses_them(
    manager: S3SessionManager, bad: str
) -> None:
    with pytest.raises(ValueError, match="id cannot contain path separators") as raised:
        manager.read_session(bad)
    assert isinstance(raised.value, InvalidSessionIdError)
    with pytest.raises(ValueError, match="id cannot contain path separators"):
        manager.read_agent("s1", bad)


@pytest.mark.parametrize("bad", ["1", None, "../escape"])
def test_message_ids_must_be_integers(manager: S3SessionManager, bad: Any) -> None:
    with pytest.raises(ValueError, match="message id must be an integer"):
        manager.read_message("s1", "a1", bad)


def test_a_session_is_one_object_beside_strands_layout(
    manager: S3SessionManager, raw: Any, bucket: str
) -> None:
    new_session(manager)
    manager.create_message("s1", "a1", message("hello"))
    keys = [item["Key"] for item in raw.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(keys) == [f"{PREFIX}session_s1.json", f"{PREFIX}session_test.json"]
    stored = json.loads(
        raw.get_object(Bucket=bucket, Key=f"{PREFIX}session_s1.json")["Body"].read()
    )
    assert stored["agents"]["a1"]["messages"][0]["message"]["content"] == [{"text": "hello"}]


# -- a real agent ---------------------------------------------------------------------


def test_an_agent_resumes_from_a_new_manager_with_its_history(manager_for: Any) -> None:
    first = agent(manager_for("chat"), "one", "two", "three")
    first("first question")
    first.state.set("topic", "weather")
    first("second question")
    first("third question")
    assert texts(first.messages) == [
        "first question",
        "one",
        "second question",
        "two",
        "third question",
        "three",
    ]

    resumed = agent(manager_for("chat"), "four")
    assert resumed.messages == first.messages
    assert resumed.state.get("topic") == "weather"
    resumed("fourth question")
    again = manager_for("chat")
    assert texts(agent(again).messages)[-2:] == ["fourth question", "four"]
    assert [m.message_id for m in again.list_messages("chat", "default")] == list(range(8))


def test_a_resumed_agent_gets_its_bytes_back(manager_for: Any) -> None:
    image = {"image": {"format": "png", "source": {"bytes": b"\x89PNG\x00\xff"}}}
    agent(manager_for("pictures"), "a picture")([image, {"text": "what is it?"}])
    resumed = agent(manager_for("pictures"))
    assert resumed.messages[0]["content"] == [image, {"text": "what is it?"}]


def test_what_a_resumed_agent_changes_in_its_messages_is_not_stored(manager_for: Any) -> None:
    agent(manager_for("changed"), "one")("first question")
    resumed = agent(manager_for("changed"), "two")
    # The agent changes a message it holds: the manager's copy of the session, which
    # its next write stores whole, must not change with it.
    resumed.messages[0]["content"].append({"text": "changed in the agent only"})
    resumed("second question")
    stored = agent(manager_for("changed")).messages
    assert texts(stored) == ["first question", "one", "second question", "two"]


def test_an_agent_invoked_inside_a_running_event_loop(manager_for: Any) -> None:
    async def invoke() -> None:
        await agent(manager_for("async"), "from a loop").invoke_async("asked in a loop")

    asyncio.run(invoke())
    assert texts(agent(manager_for("async")).messages) == ["asked in a loop", "from a loop"]


def test_a_redaction_rewrites_the_latest_message(manager_for: Any) -> None:
    manager = manager_for("redacted")
    talker = agent(manager, "a secret answer")
    talker("tell me")
    manager.redact_latest_message(
        {"role": "assistant", "content": [{"text": "[redacted]"}]}, talker
    )
    assert texts(agent(manager_for("redacted")).messages) == ["tell me", "[redacted]"]


def test_a_graph_keeps_its_state(manager_for: Any) -> None:
    builder = GraphBuilder()
    builder.add_node(Agent(model=ScriptedModel("done"), callback_handler=None), "writer")
    builder.set_entry_point("writer")
    builder.set_max_node_executions(1)
    builder.set_session_manager(manager_for("graph"))
    graph = builder.build()
    graph("write it")
    stored = manager_for("other").read_multi_agent("graph", graph.id)
    assert stored is not None
    assert stored["status"] == "completed"
    assert stored["completed_nodes"] == ["writer"]


def test_the_in_memory_twin_behaves_the_same() -> None:
    objects = InMemoryObjects()
    agent(S3SessionManager("chat", objects=objects), "hi")("hello")
    resumed = agent(S3SessionManager("chat", objects=objects.peer()))
    assert texts(resumed.messages) == ["hello", "hi"]


# -- concurrent invocations and retries --------------------------------------------------


def test_two_managers_appending_at_once_both_land_once_each_in_their_order(
    manager_for: Any,
) -> None:
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def invocation(name: str) -> None:
        try:
            start.wait()
            talker = agent(manager_for("shared"), *(f"{name} answer {i}" for i in range(10)))
            for turn in range(10):
                talker(f"{name} question {turn}")
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=invocation, args=(name,)) for name in ("A", "B")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []

    loaded = texts(agent(manager_for("shared")).messages)
    assert len(loaded) == 40
    for name in ("A", "B"):
        own = [text for text in loaded if text.startswith(name)]
        expected = [f"{name} {kind} {i}" for i in range(10) for kind in ("question", "answer")]
        assert own == expected
    ids = [m.message_id for m in manager_for("x").list_messages("shared", "default")]
    assert ids == list(range(40))


def test_a_stale_manager_appends_after_the_stored_messages_and_redacts_its_own(
    manager_for: Any,
) -> None:
    agent(manager_for("race"), "setup")("setup question")
    first_manager, second_manager = manager_for("race"), manager_for("race")
    first, second = agent(first_manager, "first answer"), agent(second_manager, "second answer")
    first("first question")
    second("second question")  # its copy says 2 messages are stored; 4 are

    # The redaction rewrites the answer where it was stored (5), not where its copy
    # would have put it (3, the first manager's answer).
    second_manager.redact_latest_message(
        {"role": "assistant", "content": [{"text": "[x]"}]}, second
    )
    assert texts(agent(manager_for("race")).messages) == [
        "setup question",
        "setup",
        "first question",
        "first answer",
        "second question",
        "[x]",
    ]


def test_a_retried_request_appends_its_messages_once(manager_for: Any) -> None:
    agent(manager_for("retry", request_id="req-1"), "answer")("question")
    agent(manager_for("retry", request_id="req-1"), "answer")("question")  # Lambda's retry
    assert texts(agent(manager_for("retry")).messages) == ["question", "answer"]

    current = {"id": "req-2"}
    agent(manager_for("retry", request_id=lambda: current["id"]), "next answer")("next question")
    assert texts(agent(manager_for("retry")).messages) == [
        "question",
        "answer",
        "next question",
        "next answer",
    ]


# -- the cost of a load -------------------------------------------------------------


def test_loading_a_100_message_session_takes_one_request(manager_for: Any) -> None:
    writer = manager_for("writer")
    new_session(writer, "long")
    for index in range(100):
        writer.create_message("long", "a1", message(f"m{index}", index))

    counting = aioboto3.Session()
    sent: list[str] = []
    counting.events.register("before-send.s3", lambda request, **_: sent.append(request.method))
    manager = manager_for("long", session=counting)
    loaded = Agent(
        agent_id="a1",
        model=ScriptedModel(),
        session_manager=manager,
        conversation_manager=NullConversationManager(),
        callback_handler=None,
    )
    assert len(loaded.messages) == 100
    assert sent == ["GET"]  # at most 3 asked; Strands' own manager makes 103


# -- carrying over what Strands' own S3SessionManager stored --------------------------------


@pytest.fixture
def strands_manager_for(moto_url: str, bucket: str) -> Any:
    def make(session_id: str) -> StrandsS3SessionManager:
        return StrandsS3SessionManager(
            session_id, bucket, prefix=PREFIX, region_name=REGION, endpoint_url=moto_url
        )

    return make


def test_a_session_strands_stored_is_carried_over_intact(
    strands_manager_for: Any, manager_for: Any, raw: Any, bucket: str
) -> None:
    talker = agent(strands_manager_for("old"), "one", "two")
    talker("first")
    talker.state.set("user", "ada")
    talker("second")
    before = {item["Key"] for item in raw.list_objects_v2(Bucket=bucket)["Contents"]}

    carried = agent(manager_for("old"), "three")
    assert carried.messages == talker.messages
    assert carried.state.get("user") == "ada"
    carried("third")
    after = {item["Key"] for item in raw.list_objects_v2(Bucket=bucket)["Contents"]}
    assert after == before | {f"{PREFIX}session_old.json"}  # the old objects are left
    assert texts(agent(manager_for("old")).messages) == [
        "first",
        "one",
        "second",
        "two",
        "third",
        "three",
    ]


def test_migrate_prefix_carries_over_every_session(
    strands_manager_for: Any, moto_url: str, bucket: str
) -> None:
    for session_id in ("x", "y"):
        agent(strands_manager_for(session_id), f"{session_id} answer")(f"{session_id} question")
    strands_manager_for("z").create_multi_agent("z", MultiAgent("swarm", {"id": "swarm"}))

    async def migrate() -> tuple[list[str], list[str]]:
        async with S3Objects(
            bucket, prefix=PREFIX, endpoint_url=moto_url, region_name=REGION
        ) as objects:
            return await migrate_prefix(objects), await migrate_prefix(objects)

    first, second = asyncio.run(migrate())
    assert sorted(first) == ["x", "y", "z"]
    assert second == []
    manager = S3SessionManager("x", bucket, PREFIX, endpoint_url=moto_url, region_name=REGION)
    assert texts(agent(manager).messages) == ["x question", "x answer"]
    assert manager.read_multi_agent("z", "swarm") == {"id": "swarm"}


# -- typed errors -------------------------------------------------------------------------


def test_a_corrupt_session_object_is_a_typed_error(manager_for: Any, raw: Any, bucket: str) -> None:
    raw.put_object(Bucket=bucket, Key=f"{PREFIX}session_bad.json", Body=b"{not json")
    with pytest.raises(CorruptSessionError) as raised:
        manager_for("bad")
    assert raised.value.key == f"{PREFIX}session_bad.json"
    assert raised.value.raw == b"{not json"

    manager = manager_for("good")
    manager.create_agent("good", SessionAgent("a1", {}, {}))
    stored = json.loads(
        raw.get_object(Bucket=bucket, Key=f"{PREFIX}session_good.json")["Body"].read()
    )
    stored["agents"]["a1"]["messages"] = [{"message": {}, "message_id": "first"}]
    raw.put_object(Bucket=bucket, Key=f"{PREFIX}session_good.json", Body=json.dumps(stored))
    with pytest.raises(CorruptSessionError, match="message_id"):
        manager.list_messages("good", "a1")


def test_a_corrupt_object_strands_stored_is_a_typed_error(
    strands_manager_for: Any, manager_for: Any, raw: Any, bucket: str
) -> None:
    agent(strands_manager_for("old"), "answer")("question")
    key = f"{PREFIX}session_old/agents/agent_default/messages/message_1.json"
    raw.put_object(Bucket=bucket, Key=key, Body=b'{"message_id": 1}')
    with pytest.raises(CorruptSessionError) as raised:
        manager_for("old")
    assert raised.value.key == key


def test_objects_and_a_bucket_are_one_or_the_other(moto_url: str) -> None:
    with pytest.raises(ValueError, match="one or the other"):
        S3SessionManager("s", "bucket", objects=InMemoryObjects())
    with pytest.raises(ValueError, match="give the bucket"):
        S3SessionManager("s")


def test_from_env_reads_the_bucket_and_prefix(
    moto_url: str, bucket: str, monkeypatch: pytest.MonkeyPatch, raw: Any
) -> None:
    monkeypatch.setenv("S3STORE_BUCKET", bucket)
    monkeypatch.setenv("S3STORE_PREFIX", "env-sessions/")
    agent(S3SessionManager.from_env("e", endpoint_url=moto_url, region_name=REGION), "hi")("hey")
    assert raw.head_object(Bucket=bucket, Key="env-sessions/session_e.json")["ContentLength"] > 0
