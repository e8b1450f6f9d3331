"""`s3store.adk.S3SessionService` held to Google ADK's session-service contract (its
own session tests: create, get with a config, list, delete, state scopes, partial
and temp state, stale writers), on moto and in memory; two Lambda invocations on
one session; ADK's real `Runner` with a scripted model, resumed in a new process;
the layout, and typed errors for corrupt objects."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aioboto3
import pytest

pytest.importorskip("google.adk", reason="Google ADK is not installed: pip install 's3store[adk]'")

from google.adk.agents import LlmAgent
from google.adk.errors import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import Runner
from google.adk.sessions.base_session_service import GetSessionConfig
from google.adk.sessions.session import Session
from google.genai import types
from pydantic import Field

from s3store import (
    ConfigurationError,
    CorruptSessionError,
    InMemoryObjects,
    InvalidSessionError,
    InvalidSessionIdError,
)
from s3store.adk import S3SessionService
from tests.conftest import REGION

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

APP = "my_app"
ROOT = Path(__file__).parents[1]
Factory = Callable[[], S3SessionService]


@pytest.fixture(params=["memory", "s3"])
async def new_service(
    request: pytest.FixtureRequest, moto_url: str, bucket: str
) -> AsyncIterator[Factory]:
    """Makes services of one backend over the same storage, each as a Lambda
    invocation of its own would: its own client on S3, a `peer()` in memory."""
    shared = InMemoryObjects()
    made: list[S3SessionService] = []

    def make() -> S3SessionService:
        if request.param == "memory":
            service = S3SessionService(objects=shared.peer())
        else:
            service = S3SessionService(bucket, endpoint_url=moto_url, region_name=REGION)
        made.append(service)
        return service

    yield make
    for service in made:
        await service.close()


@pytest.fixture
def service(new_service: Factory) -> S3SessionService:
    return new_service()


def event(**fields: Any) -> Event:
    """A user event; `state=` becomes its state delta."""
    state = fields.pop("state", None)
    if state is not None:
        fields["actions"] = EventActions(state_delta=state)
    return Event(invocation_id=fields.pop("invocation_id", "inv"), author="user", **fields)


async def names(service: S3SessionService) -> set[str]:
    return {info.name async for info in service.objects.iter_objects(recursive=True)}


# -- ADK's contract: create, get, list, delete -----------------------------------------


async def test_a_missing_session_is_none(service: S3SessionService) -> None:
    assert await service.get_session(app_name=APP, user_id="u", session_id="123") is None


async def test_create_get_and_delete(service: S3SessionService) -> None:
    session = await service.create_session(app_name=APP, user_id="u", state={"key": "value"})
    assert session.id  # generated
    assert (session.app_name, session.user_id, session.state) == (APP, "u", {"key": "value"})
    assert session.events == []
    got = await service.get_session(app_name=APP, user_id="u", session_id=session.id)
    assert got == session  # the revision marker and last update time too
    await service.delete_session(app_name=APP, user_id="u", session_id=session.id)
    assert await service.get_session(app_name=APP, user_id="u", session_id=session.id) is None
    await service.delete_session(app_name=APP, user_id="u", session_id=session.id)  # no error


async def test_create_with_an_existing_id_is_refused(service: S3SessionService) -> None:
    await service.create_session(app_name=APP, user_id="u", session_id="s1", state={"k": 1})
    with pytest.raises(AlreadyExistsError):
        await service.create_session(app_name=APP, user_id="u", session_id="s1")
    with pytest.raises(AlreadyExistsError):  # ids are stripped, as ADK's in-memory service does
        await service.create_session(app_name=APP, user_id="u", session_id=" s1 ")
    got = await service.get_session(app_name=APP, user_id="u", session_id=" s1")
    assert got is not None
    assert got.state == {"k": 1}


async def test_a_session_belongs_to_its_user(service: S3SessionService) -> None:
    first = await service.create_session(app_name=APP, user_id="u1", session_id="s1")
    await service.append_event(first, event())
    await service.create_session(app_name=APP, user_id="u2", session_id="s1")
    got = await service.get_session(app_name=APP, user_id="u2", session_id="s1")
    assert got is not None
    assert (got.user_id, got.events) == ("u2", [])


async def test_list_by_user_and_by_app_oldest_first(service: S3SessionService) -> None:
    for session_id in ("s0", "s1", "s2"):
        await service.create_session(app_name=APP, user_id="u1", session_id=session_id)
    await service.create_session(app_name=APP, user_id="u2", session_id="s9")
    await service.create_session(app_name="other", user_id="u1", session_id="x")

    mine = (await service.list_sessions(app_name=APP, user_id="u1")).sessions
    assert [s.id for s in mine] == ["s0", "s1", "s2"]
    assert {(s.app_name, s.user_id) for s in mine} == {(APP, "u1")}
    # As the base class documents: no events, no state (a listing holds neither).
    assert all(s.events == [] and s.state == {} for s in mine)
    everyone = (await service.list_sessions(app_name=APP)).sessions
    assert sorted((s.user_id, s.id) for s in everyone) == [
        ("u1", "s0"),
        ("u1", "s1"),
        ("u1", "s2"),
        ("u2", "s9"),
    ]
    times = [s.last_update_time for s in everyone]
    assert times == sorted(times)
    assert (await service.list_sessions(app_name=APP, user_id="nobody")).sessions == []


async def test_list_reads_the_listing_alone(service: S3SessionService) -> None:
    await service.create_session(app_name=APP, user_id="u", session_id="s1")
    (name,) = [n for n in await names(service) if n.endswith(".jsonl")]
    # A body the service cannot read: listing never GETs it.
    await service.objects.write(name, b"not a session", base=None, conditional=False)
    (listed,) = (await service.list_sessions(app_name=APP, user_id="u")).sessions
    assert listed.id == "s1"


async def test_names_with_any_characters_round_trip(service: S3SessionService) -> None:
    app, user, session_id = "my.app", "ana@example.com/eu", "../s 1/é"
    await service.create_session(
        app_name=app, user_id=user, session_id=session_id, state={"user:k": 1}
    )
    assert await names(service) == {
        "adk/my%2Eapp/ana%40example%2Ecom%2Feu/%2E%2E%2Fs%201%2F%C3%A9.jsonl",
        "adk/my%2Eapp/ana%40example%2Ecom%2Feu.json",
    }
    (listed,) = (await service.list_sessions(app_name=app)).sessions
    assert (listed.user_id, listed.id) == (user, session_id)
    got = await service.get_session(app_name=app, user_id=user, session_id=session_id)
    assert got is not None
    assert got.state == {"user:k": 1}


@pytest.mark.parametrize("empty", ["app_name", "user_id"])
async def test_an_empty_name_is_refused(service: S3SessionService, empty: str) -> None:
    ids: dict[str, Any] = {"app_name": APP, "user_id": "u", empty: ""}
    with pytest.raises(InvalidSessionIdError, match=empty):
        await service.create_session(**ids)


def test_a_bucket_or_objects_one_of_the_two() -> None:
    with pytest.raises(ConfigurationError):
        S3SessionService()
    with pytest.raises(ConfigurationError):
        S3SessionService("a-bucket", objects=InMemoryObjects())
    with pytest.raises(ConfigurationError):
        S3SessionService(objects=InMemoryObjects(), prefix="p/")


async def test_from_env(moto_url: str, bucket: str, s3: S3Client) -> None:
    environ = {"S3STORE_BUCKET": bucket, "S3STORE_PREFIX": "agents/"}
    async with S3SessionService.from_env(
        environ=environ, endpoint_url=moto_url, region_name=REGION
    ) as service:
        await service.create_session(app_name=APP, user_id="u", session_id="s1")
    listing = await s3.list_objects_v2(Bucket=bucket)
    assert [item["Key"] for item in listing["Contents"]] == ["agents/adk/my_app/u/s1.jsonl"]


# -- ADK's contract: events ------------------------------------------------------------


async def test_events_are_appended_and_returned(service: S3SessionService) -> None:
    session = await service.create_session(app_name=APP, user_id="u")
    content = types.Content(
        role="user",
        parts=[types.Part.from_bytes(data=b"\x89PNG image", mime_type="image/png")],
    )
    complete = event(
        content=content,
        turn_complete=True,
        actions=EventActions(artifact_delta={"file": 0}, transfer_to_agent="a", escalate=True),
        long_running_tool_ids={"tool1"},
        error_code="error_code",
        interrupted=True,
        usage_metadata=types.GenerateContentResponseUsageMetadata(total_token_count=2),
        custom_metadata={"custom_key": "custom_value"},
        timestamp=1700000000.123,
    )
    returned = await service.append_event(session, complete)
    assert returned is complete
    assert session.events == [complete]
    got = await service.get_session(app_name=APP, user_id="u", session_id=session.id)
    assert got == session


async def test_last_update_time_is_the_last_events(service: S3SessionService) -> None:
    session = await service.create_session(app_name=APP, user_id="u")
    later = session.last_update_time + 10
    await service.append_event(session, event(timestamp=later))
    assert session.last_update_time == later
    got = await service.get_session(app_name=APP, user_id="u", session_id=session.id)
    assert got is not None
    assert got.last_update_time == later


async def test_partial_events_are_not_stored(service: S3SessionService) -> None:
    session = await service.create_session(app_name=APP, user_id="u")
    await service.append_event(session, event(partial=True))
    assert session.events == []
    got = await service.get_session(app_name=APP, user_id="u", session_id=session.id)
    assert got is not None
    assert got.events == []


async def test_get_session_with_a_config(service: S3SessionService) -> None:
    session = await service.create_session(app_name=APP, user_id="u")
    for timestamp in range(1, 6):
        await service.append_event(session, event(timestamp=timestamp))

    async def timestamps(**config: Any) -> list[float]:
        got = await service.get_session(
            app_name=APP, user_id="u", session_id=session.id, config=GetSessionConfig(**config)
        )
        assert got is not None
        return [e.timestamp for e in got.events]

    assert await timestamps() == [1, 2, 3, 4, 5]
    assert await timestamps(num_recent_events=0) == []
    assert await timestamps(num_recent_events=3) == [3, 4, 5]
    assert await timestamps(num_recent_events=9) == [1, 2, 3, 4, 5]
    assert await timestamps(after_timestamp=4.0) == [4, 5]
    assert await timestamps(after_timestamp=50) == []
    assert await timestamps(after_timestamp=4.0, num_recent_events=3) == [4, 5]
    assert await timestamps(after_timestamp=2.5, num_recent_events=2) == [4, 5]


async def test_an_event_that_is_not_json_is_refused(service: S3SessionService) -> None:
    session = await service.create_session(app_name=APP, user_id="u")
    with pytest.raises(InvalidSessionError):
        await service.append_event(session, event(custom_metadata={"handle": object()}))
    assert session.events == []
    got = await service.get_session(app_name=APP, user_id="u", session_id=session.id)
    assert got is not None
    assert got.events == []
    await service.append_event(session, event())  # the session is still current


# -- ADK's contract: state scopes ------------------------------------------------------


async def test_app_state_is_shared_by_every_user(service: S3SessionService) -> None:
    first = await service.create_session(
        app_name=APP, user_id="u1", session_id="s1", state={"app:k1": "v1"}
    )
    await service.append_event(first, event(state={"app:k2": "v2"}))
    second = await service.create_session(app_name=APP, user_id="u2", session_id="s2")
    assert second.state == {"app:k1": "v1", "app:k2": "v2"}
    assert first.state == {"app:k1": "v1", "app:k2": "v2"}
    other_app = await service.create_session(app_name="other", user_id="u1")
    assert other_app.state == {}


async def test_user_state_is_shared_by_the_users_sessions(service: S3SessionService) -> None:
    first = await service.create_session(
        app_name=APP, user_id="u1", session_id="s1", state={"user:k1": "v1"}
    )
    await service.append_event(first, event(state={"user:k2": "v2"}))
    again = await service.create_session(app_name=APP, user_id="u1", session_id="s1b")
    assert again.state == {"user:k1": "v1", "user:k2": "v2"}
    other_user = await service.create_session(app_name=APP, user_id="u2", session_id="s2")
    assert other_user.state == {}
    assert await service.get_user_state(app_name=APP, user_id="u1") == {"k1": "v1", "k2": "v2"}
    assert await service.get_user_state(app_name=APP, user_id="u2") == {}
    assert await service.get_user_state(app_name="other", user_id="u1") == {}


async def test_session_state_is_the_sessions_own(service: S3SessionService) -> None:
    session = await service.create_session(
        app_name=APP, user_id="u", session_id="s1", state={"sk1": "v1"}
    )
    await service.append_event(session, event(state={"sk2": "v2", "sk1": "v1b"}))
    got = await service.get_session(app_name=APP, user_id="u", session_id="s1")
    assert got is not None
    assert got.state == {"sk1": "v1b", "sk2": "v2"}
    other = await service.create_session(app_name=APP, user_id="u", session_id="s2")
    assert other.state == {}


async def test_temp_state_reaches_the_invocation_but_is_never_stored(
    service: S3SessionService,
) -> None:
    session = await service.create_session(app_name=APP, user_id="u", session_id="s1")
    first = event(state={"temp:out": "from agent 1", "sk": "v"})
    await service.append_event(session, first)
    assert session.state["temp:out"] == "from agent 1"  # the next agent of the turn reads it
    assert first.actions.state_delta == {"sk": "v"}  # the stored event has no temp: key
    got = await service.get_session(app_name=APP, user_id="u", session_id="s1")
    assert got is not None
    assert got.state == {"sk": "v"}
    assert got.events[0].actions.state_delta == {"sk": "v"}
    stored = await service.objects.read("adk/my_app/u/s1.jsonl")
    assert stored is not None
    assert b"temp:" not in stored.body


async def test_state_values_are_stored_as_json(service: S3SessionService) -> None:
    session = await service.create_session(app_name=APP, user_id="u")
    profile = {"name": "Ana", "tags": ["a", "b"], "n": 0.1 + 0.2}
    await service.append_event(session, event(state={"profile": profile, "user:p": profile}))
    got = await service.get_session(app_name=APP, user_id="u", session_id=session.id)
    assert got is not None
    assert got.state == {"profile": profile, "user:p": profile}
    got.state["profile"]["name"] = "changed"  # a caller's copy, not the service's
    await service.append_event(got, event(state={"other": 1}))
    again = await service.get_session(app_name=APP, user_id="u", session_id=session.id)
    assert again is not None
    assert again.state["profile"] == profile


# -- layout: a turn rewrites only its own objects -----------------------------------------


async def test_the_app_and_user_state_objects_are_written_only_for_their_deltas(
    service: S3SessionService,
) -> None:
    session = await service.create_session(
        app_name=APP, user_id="u", session_id="s1", state={"app:a": 1, "user:b": 2}
    )
    assert await names(service) == {
        "adk/my_app.json",
        "adk/my_app/u.json",
        "adk/my_app/u/s1.jsonl",
    }

    async def writes(name: str) -> tuple[str, ...]:
        head = await service.objects.head(name)
        assert head is not None
        return head.writes

    app_writes, user_writes = await writes("adk/my_app.json"), await writes("adk/my_app/u.json")
    for number in range(3):
        await service.append_event(session, event(state={"turn": number}))
    assert await writes("adk/my_app.json") == app_writes
    assert await writes("adk/my_app/u.json") == user_writes
    await service.append_event(session, event(state={"user:b": 3}))
    assert await writes("adk/my_app.json") == app_writes
    assert await writes("adk/my_app/u.json") != user_writes
    stored = await service.objects.read("adk/my_app/u/s1.jsonl")
    assert stored is not None
    header, *lines = stored.body.decode().split("\n")
    assert json.loads(header)["state"] == {"turn": 2}
    assert [json.loads(line)["actions"]["state_delta"] for line in lines] == [
        {"turn": 0},
        {"turn": 1},
        {"turn": 2},
        {"user:b": 3},
    ]


# -- concurrency -------------------------------------------------------------------------


async def test_a_stale_invocation_is_refused_then_succeeds_after_a_reload(
    new_service: Factory,
) -> None:
    first, second = new_service(), new_service()  # two Lambda invocations
    await first.create_session(app_name=APP, user_id="u", session_id="s1")
    mine = await first.get_session(app_name=APP, user_id="u", session_id="s1")
    theirs = await second.get_session(app_name=APP, user_id="u", session_id="s1")
    assert mine is not None
    assert theirs is not None
    await first.append_event(mine, event(invocation_id="a", state={"k": "a", "user:x": "a"}))

    refused = event(invocation_id="b", state={"k": "b", "user:x": "b"})
    with pytest.raises(StaleSessionError, match="modified in storage"):
        await second.append_event(theirs, refused)
    assert theirs.events == []  # never merged into the stale copy either
    stored = await first.get_session(app_name=APP, user_id="u", session_id="s1")
    assert stored is not None
    assert [e.invocation_id for e in stored.events] == ["a"]
    assert (stored.state["k"], stored.state["user:x"]) == ("a", "a")

    reloaded = await second.get_session(app_name=APP, user_id="u", session_id="s1")
    assert reloaded is not None
    await second.append_event(reloaded, event(invocation_id="b", state={"k": "b"}))
    final = await new_service().get_session(app_name=APP, user_id="u", session_id="s1")
    assert final is not None
    assert [e.invocation_id for e in final.events] == ["a", "b"]
    assert final.state["k"] == "b"
    # The first invocation's copy is stale now, even though this service wrote it last.
    with pytest.raises(StaleSessionError):
        await first.append_event(mine, event(invocation_id="c"))


async def test_of_two_concurrent_copies_exactly_one_is_stored(service: S3SessionService) -> None:
    session = await service.create_session(app_name=APP, user_id="u")
    for number in range(4):
        latest = await service.get_session(app_name=APP, user_id="u", session_id=session.id)
        assert latest is not None
        copies = [latest.model_copy(deep=True), latest.model_copy(deep=True)]
        results = await asyncio.gather(
            *(
                service.append_event(copy, event(invocation_id=f"{number}-{which}"))
                for which, copy in enumerate(copies)
            ),
            return_exceptions=True,
        )
        assert sorted(type(result).__name__ for result in results) == ["Event", "StaleSessionError"]
    final = await service.get_session(app_name=APP, user_id="u", session_id=session.id)
    assert final is not None
    assert len(final.events) == 4


async def test_appends_through_one_session_object_follow_each_other(
    service: S3SessionService,
) -> None:
    session = await service.create_session(app_name=APP, user_id="u")
    appended = [event(invocation_id=str(number)) for number in range(5)]
    await asyncio.gather(*(service.append_event(session, e) for e in appended))
    got = await service.get_session(app_name=APP, user_id="u", session_id=session.id)
    assert got is not None
    assert [e.id for e in got.events] == [e.id for e in session.events]
    assert len(got.events) == 5


async def test_an_append_to_a_deleted_session_is_not_found(new_service: Factory) -> None:
    service = new_service()
    session = await service.create_session(app_name=APP, user_id="u", session_id="s1")
    await new_service().delete_session(app_name=APP, user_id="u", session_id="s1")
    with pytest.raises(SessionNotFoundError):  # this service still remembers the version
        await service.append_event(session, event())
    with pytest.raises(SessionNotFoundError):  # and one that never saw it
        await new_service().append_event(session, event())
    assert await service.get_session(app_name=APP, user_id="u", session_id="s1") is None


async def test_a_session_without_a_marker_is_current_if_it_ends_as_stored(
    new_service: Factory,
) -> None:
    service = new_service()
    session = await service.create_session(app_name=APP, user_id="u", session_id="s1")
    await service.append_event(session, event(invocation_id="1"))
    session._storage_update_marker = None
    await new_service().append_event(session, event(invocation_id="2"))
    by_hand = Session(id="s1", app_name=APP, user_id="u")  # no events: stale now
    with pytest.raises(StaleSessionError):
        await new_service().append_event(by_hand, event(invocation_id="3"))
    got = await service.get_session(app_name=APP, user_id="u", session_id="s1")
    assert got is not None
    assert [e.invocation_id for e in got.events] == ["1", "2"]


# -- corrupt objects ----------------------------------------------------------------------


async def test_a_corrupt_session_object_is_a_typed_error(new_service: Factory) -> None:
    service = new_service()
    session = await service.create_session(app_name=APP, user_id="u", session_id="s1")
    await service.append_event(session, event())
    name = "adk/my_app/u/s1.jsonl"
    await service.objects.write(name, b"<html>oops</html>", base=None, conditional=False)
    with pytest.raises(CorruptSessionError) as caught:
        await service.get_session(app_name=APP, user_id="u", session_id="s1")
    assert caught.value.raw == b"<html>oops</html>"
    assert caught.value.key is not None
    assert caught.value.key.endswith(name)
    with pytest.raises(StaleSessionError):  # this service's copy is not what is stored
        await service.append_event(session, event())
    with pytest.raises(CorruptSessionError):  # one that reads it: not a missing session
        await new_service().append_event(session, event())


async def test_a_corrupt_event_line_is_a_typed_error(service: S3SessionService) -> None:
    session = await service.create_session(app_name=APP, user_id="u", session_id="s1")
    for _ in range(2):
        await service.append_event(session, event())
    name = "adk/my_app/u/s1.jsonl"
    stored = await service.objects.read(name)
    assert stored is not None
    header, first, _ = stored.body.split(b"\n")
    damaged = b"\n".join([header, first, b'{"author": 3}'])
    await service.objects.write(name, damaged, base=stored)
    with pytest.raises(CorruptSessionError, match=r"event \(2\)") as caught:
        await service.get_session(app_name=APP, user_id="u", session_id="s1")
    assert caught.value.raw == damaged
    # The last event alone is good: a config that stops before the damage reads.
    config = GetSessionConfig(num_recent_events=0)
    got = await service.get_session(app_name=APP, user_id="u", session_id="s1", config=config)
    assert got is not None


async def test_a_corrupt_user_state_object_is_a_typed_error(service: S3SessionService) -> None:
    await service.create_session(app_name=APP, user_id="u", session_id="s1")
    await service.objects.write("adk/my_app/u.json", b"[1, 2]", base=None, conditional=False)
    with pytest.raises(CorruptSessionError):
        await service.get_user_state(app_name=APP, user_id="u")
    with pytest.raises(CorruptSessionError):
        await service.get_session(app_name=APP, user_id="u", session_id="s1")


# -- ADK's Runner, resumed in a new process -----------------------------------------------


class ScriptedModel(BaseLlm):
    """A model that answers from a script, and says how many contents it was sent:
    what a resumed session's history looks like to the model."""

    script: list[types.Part]
    sent: list[int] = Field(default_factory=list)

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        self.sent.append(len(llm_request.contents))
        part = self.script.pop(0)
        yield LlmResponse(content=types.Content(role="model", parts=[part]))


