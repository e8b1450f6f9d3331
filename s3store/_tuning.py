"""Per-client tuning of aiobotocore for many small JSON objects.

Four changes, all local to the store's own client and all behaviour-neutral:

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
- The User-Agent header built once per set of features instead of twice per
  request. botocore assembles it from a dozen components, sanitizing each, when
  it builds the request and again once the request is created (to add the
  features the call used); everything in it but those features is fixed for the
  life of the client, so the string is kept per set of features.
- Timestamps in responses (`Last-Modified` on every GET and HEAD, `LastModified`
  of every listed object) parsed without dateutil when they have S3's exact
  format. botocore hands every timestamp to `dateutil.parser.parse`, a general
  tokenizer costing tens of microseconds each (about a tenth of the client's
  CPU per GET, and more per listed key). The fast path returns the same aware
  datetime, with the same tzinfo, that botocore's parser returns; any other
  spelling, and any time zone setting where dateutil's choice of tzinfo could
  differ, goes to botocore's parser.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from botocore.context import get_context
from botocore.handlers import add_expect_header
from botocore.parsers import DEFAULT_TIMESTAMP_PARSER
from dateutil.tz import tzlocal, tzutc  # type: ignore[import-untyped]  # botocore's own dependency

__all__ = ["tune_client"]

_unreferenced_cache: dict[int, tuple[dict[str, Any], frozenset[str]]] = {}


def tune_client(client: Any) -> None:
    """Apply these changes to an open aiobotocore S3 client."""
    client.meta.events.unregister("before-call.s3", add_expect_header)
    _parse_timestamps_fast(client)
    _cache_user_agent(client)
    resolver = getattr(client, "_ruleset_resolver", None)
    provider = getattr(resolver, "_provider", None)
    loader = getattr(client, "_loader", None)
    if provider is None or loader is None:
        return  # another botocore layout: keep its own resolution untouched
    rules = loader.load_service_model("s3", "endpoint-rule-set-1")
    unused = _unreferenced_parameters(rules)
    if unused:
        provider.resolve_endpoint = _without(unused, provider.resolve_endpoint)


def _cache_user_agent(client: Any) -> None:
    creator: Any = getattr(client, "_user_agent_creator", None)
    build = getattr(creator, "to_string", None)
    if build is None or not hasattr(creator, "_client_features"):
        return  # another botocore layout: keep its own header
    built: dict[frozenset[str], str] = {}

    def to_string() -> str:
        context = get_context()
        features = frozenset(creator._client_features or ()).union(
            context.features if context is not None else ()
        )
        if features not in built:
            built[features] = build()
        return built[features]

    creator.to_string = to_string  # the request-created handler calls it too


def _parse_timestamps_fast(client: Any) -> None:
    endpoint: Any = getattr(client, "_endpoint", None)
    factory: Any = getattr(endpoint, "_response_parser_factory", None)
    defaults = getattr(factory, "_defaults", None)
    if not isinstance(defaults, dict) or not hasattr(factory, "set_parser_defaults"):
        return  # another botocore layout: keep its own parser
    # The factory is shared by every client of the aioboto3 session: give this
    # client a copy of its own, so that other clients stay untouched.
    own = copy.copy(factory)
    own._defaults = dict(defaults)
    own.set_parser_defaults(
        timestamp_parser=_fast_timestamps(
            defaults.get("timestamp_parser", DEFAULT_TIMESTAMP_PARSER)
        )
    )
    endpoint._response_parser_factory = own


# S3's two spellings: `Last-Modified: Tue, 24 Nov 2026 03:00:01 GMT` (RFC 7231)
# in headers, `2026-11-24T03:00:01.000Z` (ISO 8601) in listings.
_HTTP_DATE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-9]{2}) "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([0-9]{4}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) GMT"
)
_ISO_UTC = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{3}))?Z"
)
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


def _fast_timestamps(fallback: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """botocore's timestamp parser, with a fast path for S3's two exact formats.

    What `dateutil.parser.parse(value, tzinfos={"GMT": tzutc()})` (botocore's
    call) gives for them: `GMT` maps to `tzutc()` through `tzinfos`. `Z` is read
    as the zone "UTC", which dateutil makes `tzlocal()` when "UTC" is one of
    `time.tzname` (a `TZ=UTC` host, Lambda) and `tzutc()` when it is not; a
    zone that is UTC only part of the year is left to dateutil.
    """

    def parse(value: Any) -> Any:
        if isinstance(value, str):
            try:
                match = _HTTP_DATE.fullmatch(value)
                if match is not None:
                    day, month, year = int(match[2]), _MONTHS[match[3]], int(match[4])
                    parsed = datetime(
                        year,
                        month,
                        day,
                        int(match[5]),
                        int(match[6]),
                        int(match[7]),
                        tzinfo=tzutc(),
                    )
                    # dateutil ignores a wrong weekday; such a value is left to it.
                    if _WEEKDAYS[parsed.weekday()] == match[1]:
                        return parsed
                match = _ISO_UTC.fullmatch(value)
                zone = _iso_utc_zone()
                if match is not None and zone is not None:
                    year, month, day, hour, minute, second = map(int, match.groups()[:6])
                    millis = int(match[7] or 0)
                    return datetime(
                        year, month, day, hour, minute, second, millis * 1000, tzinfo=zone
                    )
            except ValueError:
                pass  # not a real date (30 February): botocore's parser says so
        return fallback(value)

    return parse


def _iso_utc_zone() -> Any:
    """The tzinfo dateutil gives a `...Z` time now, or None where it depends on the date."""
    names = time.tzname  # read per call: TZ can change while the process runs
    if "UTC" not in names:
        return tzutc()
    if names == ("UTC", "UTC"):
        return tzlocal()  # a new instance per value, as dateutil makes one
    return None


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
