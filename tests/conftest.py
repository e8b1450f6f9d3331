"""Shared fixtures: one moto S3 server on 127.0.0.1 for the whole run, a fresh bucket per test."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import aioboto3
import pytest
from moto.server import ThreadedMotoServer

from s3store import InMemorySessionStore, S3SessionStore, SessionStore

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

REGION = "us-east-1"


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
    """A moto server on a free port of 127.0.0.1, stopped at the end of the run."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


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
