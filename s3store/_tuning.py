"""Per-client tuning of aiobotocore for many small JSON objects.

Two changes, both local to the store's own client and both behaviour-neutral:

- No `Expect: 100-continue` on PutObject. botocore adds it so that a large
  upload can stop before sending its body; for a session snapshot it only costs
  a round trip (aiohttp waits for the server's `100 Continue`).
- Endpoint resolution cached per bucket instead of per key. botocore passes the
  object key into the endpoint rules and caches the result by all parameters, so
  every new key misses the cache and re-runs the whole S3 rule set (about a
  fifth of the client's CPU per request). The rules never read the key: the
  parameters they do not reference are dropped before the cached lookup, so the
  same endpoint comes back from the cache. Which parameters are unreferenced is
  computed from the rule set itself, so a rule set that starts reading one
  simply keeps it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from botocore.handlers import add_expect_header

__all__ = ["tune_client"]

_unreferenced_cache: dict[int, tuple[dict[str, Any], frozenset[str]]] = {}


def tune_client(client: Any) -> None:
    """Apply both changes to an open aiobotocore S3 client."""
    client.meta.events.unregister("before-call.s3", add_expect_header)
    resolver = getattr(client, "_ruleset_resolver", None)
    provider = getattr(resolver, "_provider", None)
    loader = getattr(client, "_loader", None)
    if provider is None or loader is None:
        return  # another botocore layout: keep its own resolution untouched
    rules = loader.load_service_model("s3", "endpoint-rule-set-1")
    unused = _unreferenced_parameters(rules)
    if unused:
        provider.resolve_endpoint = _without(unused, provider.resolve_endpoint)


def _without(unused: frozenset[str], resolve: Callable[..., Any]) -> Callable[..., Any]:
    def resolve_endpoint(**params: Any) -> Any:
        for name in unused:
            params.pop(name, None)
        return resolve(**params)

    return resolve_endpoint


def _unreferenced_parameters(ruleset: dict[str, Any]) -> frozenset[str]:
    """Parameters the rules never read, by `{"ref": ...}` or a `{Name}` template."""
    # The loader caches the rule set, so its identity keys this per-process cache;
    # the entry keeps the rule set alive, so that identity is never reused.
    entry = _unreferenced_cache.get(id(ruleset))
    if entry is not None and entry[0] is ruleset:
        return entry[1]
    referenced: set[str] = set()
    text: list[str] = []
    for node in _walk(ruleset.get("rules", [])):
        if isinstance(node, dict) and isinstance(node.get("ref"), str):
            referenced.add(node["ref"])
        elif isinstance(node, str) and "{" in node:
            text.append(node)
    templates = "\n".join(text)
    cached = frozenset(
        name
        for name in ruleset.get("parameters", {})
        if name not in referenced and "{" + name not in templates
    )
    _unreferenced_cache[id(ruleset)] = (ruleset, cached)
    return cached


def _walk(node: Any) -> Iterator[Any]:
    stack = [node]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
