"""The embedded moto server applies each request atomically, as S3 does."""

from __future__ import annotations

import asyncio
import http.client
import os
import socket
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from urllib.parse import urlsplit

import aioboto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from s3store.errors import ConfigurationError
from s3store.local import LOCAL_CREDENTIALS, LOCAL_REGION, LocalS3, MotoServer

ROUNDS = 100
RIVALS = 16


@pytest.fixture
def own_moto() -> Iterator[str]:
    """A server of its own, whatever server the rest of the suite runs on, with threads
    switching as often as they can, so a race between two requests shows up at once."""
    interval = sys.getswitchinterval()
    server = MotoServer()
    sys.setswitchinterval(1e-6)
    try:
        yield server.start()
    finally:
        sys.setswitchinterval(interval)
        server.stop()


async def test_one_of_several_rival_conditional_puts_lands(own_moto: str) -> None:
    """Bare moto checks If-Match, then writes: rivals holding one ETag can all land
    (two of 16 landed in 5 of 100 rounds with moto 5.2.5's own ThreadedMotoServer)."""
    session = aioboto3.Session(region_name="us-east-1")
    async with session.client("s3", endpoint_url=own_moto) as s3:
        await s3.create_bucket(Bucket="race")

        async def put(etag: str, body: bytes) -> str:
            try:
                await s3.put_object(Bucket="race", Key="k", Body=body, IfMatch=etag)
            except ClientError as error:
                return str(error.response["Error"]["Code"])
            return "landed"

        rounds = []
        for round_ in range(ROUNDS):
            etag = (await s3.put_object(Bucket="race", Key="k", Body=b"base"))["ETag"]
            bodies = [f"{round_}-{rival}".encode() for rival in range(RIVALS)]
            rounds.append(Counter(await asyncio.gather(*(put(etag, body) for body in bodies))))
    assert rounds == [Counter(landed=1, PreconditionFailed=RIVALS - 1)] * ROUNDS


@pytest.fixture
def local_s3() -> Iterator[LocalS3]:
    """A server and bucket of their own (moto's buckets are shared by a process's servers)."""
    with LocalS3(f"local-{uuid.uuid4().hex[:12]}") as server:
        yield server


def server_headers(
    endpoint_url: str, method: str, path: str, **headers: str
) -> tuple[int, list[str]]:
    """The status and the `Server` headers of one signed HTTP request, as sent on the wire."""
    body = b"body" if method == "PUT" else None
    request = AWSRequest(method=method, url=endpoint_url + path, data=body, headers=headers)
    S3SigV4Auth(Credentials(*LOCAL_CREDENTIALS), "s3", LOCAL_REGION).add_auth(request)
    address = urlsplit(endpoint_url)
    assert address.hostname is not None
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=dict(request.headers.items()))
        answer = connection.getresponse()
        answer.read()
        return answer.status, answer.headers.get_all("Server") or []
    finally:
        connection.close()


def test_every_answer_has_one_server_header(local_s3: LocalS3) -> None:
    """moto puts a Server header on its error answers and werkzeug adds its own: two,
    which aiohttp refuses in debug mode (a 404 from load() became a StorageError)."""
    key = f"/{local_s3.bucket}/k"
    answers = [
        server_headers(local_s3.endpoint_url, "GET", f"/{local_s3.bucket}/missing"),
        server_headers(local_s3.endpoint_url, "PUT", key),
        server_headers(local_s3.endpoint_url, "PUT", key, **{"If-None-Match": "*"}),
        server_headers(local_s3.endpoint_url, "GET", key),
    ]
    assert [status for status, _ in answers] == [404, 200, 412, 200]
    assert [len(servers) for _, servers in answers] == [1, 1, 1, 1], answers


DEBUG_MODE_SCRIPT = """
import asyncio

import aiohttp.helpers

from s3store import AgentSession, S3SessionStore, SessionConflictError, SessionId


async def main() -> None:
    assert aiohttp.helpers.DEBUG, "aiohttp parses strictly only in debug mode"
    async with S3SessionStore.from_env() as first, S3SessionStore.from_env() as second:
        session_id = SessionId(1, "user-42")
        assert await first.load(session_id) is None
        await first.save(AgentSession(id=session_id))
        try:
            await second.save(AgentSession(id=session_id))
        except SessionConflictError:
            print("conflict")


asyncio.run(main())
"""


@pytest.mark.parametrize(
    ("options", "variables"),
    [(["-X", "dev"], {}), ([], {"PYTHONASYNCIODEBUG": "1"})],
    ids=["X-dev", "PYTHONASYNCIODEBUG"],
)
def test_store_works_in_asyncio_debug_mode(
    local_s3: LocalS3, options: list[str], variables: dict[str, str]
) -> None:
    """aiohttp reads debug mode once, at import, from `python -X dev` or
    PYTHONASYNCIODEBUG (not from loop.set_debug()), so the store runs in a process
    of its own: a missing session loads as None, a create conflict is a conflict."""
    result = subprocess.run(
        [sys.executable, *options, "-c", DEBUG_MODE_SCRIPT],
        env={**os.environ, **local_s3.environment("debug/"), **variables},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, "conflict\n"), result.stderr


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 that another socket listens on."""
    with socket.create_server(("127.0.0.1", 0)) as holder:
        yield holder.getsockname()[1]


def test_busy_port_is_a_configuration_error(busy_port: int) -> None:
    with pytest.raises(ConfigurationError, match=f"port {busy_port} on 127.0.0.1 is in use"):
        MotoServer(port=busy_port).start()
    with pytest.raises(ConfigurationError, match="is in use"), LocalS3(port=busy_port):
        pass


def test_local_command_on_a_busy_port_is_a_usage_error(busy_port: int) -> None:
    """Werkzeug printed two lines of its own and exited with 1."""
    result = subprocess.run(
        [sys.executable, "-m", "s3store", "local", "--port", str(busy_port)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        f"s3store: port {busy_port} on 127.0.0.1 is in use by another program: stop it, "
        "or choose another port (--port for s3store local; 0 picks a free one)"
    ]


def test_local_command_with_a_bucket_s3_refuses_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "s3store", "local", "--bucket", "x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("s3store: 'x' is not a valid S3 bucket name")
    assert "Traceback" not in done.stderr
