"""Save, load, list and delete an agent session on an embedded moto S3 server.

Run with `make demo`; needs the test extra (moto[server]) for the embedded server.
"""

from __future__ import annotations

import asyncio
import logging

import aioboto3
from moto.server import ThreadedMotoServer

from s3store import (
    AgentSession,
    AssistantMessage,
    S3SessionStore,
    SessionId,
    ToolCall,
    ToolMessage,
    UserMessage,
)

BUCKET = "agent-sessions"
# The embedded server accepts any credentials; real ones are never needed here.
LOCAL = aioboto3.Session(
    aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1"
)


async def agent_session(endpoint_url: str) -> None:
    async with LOCAL.client("s3", endpoint_url=endpoint_url) as s3:
        await s3.create_bucket(Bucket=BUCKET)

    async with S3SessionStore(BUCKET, session=LOCAL, endpoint_url=endpoint_url) as store:
        session_id = SessionId(1, "user-42")
        session = await store.load(session_id) or AgentSession(id=session_id)
        session.chat_messages += [
            UserMessage(content="What is in README.md?"),
            AssistantMessage(tool_calls=[ToolCall(id="c1", name="read_file", arguments="{}")]),
            ToolMessage(tool_call_id="c1", content="# s3store"),
            AssistantMessage(content="A heading: s3store."),
        ]
        session.total_tool_calls += 1
        await store.save(session)
        print(f"saved session {session_id} under s3://{BUCKET}/{store.prefix}")

        loaded = await store.load(session_id)
        assert loaded == session
        print(f"loaded it back: {len(loaded.chat_messages)} messages, equal to what was saved")
        print(f"sessions in the bucket: {[str(i) for i in await store.list()]}")
        await store.delete(session_id)
        print(f"deleted; sessions left: {await store.list()}")


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        print(f"embedded S3 (moto) on http://{host}:{port}")
        asyncio.run(agent_session(f"http://{host}:{port}"))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