def read_log(job: str) -> dict[str, str]:
    """Reads the last lines of a job's log."""
    return {"job": job, "tail": "step 4 failed: disk full"}


def helpdesk(model: BaseLlm) -> LlmAgent:
    return LlmAgent(name="helpdesk", model=model, instruction="Answer briefly.", tools=[read_log])


def script() -> list[types.Part]:
    return [
        types.Part(text="Hello Ana."),
        types.Part(function_call=types.FunctionCall(name="read_log", args={"job": "nightly"})),
        types.Part(text="The disk is full."),
        types.Part(text="You are welcome."),
    ]


async def run_turn(runner: Runner, text: str) -> list[Event]:
    message = types.Content(role="user", parts=[types.Part(text=text)])
    return [
        event
        async for event in runner.run_async(user_id="ana", session_id="t-1", new_message=message)
    ]


async def test_a_runner_turn_is_three_gets_and_two_puts(moto_url: str, bucket: str) -> None:
    calls: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    aws = aioboto3.Session()
    aws.events.register("before-call.s3", count)
    model = ScriptedModel(
        model="scripted", script=[types.Part(text="Hi."), types.Part(text="Yes.")]
    )
    async with S3SessionService(
        bucket, endpoint_url=moto_url, region_name=REGION, session=aws
    ) as service:
        runner = Runner(agent=helpdesk(model), app_name="helpdesk", session_service=service)
        await service.create_session(app_name="helpdesk", user_id="ana", session_id="t-1")
        for text in ("hi", "still there?"):
            calls.clear()
            await run_turn(runner, text)
            assert calls == {"GetObject": 3, "PutObject": 2}


