"""Listing at scale, on a fake S3 endpoint that lists (benchmarks/serve.py's does not):
`ls --limit 10` over 100,000 keys (requests and wall time, against 10 keys),
`iter_ids()` peak memory over 100,000 keys against 10,000 and against `list()`,
and `export` time per session at 16 and 64 requests in flight against raw aioboto3
GETs of the same objects (1,000 sessions), with 20 ms of latency. --quick: 20,000 and
2,000 keys, 500 sessions.

The endpoint runs in a process of its own (`python -m benchmarks.cases.listing_scale`),
with its keys made there, so that neither its CPU nor its memory counts as the
client's. The bench venv has no click, so `ls` is measured as the listing the
command runs: `Connection.store()` and `iter_info(limit=10)`, a new client each time.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import html
import io
import json
import os
import statistics
import sys
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager, asynccontextmanager
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import aioboto3
from aiobotocore.config import AioConfig

from benchmarks.common import (
    LATENCY,
    REGION,
    Options,
    Result,
    Servers,
    make_session,
    server_process,
)
from s3store import S3SessionStore, SessionId
from s3store.operations import Connection, export_sessions

BUCKET = "listing-scale"
EXPORTED = "export/"


def prefixes(quick: bool) -> dict[str, int]:
    """The key count under each prefix: two listing sizes, 10 keys, and the export's."""
    small, large = (2_000, 20_000) if quick else (10_000, 100_000)
    return {"small/": small, "large/": large, "ten/": 10, EXPORTED: 500 if quick else 1_000}


# -- the endpoint, in its own process ----------------------------------------------------


class ListingS3:
    """GetObject and ListObjectsV2 of one bucket made at start, as S3 answers them.

    Keys are kept sorted, so a page costs its own length, not the bucket's. No
    key here has a `/` past its prefix, so none is folded into CommonPrefixes.
    """

    def __init__(self, counts: dict[str, int]) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}
        for prefix, count in counts.items():
            for number in range(count):
                # Exported sessions are read and checked; the others are only listed.
                exported = prefix == EXPORTED
                body = make_session(number, 8).model_dump_json().encode() if exported else b"{}"
                etag = f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'
                self.objects[f"{prefix}{number}.json"] = (body, etag)
        self.keys = sorted(self.objects)
        self.modified = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
                url = urlsplit(target)
                query = {name: values[0] for name, values in parse_qs(url.query).items()}
                writer.write(self.respond(method, unquote(url.path), query))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def respond(self, method: str, path: str, query: dict[str, str]) -> bytes:
        bucket, _, key = path.lstrip("/").partition("/")
        if bucket != BUCKET:
            return _answer(404, _error("NoSuchBucket"))
        if method == "GET" and not key and query.get("list-type") == "2":
            return _answer(200, self.page(query), {"Content-Type": "application/xml"})
        if method in ("GET", "HEAD") and key in self.objects:
            body, etag = self.objects[key]
            headers = {"ETag": etag, "Last-Modified": formatdate(usegmt=True)}
            return _answer(200, b"" if method == "HEAD" else body, headers, len(body))
        return _answer(404, _error("NoSuchKey"))

    def page(self, query: dict[str, str]) -> bytes:
        prefix = query.get("prefix", "")
        start = query.get("continuation-token") or query.get("start-after") or ""
        limit = int(query.get("max-keys", "1000"))
        first = bisect.bisect_right(self.keys, start) if start else 0
        first = max(first, bisect.bisect_left(self.keys, prefix))
        keys = []
        for key in self.keys[first : first + limit + 1]:
            if not key.startswith(prefix):
                break
            keys.append(key)
        truncated = len(keys) > limit
        keys = keys[:limit]
        contents = "".join(
            f"<Contents><Key>{html.escape(key)}</Key><LastModified>{self.modified}"
            f"</LastModified><ETag>{html.escape(self.objects[key][1])}</ETag>"
            f"<Size>{len(self.objects[key][0])}</Size><StorageClass>STANDARD</StorageClass>"
            "</Contents>"
            for key in keys
        )
        following = (
            f"<NextContinuationToken>{html.escape(keys[-1])}</NextContinuationToken>"
            if truncated
            else ""
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult '
            'xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Name>{BUCKET}</Name><Prefix>{html.escape(prefix)}</Prefix>"
            f"<KeyCount>{len(keys)}</KeyCount><MaxKeys>{limit}</MaxKeys>"
            f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"
            f"{following}{contents}</ListBucketResult>"
        ).encode()


