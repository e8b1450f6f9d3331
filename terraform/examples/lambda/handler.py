"""An agent turn as a Lambda function, its sessions in the bucket the s3store module made.

The function's environment is the module's `environment` output, so the store
configures itself: `S3SessionStore.from_env()` and nothing else. Event:
`{"session": 42, "text": "hello"}`; result: how many messages the session holds.
"""

from __future__ import annotations

import asyncio
from typing import Any

from s3store import AgentSession, S3SessionStore, SessionId, UserMessage

# Module level, so that warm invocations reuse it; making it does no I/O.
store: S3SessionStore = S3SessionStore.from_env()


def handler(event: dict[str, Any], context: object) -> dict[str, int]:
    session_id = SessionId(int(event["session"]), event.get("external_id"))
    return {"messages": asyncio.run(turn(session_id, str(event["text"])))}


async def turn(session_id: SessionId, text: str) -> int:
    # Each asyncio.run() is a new event loop: open the store's client on it, and
    # close it before the loop ends.
    async with store:

        def add_message(session: AgentSession | None) -> AgentSession:
            session = session or AgentSession(id=session_id)
            session.chat_messages.append(UserMessage(content=text))
            return session

        session = await store.update(session_id, add_message)
        return len(session.chat_messages)
