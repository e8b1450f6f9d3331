"""An HTTP proxy on 127.0.0.1 that stands between a store and moto and injects faults.

Each request draws at most one fault, at the set rates, from a seeded random
generator, so a run can be repeated. It speaks just enough HTTP/1.1 for botocore:
keep-alive, `Expect: 100-continue`, bodies with a Content-Length.
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping

import aiohttp


class Fault(enum.Enum):
    ERROR_500 = "500 InternalError"
    SLOWDOWN_503 = "503 SlowDown"
    CONFLICT_409 = "409 ConditionalRequestConflict"
    BAD_GATEWAY_502 = "502 BadGateway"
    SKEWED_403 = "403 RequestTimeTooSkewed"
    UNKNOWN_KEY_403 = "403 InvalidAccessKeyId"
    RESET_BEFORE = "reset before the server saw the request"
    RESET_AFTER = "reset after the server applied the request"
    TRUNCATE = "response body cut short"
    ALTER = "response body altered"
    LATENCY = "added latency"
    STALL = "stall past the read timeout"
    STALL_BODY = "body stalls past the read timeout, half sent"
    ALTER_REQUEST = "request body altered on its way to the server"


_ERRORS = {
    Fault.ERROR_500: (500, "Internal Server Error", "InternalError"),
    Fault.SLOWDOWN_503: (503, "Slow Down", "SlowDown"),
    Fault.CONFLICT_409: (409, "Conflict", "ConditionalRequestConflict"),
    Fault.BAD_GATEWAY_502: (502, "Bad Gateway", "BadGateway"),
    Fault.SKEWED_403: (403, "Forbidden", "RequestTimeTooSkewed"),
    Fault.UNKNOWN_KEY_403: (403, "Forbidden", "InvalidAccessKeyId"),
}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "content-length"}


class FaultProxy:
    """`async with FaultProxy(upstream, rates) as url:` and point the store at `url`."""

    def __init__(
        self,
        upstream: str,
        rates: Mapping[Fault, float],
        *,
        latency: float | tuple[float, float] = 0.05,
        stall: float = 1.0,
        seed: int = 0,
        script: Iterable[Fault | None] = (),
        methods: Iterable[str] | None = None,
        after_applied: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if sum(rates.values()) > 1:
            raise ValueError("fault rates add up to more than 1")
        self.upstream = upstream
        self.rates = dict(rates)
        self.latency = latency
        self.stall = stall
        self.injected: Counter[Fault] = Counter()
        self.requests = 0
        self.by_method: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._script = deque(script)  # drawn first, one per request, before the rates
        # Only requests of these methods draw faults (None: every request).
        self._methods = None if methods is None else frozenset(methods)
        # Awaited when a request was applied and its answer is about to be lost: a
        # rival writes while the client still waits for that answer.
        self._after_applied = after_applied
        self._server: asyncio.Server | None = None
        self._http: aiohttp.ClientSession | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> str:
        self._http = aiohttp.ClientSession(auto_decompress=False)
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        assert self._http is not None
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        await self._http.close()

    def _draw(self) -> Fault | None:
        if self._script:
            return self._script.popleft()
        point = self._random.random()
        for fault, rate in self.rates.items():
            if point < rate:
                return fault
            point -= rate
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while await self._exchange(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away, as clients do after a timeout
        except asyncio.CancelledError:
            pass  # the proxy is shutting down: end the connection quietly
        finally:
            self._connections.discard(task)
            writer.transport.abort()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; False when the connection is to be dropped."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        request_line, *header_lines = head.decode("latin-1").split("\r\n")[:-2]
        method, target, _ = request_line.split(" ", 2)
        headers = [tuple(line.split(":", 1)) for line in header_lines]
        fields = {name.strip().lower(): value.strip() for name, value in headers}
        if fields.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = await reader.readexactly(int(fields.get("content-length", "0")))

        self.requests += 1
        self.by_method[method] += 1
        fault = self._draw() if self._methods is None or method in self._methods else None
        if fault is not None:
            self.injected[fault] += 1
        if fault is Fault.LATENCY:
            # A range is drawn per request: requests sent in one order land in another.
            latency = self.latency
            await asyncio.sleep(
                self._random.uniform(*latency) if isinstance(latency, tuple) else latency
            )
        if fault is Fault.RESET_BEFORE:
            return False
        if fault in _ERRORS:
            status, reason, code = _ERRORS[fault]  # type: ignore[index]
            error = f"<Error><Code>{code}</Code><Message>{reason}</Message></Error>".encode()
            writer.write(_response_head(status, reason, [], len(error)) + error)
            await writer.drain()
            return True

        if fault is Fault.ALTER_REQUEST and body:
            middle = len(body) // 2
            body = body[:middle] + bytes([body[middle] ^ 0x01]) + body[middle + 1 :]
        assert self._http is not None
        forwarded = {name.strip(): value.strip() for name, value in headers}
        for name in list(forwarded):
            if name.lower() in _HOP_BY_HOP:
                del forwarded[name]
        async with self._http.request(
            method, self.upstream + target, headers=forwarded, data=body
        ) as response:
            payload = await response.read()
            status, reason = response.status, response.reason or ""
            upstream_headers = [
                (name.decode(), value.decode()) for name, value in response.raw_headers
            ]

        if fault in (Fault.TRUNCATE, Fault.ALTER, Fault.STALL_BODY) and not payload:
            self.injected[fault] -= 1  # no body to damage: it becomes a reset after all
            fault = Fault.RESET_AFTER
            self.injected[fault] += 1
        if fault is Fault.ALTER:
            middle = len(payload) // 2
            payload = payload[:middle] + bytes([payload[middle] ^ 0x20]) + payload[middle + 1 :]
        if fault is Fault.RESET_AFTER:
            if self._after_applied is not None:
                await self._after_applied()
            return False
        if fault is Fault.STALL:
            await asyncio.sleep(self.stall)  # the client has given up by now
        keep = [(n, v) for n, v in upstream_headers if n.lower() not in _HOP_BY_HOP]
        if method == "HEAD":
            length = int(dict((n.lower(), v) for n, v in upstream_headers).get("content-length", 0))
        else:
            length = len(payload)
        writer.write(_response_head(status, reason, keep, length))
        if fault in (Fault.TRUNCATE, Fault.STALL_BODY):
            writer.write(payload[: len(payload) // 2])
            await writer.drain()
            if fault is Fault.STALL_BODY:
                await asyncio.sleep(self.stall)  # the client has given up by now
            return False
        writer.write(payload)
        await writer.drain()
        return True


def _response_head(status: int, reason: str, headers: list[tuple[str, str]], length: int) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{n}: {v}" for n, v in headers)]
    lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