def _error(code: str) -> bytes:
    return f"<Error><Code>{code}</Code><Message>{code}</Message></Error>".encode()


def _answer(
    status: int, body: bytes, headers: dict[str, str] | None = None, length: int | None = None
) -> bytes:
    reason = {200: "OK", 404: "Not Found"}[status]
    lines = [f"HTTP/1.1 {status} {reason}", f"Date: {formatdate(usegmt=True)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines.append(f"Content-Length: {len(body) if length is None else length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def serve(quick: bool) -> None:
    """Serve the bucket directly and behind 20 ms; print the URLs; end when stdin closes."""
    from benchmarks.serve import latency_proxy

    fake = ListingS3(prefixes(quick))
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    slow = await asyncio.start_server(latency_proxy(port, LATENCY), "127.0.0.1", 0, backlog=1024)
    urls = {"fake": f"http://127.0.0.1:{port}"}
    urls["fake_slow"] = f"http://127.0.0.1:{slow.sockets[0].getsockname()[1]}"
    print(json.dumps(urls), flush=True)
    closed = asyncio.Event()
    loop = asyncio.get_running_loop()
    threading.Thread(
        target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(closed.set)), daemon=True
    ).start()
    await closed.wait()
    # Open connections would each report their cancellation at shutdown; this process
    # holds nothing else, so leave at once (as benchmarks/serve.py does).
    sys.stdout.flush()
    os._exit(0)


def endpoint(quick: bool) -> AbstractContextManager[dict[str, str]]:
    return server_process("-m", "benchmarks.cases.listing_scale", *(["--quick"] if quick else []))


# -- the figures -------------------------------------------------------------------------


def store(url: str, prefix: str, pool: int = 10) -> S3SessionStore:
    """A store as the command line makes one (`s3store ls`, `export --concurrency pool`)."""
    return Connection(BUCKET, prefix, endpoint_url=url, region=REGION).store(pool=pool)


@asynccontextmanager
async def counting(listing: S3SessionStore) -> AsyncIterator[list[int]]:
    """The ListObjectsV2 requests the store sends in the block."""
    sent: list[int] = []
    client = await listing.s3.client()

    def count(**_: Any) -> None:
        sent.append(1)

    client.meta.events.register("before-call.s3.ListObjectsV2", count)
    try:
        yield sent
    finally:
        client.meta.events.unregister("before-call.s3.ListObjectsV2", count)


async def ls_limit_10(url: str, prefix: str) -> tuple[int, float]:
    """Requests and seconds of `ls --limit 10`, client included."""
    start = time.perf_counter()
    async with store(url, prefix) as listing, counting(listing) as sent:
        page = [info async for info in listing.iter_info(limit=10)]
    elapsed = time.perf_counter() - start
    assert len(page) == 10
    return len(sent), elapsed


async def ls_figures(url: str, keys: int, repeat: int) -> list[Result]:
    samples: dict[str, list[float]] = {"large/": [], "ten/": []}
    requests = {}
    await ls_limit_10(url, "ten/")  # imports and first connections, not measured
    for round_number in range(repeat):
        for prefix in ("large/", "ten/") if round_number % 2 else ("ten/", "large/"):
            requests[prefix], elapsed = await ls_limit_10(url, prefix)
            samples[prefix].append(elapsed)
    wall = {prefix: statistics.median(times) * 1e3 for prefix, times in samples.items()}
    name = f"listing_scale.ls_limit_10.{keys}_vs_10_keys"
    return [
        Result(f"{name}.requests", requests["large/"], requests["ten/"], "requests", 1.0),
        Result(f"{name}.wall", wall["large/"], wall["ten/"], "ms wall", 2.0),
    ]


async def peak(fn: Callable[[], Awaitable[int]], expected: int) -> float:
    """The peak of memory allocated while `fn` runs, in KiB."""
    tracemalloc.start()
    try:
        assert await fn() == expected
        _, top = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return top / 1024


async def memory_figures(url: str, counts: dict[str, int]) -> list[Result]:
    small, large = counts["small/"], counts["large/"]
    async with store(url, "small/") as few, store(url, "large/") as many:
        await _count(few)  # connections and imports, not measured
        iter_small = await peak(lambda: _count(few), small)
        iter_large = await peak(lambda: _count(many), large)
        list_large = await peak(lambda: _length(many.list()), large)
    return [
        Result(
            f"listing_scale.iter_ids.peak.{large}_vs_{small}", iter_large, iter_small, "KiB", 1.5
        ),
        Result(f"listing_scale.iter_ids_vs_list.peak.{large}", iter_large, list_large, "KiB"),
    ]


async def _count(listing: S3SessionStore) -> int:
    count = 0
    async for _ in listing.iter_ids():
        count += 1
    return count


async def _length(listed: Awaitable[list[Any]]) -> int:
    return len(await listed)


class Discard(io.BytesIO):
    """A file that keeps nothing written to it."""

    def write(self, data: Any) -> int:
        return len(data)


async def export_at(url: str, sessions: int, concurrency: int) -> Result:
    """`export` of the sessions with `concurrency` reads in flight, against raw aioboto3
    GETs of the same objects as many at a time on a client with as many connections."""
    keys = [f"{EXPORTED}{number}.json" for number in range(sessions)]
    config = AioConfig(max_pool_connections=concurrency)
    async with (
        store(url, EXPORTED, pool=concurrency) as exporter,
        aioboto3.Session().client(
            "s3", endpoint_url=url, region_name=REGION, config=config
        ) as client,
    ):

        async def export() -> None:
            result = await export_sessions(exporter, Discard(), concurrency=concurrency)
            assert result.sessions == sessions

        async def raw_gets() -> None:
            pending = iter(keys)

            async def work() -> None:
                for key in pending:
                    response = await client.get_object(Bucket=BUCKET, Key=key)
                    async with response["Body"] as body:
                        await body.read()

            await asyncio.gather(*(work() for _ in range(concurrency)))

        # Connections opened on both sides, not measured.
        warm = [SessionId(number) for number in range(concurrency)]
        await exporter.load_many(warm, concurrency=concurrency)
        await asyncio.gather(
            *(client.head_object(Bucket=BUCKET, Key=key) for key in keys[:concurrency])
        )
        value, baseline = await _alternate(export, raw_gets, rounds=2)
    return Result(
        f"listing_scale.export.{sessions}.concurrency_{concurrency}",
        value / sessions * 1e3,
        baseline / sessions * 1e3,
        "ms/session",
        2.0,  # loose: both sides are CPU-bound on a busy machine, their ratio swings 0.7-1.5
    )


async def _alternate(
    first: Callable[[], Awaitable[None]], second: Callable[[], Awaitable[None]], rounds: int
) -> tuple[float, float]:
    """Total seconds of each, each going first in every other round."""
    totals = [0.0, 0.0]
    for round_number in range(rounds):
        order = (0, 1) if round_number % 2 == 0 else (1, 0)
        for index in order:
            start = time.perf_counter()
            await (first, second)[index]()
            totals[index] += time.perf_counter() - start
    return totals[0], totals[1]


async def run(servers: Servers, options: Options) -> list[Result]:
    counts = prefixes(options.quick)
    with endpoint(options.quick) as urls:
        results = await ls_figures(urls["fake_slow"], counts["large/"], options.pick(3, 7))
        results += await memory_figures(urls["fake"], counts)
        for concurrency in (16, 64):
            results.append(await export_at(urls["fake_slow"], counts[EXPORTED], concurrency))
    return results


if __name__ == "__main__":
    asyncio.run(serve("--quick" in sys.argv[1:]))
