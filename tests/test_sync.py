"""BackgroundLoop: sync calls of a store's coroutines from any thread, one client for all."""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings

import pytest

from s3store import AgentSession, S3SessionStore, SessionId
from s3store.sync import BackgroundLoop
from tests.conftest import REGION


def test_calls_from_threads_and_running_loops_share_one_client(moto_url: str, bucket: str) -> None:
    store = S3SessionStore(bucket, endpoint_url=moto_url, region_name=REGION)
    background = BackgroundLoop()
    opened: list[object] = []
    try:
        background.run(store.save(AgentSession(id=SessionId(1))))
        opened.append(background.run(store.s3.client()))

        def in_a_thread() -> None:
            opened.append(background.run(store.s3.client()))

        worker = threading.Thread(target=in_a_thread)
        worker.start()
        worker.join()

        async def inside_a_running_loop() -> list[SessionId]:
            opened.append(background.run(store.s3.client()))
            return background.run(store.list())

        assert asyncio.run(inside_a_running_loop()) == [SessionId(1)]
    finally:
        background.close()
    assert len(opened) == 3
    assert opened[0] is opened[1] is opened[2]


def test_a_call_from_its_own_thread_is_refused(moto_url: str, bucket: str) -> None:
    store = S3SessionStore(bucket, endpoint_url=moto_url, region_name=REGION)
    background = BackgroundLoop()

    async def from_the_loop_itself() -> None:
        background.run(store.list())

    try:
        with pytest.raises(RuntimeError, match="await the async method instead"):
            background.run(from_the_loop_itself())
    finally:
        background.close()


def test_close_closes_the_client_and_a_later_call_starts_again(moto_url: str, bucket: str) -> None:
    store = S3SessionStore(bucket, endpoint_url=moto_url, region_name=REGION)
    background = BackgroundLoop()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unclosed aiohttp session warns
        background.run(store.list())
        background.close()
        assert background.run(store.list()) == []
        background.close()
        gc.collect()
