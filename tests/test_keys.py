"""The key layout: every session id has one key, inside the prefix, and back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3store import InvalidSessionIdError, SessionId
from s3store.keys import MAX_KEY_BYTES, normalize_prefix, parse_key, session_key


@pytest.mark.parametrize(
    ("session_id", "key"),
    [
        (SessionId(42), "sessions/42.json"),
        (SessionId(42, "user-7"), "sessions/42(user-7).json"),
        (SessionId(1, ""), "sessions/1().json"),
        (SessionId(1, "a/b"), "sessions/1(a%2Fb).json"),
        (SessionId(1, ".."), "sessions/1(..).json"),
        (SessionId(1, "(%)"), "sessions/1(%28%25%29).json"),
        (SessionId(1, "é ~_"), "sessions/1(%C3%A9%20~_).json"),
    ],
)
def test_the_key_of_a_session(session_id: SessionId, key: str) -> None:
    assert session_key("sessions/", session_id) == key
    assert parse_key("sessions/", key) == session_id


def test_prefix_is_normalized() -> None:
    assert normalize_prefix("sessions") == "sessions/"
    assert normalize_prefix("a/b/") == "a/b/"
    assert normalize_prefix("") == ""
    assert session_key("", SessionId(3)) == "3.json"


@pytest.mark.parametrize(
    "key",
    [
        "sessions/x.json",
        "sessions/42.txt",
        "sessions/042.json",
        "sessions/42(a.json",
        "sessions/42(a%2fb).json",  # lower-case escape: not the canonical spelling
        "sessions/42(A%41).json",  # an escape of a letter kept as is: not canonical
        "sessions/42(%FF).json",  # not UTF-8
        "sessions/sub/42.json",
        "other/42.json",
        f"sessions/{2**64}.json",
    ],
)
def test_keys_this_layout_does_not_write_name_no_session(key: str) -> None:
    assert parse_key("sessions/", key) is None


def test_an_unpaired_surrogate_is_refused() -> None:
    with pytest.raises(InvalidSessionIdError, match="surrogate"):
        session_key("sessions/", SessionId(1, "a\ud800"))


def test_a_key_over_1024_bytes_is_refused() -> None:
    longest = "a" * (MAX_KEY_BYTES - len("sessions/1().json"))
    assert len(session_key("sessions/", SessionId(1, longest)).encode()) == MAX_KEY_BYTES
    with pytest.raises(InvalidSessionIdError, match="1024"):
        session_key("sessions/", SessionId(1, longest + "a"))
    with pytest.raises(InvalidSessionIdError, match="1024"):
        session_key("sessions/", SessionId(1, "é" * 400))  # 800 characters, 2,400 bytes escaped


@given(
    prefix=st.sampled_from(["", "sessions/", "tenant-1/agents/"]),
    number=st.integers(min_value=0, max_value=2**64 - 1),
    external_id=st.none() | st.text(max_size=80),
)
def test_every_id_round_trips_and_stays_inside_the_prefix(
    prefix: str, number: int, external_id: str | None
) -> None:
    session_id = SessionId(number, external_id)
    try:
        key = session_key(prefix, session_id)
    except InvalidSessionIdError:
        return  # a clear refusal (surrogates) is the only other outcome
    assert key.startswith(prefix)
    assert "/" not in key[len(prefix) :]  # one path segment: ".." in it cannot climb out
    assert parse_key(prefix, key) == session_id
