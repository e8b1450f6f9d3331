"""The server side of a benchmark run, in a process of its own.

Run as `python -m benchmarks.serve`: starts a moto server, a minimal fake S3
endpoint and a latency proxy in front of each, all on 127.0.0.1 with free
ports; prints one JSON line with their URLs; stops when its standard input
closes. Keeping the servers out of the measured process means their CPU and
their hold on the GIL never count as client cost.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from urllib.parse import unquote, urlsplit

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class FakeS3:
    """Just enough of S3 (PUT, GET, HEAD, DELETE of objects) to time a client.

    It does no parsing beyond the request line and headers, checks no
    signature and ignores conditions, so what a benchmark measures against it
    is the client's own cost.
    """

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                if headers.get("expect", "").lower() == "100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                url = urlsplit(target)
                writer.write(self._respond(method, unquote(url.path), url.query, body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _respond(self, method: str, path: str, query: str, body: bytes) -> bytes:
        date = formatdate(usegmt=True)
        if method == "POST" and query.startswith("delete"):
            # DeleteObjects in quiet mode: delete every listed key, report no errors.
            bucket = path.rstrip("/")
            for key in re.findall(rb"<Key>(.*?)</Key>", body):
                self.objects.pop(f"{bucket}/{html.unescape(key.decode())}", None)
            result = b'<?xml version="1.0" encoding="UTF-8"?><DeleteResult></DeleteResult>'
            return _response(200, {"Content-Type": "application/xml", "Date": date}, result)
        if method == "PUT":
            etag = f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'
            self.objects[path] = (body, etag)
            return _response(200, {"ETag": etag, "Date": date}, b"")
        stored = self.objects.get(path)
        if method == "DELETE":
            self.objects.pop(path, None)
            return _response(204, {"Date": date}, b"")
        if stored is None:
            error = b"<Error><Code>NoSuchKey</Code><Message>none</Message></Error>"
            return _response(404, {"Content-Type": "application/xml", "Date": date}, error)
        data, etag = stored
        headers = {
            "ETag": etag,
            "Content-Type": "application/json",
            "Last-Modified": date,
            "Date": date,
        }
        return _response(200, headers, b"" if method == "HEAD" else data, len(data))


def _response(
    status: int, headers: dict[str, str], body: bytes, length: int | None = None
) -> bytes:
    reason = {200: "OK", 204: "No Content", 404: "Not Found"}[status]
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if status != 204:
        lines.append(f"Content-Length: {len(body) if length is None else length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def latency_proxy(upstream_port: int, delay: float) -> Handler:
    """A TCP relay that holds every byte sent towards the server for `delay` seconds.

    Bytes keep their order and stream at full speed after the delay, like a
    link with that one-way latency: each request/response exchange gains
    `delay`, and a client that waits for `100 Continue` before sending a body
    pays it twice, as it would on a real network.
    """

    async def relay(
        client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def receive() -> None:
            while data := await client_reader.read(1 << 16):
                queue.put_nowait((loop.time() + delay, data))
            queue.put_nowait((loop.time() + delay, b""))

        async def forward() -> None:
            while True:
                due, data = await queue.get()
                await asyncio.sleep(due - loop.time())
                if not data:
                    server_writer.write_eof()
                    return
                server_writer.write(data)
                await server_writer.drain()

        async def answer() -> None:
            while data := await server_reader.read(1 << 16):
                client_writer.write(data)
                await client_writer.drain()
            client_writer.close()

        tasks = [asyncio.create_task(job()) for job in (receive, forward, answer)]
        try:
            await asyncio.gather(*tasks)
        except (ConnectionError, OSError):
            pass
        finally:
            for task in tasks:
                task.cancel()
            client_writer.close()
            server_writer.close()

    return relay


async def _serve(handler: Handler) -> int:
    server = await asyncio.start_server(handler, "127.0.0.1", 0, backlog=1024)
    return int(server.sockets[0].getsockname()[1])


async def main(delay: float) -> None:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    moto_port = moto.get_host_and_port()[1]
    fake_port = await _serve(FakeS3().handle)
    urls = {
        "moto": f"http://127.0.0.1:{moto_port}",
        "moto_slow": f"http://127.0.0.1:{await _serve(latency_proxy(moto_port, delay))}",
        "fake": f"http://127.0.0.1:{fake_port}",
        "fake_slow": f"http://127.0.0.1:{await _serve(latency_proxy(fake_port, delay))}",
    }
    print(json.dumps(urls), flush=True)
    stdin_closed = asyncio.Event()
    loop = asyncio.get_running_loop()
    threading.Thread(
        target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stdin_closed.set)),
        daemon=True,
    ).start()
    await stdin_closed.wait()
    moto.stop()
    # Open relays and connections would each report their cancellation at
    # shutdown; this process holds nothing else, so leave at once.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 0.02))