RESUME = textwrap.dedent(
    """
    import asyncio, json, sys
    from google.genai import types
    from google.adk.runners import Runner
    from s3store.adk import S3SessionService
    from tests.test_adk import ScriptedModel, helpdesk, run_turn

    async def main():
        service = S3SessionService.from_env(endpoint_url=sys.argv[1], region_name="us-east-1")
        async with service:
            got = await service.get_session(app_name="helpdesk", user_id="ana", session_id="t-1")
            before = [[e.author, e.content.parts[0].model_dump(exclude_none=True)]
                      for e in got.events]
            model = ScriptedModel(model="scripted", script=[types.Part(text="Still here.")])
            runner = Runner(agent=helpdesk(model), app_name="helpdesk", session_service=service)
            await run_turn(runner, "are you still there?")
            after = await service.get_session(app_name="helpdesk", user_id="ana", session_id="t-1")
        print(json.dumps({"before": before, "state": got.state, "sent": model.sent,
                          "after": len(after.events)}))

    asyncio.run(main())
    """
)


async def test_adks_runner_three_turns_resumed_in_a_new_process(moto_url: str, bucket: str) -> None:
    model = ScriptedModel(model="scripted", script=script())
    async with S3SessionService(bucket, endpoint_url=moto_url, region_name=REGION) as service:
        runner = Runner(agent=helpdesk(model), app_name="helpdesk", session_service=service)
        await service.create_session(
            app_name="helpdesk", user_id="ana", session_id="t-1", state={"user:name": "Ana"}
        )
        texts = []
        for text in ("hi", "why does the nightly job fail?", "thanks"):
            for answer in await run_turn(runner, text):
                parts = answer.content.parts if answer.content else None
                texts += [part.text for part in parts or () if part.text]
        assert texts == [
            "Hello Ana.",
            "The disk is full.",
            "You are welcome.",
        ]
        assert model.sent == [1, 3, 5, 7]  # each call saw the history so far

    environment = {**os.environ, "S3STORE_BUCKET": bucket, "PYTHONPATH": str(ROOT)}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", RESUME, moto_url],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    resumed = json.loads(done.stdout.splitlines()[-1])
    assert [author for author, _ in resumed["before"]] == [
        "user",
        "helpdesk",
        "user",
        "helpdesk",
        "helpdesk",  # the tool's response
        "helpdesk",
        "user",
        "helpdesk",
    ]
    history = [part for _, part in resumed["before"]]
    assert history[0] == {"text": "hi"}
    assert history[3]["function_call"]["name"] == "read_log"
    assert history[4]["function_response"]["response"]["tail"] == "step 4 failed: disk full"
    assert history[-1] == {"text": "You are welcome."}
    assert resumed["state"] == {"user:name": "Ana"}
    assert resumed["sent"] == [9]  # the new process's model saw all eight, and the new message
    assert resumed["after"] == 10
