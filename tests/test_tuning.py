"""The store's client tuning: no `Expect: 100-continue`, checksums kept, endpoints still right."""

from __future__ import annotations

import time
from typing import Any

import botocore.loaders
import pytest
from botocore.utils import parse_timestamp

from s3store import AgentSession, S3SessionStore, SessionId
from s3store._tuning import _fast_timestamps, _unreferenced_parameters


async def test_puts_skip_expect_but_keep_their_checksum(s3_store: S3SessionStore) -> None:
    sent: list[Any] = []

    def record(request: Any, **_: Any) -> None:
        sent.append(dict(request.headers))

    events = (await s3_store._client()).meta.events
    events.register("before-send.s3.PutObject", record)
    try:
        await s3_store.save(AgentSession(id=SessionId(1, "a/b")))
    finally:
        events.unregister("before-send.s3.PutObject", record)
    (headers,) = sent
    assert "Expect" not in headers
    assert any(name.lower().startswith("x-amz-checksum-") for name in headers)
    assert await s3_store.load(SessionId(1, "a/b")) == AgentSession(id=SessionId(1, "a/b"))


def test_only_parameters_the_endpoint_rules_never_read_are_dropped() -> None:
    rules = botocore.loaders.create_loader().load_service_model("s3", "endpoint-rule-set-1")
    unused = _unreferenced_parameters(rules)
    assert "Key" in unused
    assert not unused & {"Bucket", "Region", "Endpoint", "ForcePathStyle", "UseFIPS"}


def test_a_parameter_read_by_a_rule_or_a_template_is_kept() -> None:
    rules = {
        "parameters": {"A": {}, "B": {}, "C": {}},
        "rules": [
            {"conditions": [{"fn": "isSet", "argv": [{"ref": "A"}]}], "endpoint": {"url": "x"}},
            {"conditions": [], "endpoint": {"url": "https://{B}.example"}},
        ],
    }
    assert _unreferenced_parameters(rules) == frozenset({"C"})


# Real header and listing values, and spellings the fast path must leave to botocore.
TIMESTAMPS = [
    "Tue, 24 Nov 2026 03:00:01 GMT",
    "Sat, 29 Feb 2028 23:59:59 GMT",
    "Thu, 01 Jan 1970 00:00:00 GMT",
    "Wed, 24 Nov 2026 03:00:01 GMT",  # wrong weekday
    "Tue, 24 Nov 2026 03:00:01 +0000",
    "2026-11-24T03:00:01.000Z",
    "2026-11-24T03:00:01.123Z",
    "2026-11-24T03:00:01Z",
    "2026-07-01T12:30:00.5Z",
    "2026-07-01T12:30:00+02:00",
    "1700000000",
    1700000000,
]


@pytest.mark.parametrize("zone", ["UTC", "GMT", "Europe/London", "America/New_York"])
def test_fast_timestamps_equal_botocores_parser(zone: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        fast = _fast_timestamps(parse_timestamp)
        for value in TIMESTAMPS:
            expected, got = parse_timestamp(value), fast(value)
            assert (got, repr(got), got.fold) == (expected, repr(expected), expected.fold), value
            assert got.tzinfo == expected.tzinfo, value
        with pytest.raises(ValueError, match="Invalid timestamp"):
            fast("Tue, 30 Feb 2026 03:00:01 GMT")
    finally:
        monkeypatch.undo()
        time.tzset()


async def test_only_the_stores_client_gets_the_fast_parser(s3_store: S3SessionStore) -> None:
    await s3_store.save(AgentSession(id=SessionId(7)))
    info = await s3_store.stat(SessionId(7))
    assert info is not None
    assert info.last_modified.tzinfo is not None
    (listed,) = [item for item in await s3_store.list_info() if item.session_id == SessionId(7)]
    assert abs((listed.last_modified - info.last_modified).total_seconds()) < 1
    client: Any = await s3_store._client()
    async with s3_store._session.client("s3", **s3_store._client_options) as other:
        factory: Any = other._endpoint._response_parser_factory  # type: ignore[attr-defined]
        assert "timestamp_parser" not in factory._defaults
        assert client._endpoint._response_parser_factory is not factory
