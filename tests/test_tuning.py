"""The store's client tuning: no `Expect: 100-continue`, checksums kept, endpoints still right."""

from __future__ import annotations

from typing import Any

import botocore.loaders

from s3store import AgentSession, S3SessionStore, SessionId
from s3store._tuning import _unreferenced_parameters


async def test_puts_skip_expect_but_keep_their_checksum(s3_store: S3SessionStore) -> None:
    sent: list[Any] = []

    def record(request: Any, **_: Any) -> None:
        sent.append(dict(request.headers))

    events = s3_store._open_client().meta.events
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
