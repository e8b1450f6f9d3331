"""The store's client tuning: no `Expect: 100-continue`, checksums kept, endpoints still right."""

from __future__ import annotations

import time
from typing import Any

import aioboto3
import botocore.loaders
import pytest
from botocore.utils import parse_timestamp

from s3store import AgentSession, S3SessionStore, SessionId
from s3store._tuning import _fast_timestamps, _unreferenced_parameters


async def test_puts_skip_expect_but_keep_their_checksum(s3_store: S3SessionStore) -> None:
    sent: list[Any] = []

    def record(request: Any, **_: Any) -> None:
        sent.append(dict(request.headers))

    events = (await s3_store.s3.client()).meta.events
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
    client: Any = await s3_store.s3.client()
    async with s3_store.s3._session.client("s3", **s3_store.s3._client_options) as other:
        factory: Any = other._endpoint._response_parser_factory  # type: ignore[attr-defined]
        assert "timestamp_parser" not in factory._defaults
        assert client._endpoint._response_parser_factory is not factory


async def test_the_user_agent_is_built_once_per_set_of_features_and_stays_right(
    moto_url: str, bucket: str
) -> None:
    sent: dict[str, list[str]] = {"reference": [], "store": []}

    def recorder(side: str) -> Any:
        def record(request: Any, **_: Any) -> None:
            header = request.headers["User-Agent"]
            sent[side].append(header.decode() if isinstance(header, bytes) else header)

        return record

    store = S3SessionStore(bucket, endpoint_url=moto_url, region_name="us-east-1")
    options = store.s3._client_options  # the same settings, on an untuned client
    async with aioboto3.Session().client("s3", **options) as reference:
        reference.meta.events.register("before-send.s3", recorder("reference"))
        for number in range(2):
            key = f"reference/{number}.json"
            await reference.put_object(
                Bucket=bucket, Key=key, Body=b"{}", ChecksumAlgorithm="SHA256"
            )
            await reference.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    async with store:
        client: Any = await store.s3.client()
        client.meta.events.register("before-send.s3", recorder("store"))
        builds = 0
        build = client._user_agent_creator._build_sdk_metadata

        def counted() -> Any:
            nonlocal builds
            builds += 1
            return build()

        client._user_agent_creator._build_sdk_metadata = counted
        for number in range(5):
            await store.save(AgentSession(id=SessionId(number)))
            await store.load(SessionId(number))
    assert builds <= 4  # one per set of features, not two per request (20 here)

    def parts(header: str) -> tuple[str, frozenset[str]]:
        """The header without its features, and the features (botocore's order varies)."""
        words = header.split(" ")
        features = next(word for word in words if word.startswith("m/"))
        rest = " ".join(word for word in words if word != features)
        return rest, frozenset(features[2:].split(","))

    reference = {parts(header)[0] for header in sent["reference"]}
    assert {parts(header)[0] for header in sent["store"]} == reference
    assert all({"b", "E", "Z"} <= parts(header)[1] for header in sent["store"])
