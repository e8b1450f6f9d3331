"""Shared fixtures: one S3 server on 127.0.0.1 for the whole run, a fresh bucket per test.

The server is moto unless `S3STORE_TEST_SERVER=localstack` (what `make test-localstack`
sets): LocalStack's own S3 implementation, started from `.venv-localstack`. Tests
marked `moto_only("what LocalStack lacks")` are skipped there, saying why.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import aioboto3
import pytest

from s3store import InMemorySessionStore, S3SessionStore, SessionStore
from s3store.local import MotoServer

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

REGION = "us-east-1"
SERVER = os.environ.get("S3STORE_TEST_SERVER", "moto")
LOCALSTACK_PYTHON = Path(__file__).parents[1] / ".venv-localstack" / "bin" / "python"
FRAMEWORK_SUITES = frozenset(
    ("test_strands.py", "test_adk.py", "test_openai_agents.py", "test_langgraph.py")
)
FRAMEWORKS_ONCE = (
    "the framework adapters run once, on moto: what they store goes through the object "
    "layer, which this run tests on LocalStack"
)


def pytest_configure(config: pytest.Config) -> None:
    if SERVER not in ("moto", "localstack"):
        raise pytest.UsageError(f"S3STORE_TEST_SERVER={SERVER!r}: use moto or localstack")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker("moto_only")
        if marker is not None and not marker.args:
            raise pytest.UsageError(f"{item.nodeid}: moto_only needs what LocalStack lacks")
        if SERVER != "localstack":
            continue
        if marker is not None:
            item.add_marker(pytest.mark.skip(reason=f"LocalStack: {marker.args[0]}"))
        elif item.path.name == "test_terraform.py":
            item.add_marker(pytest.mark.skip(reason="the Terraform tests apply the module to moto"))
        elif item.path.name in FRAMEWORK_SUITES:
            item.add_marker(pytest.mark.skip(reason=FRAMEWORKS_ONCE))


@pytest.fixture(scope="session", autouse=True)
def aws_test_credentials() -> Iterator[None]:
    """Fake credentials, so that nothing can ever reach real AWS with real ones."""
    saved = dict(os.environ)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """The URL of the run's S3 server (moto, or LocalStack: see the module's docstring),
    on a free port of 127.0.0.1, stopped at the end of the run. moto is served one
    request at a time (`MotoServer`), since it does not apply a conditional write atomically."""
    if SERVER == "localstack":
        yield from localstack()
        return
    server = MotoServer()
    yield server.start()
    server.stop()


def localstack() -> Iterator[str]:
    """LocalStack's S3 and KMS on a free port of 127.0.0.1, its state in a temporary folder."""
    if not LOCALSTACK_PYTHON.exists():
        pytest.exit("no .venv-localstack: `make test-localstack` creates it", returncode=2)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as state, open(Path(state) / "log", "wb") as log:
        environment = {
            **os.environ,
            "SERVICES": "s3,kms",
            "GATEWAY_LISTEN": f"127.0.0.1:{port}",
            "GATEWAY_SERVER": "hypercorn",  # the default gateway binds 0.0.0.0 regardless
            "DNS_ADDRESS": "0",
            "EAGER_SERVICE_LOADING": "1",
            "LOCALSTACK_VOLUME_DIR": state,
            "FILESYSTEM_ROOT": state,
        }
        process = subprocess.Popen(
            [str(LOCALSTACK_PYTHON), "-m", "localstack.runtime.main"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for(f"{url}/_localstack/health", process)
            yield url
        finally:
            stop(process)


def wait_for(health: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.exit(f"LocalStack exited with {process.returncode}", returncode=2)
        try:
            with urllib.request.urlopen(health, timeout=2) as answer:
                services = json.loads(answer.read()).get("services", {})
            if services.get("s3") in ("running", "available"):
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    pytest.exit("LocalStack did not answer within 90 s", returncode=2)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL: one LocalStack shutdown in nine hangs on SIGTERM."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="session")
async def s3(moto_url: str) -> AsyncIterator[S3Client]:
    """A plain aioboto3 client, to look at the bucket without going through the store."""
    async with aioboto3.Session().client("s3", endpoint_url=moto_url, region_name=REGION) as client:
        yield client


@pytest.fixture
async def bucket(s3: S3Client) -> str:
    name = f"test-{uuid.uuid4().hex[:20]}"
    await s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
async def s3_store(moto_url: str, bucket: str) -> AsyncIterator[S3SessionStore]:
    async with S3SessionStore(bucket, endpoint_url=moto_url, region_name=REGION) as store:
        yield store


@pytest.fixture(params=["memory", "s3"])
def store(request: pytest.FixtureRequest) -> SessionStore:
    """Each store implementation in turn: the contract suite runs against both."""
    if request.param == "memory":
        return InMemorySessionStore()
    store: S3SessionStore = request.getfixturevalue("s3_store")
    return store
