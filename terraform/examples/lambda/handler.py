"""An agent turn as a Lambda function, its sessions in the bucket the s3store module made.

The function's environment is the module's `environment` output, so the store
configures itself: `S3SessionStore.from_env()` and nothing else. Event:
`{"session": 42, "text": "hello"}`; result: how many messages the session holds.
"""

from __future__ import annotations

from typing import Any

from s3store import AgentSession, S3SessionStore, SessionId, UserMessage, lambda_handler

# Module level: made once per process, with no I/O. Its client opens on first use
# and lives on the process's one event loop, so warm invocations reuse it.
store: S3SessionStore = S3SessionStore.from_env()


@lambda_handler  # one event loop for the process, not one per invocation
async def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    session_id = SessionId(int(event["session"]), event.get("external_id"))

    def add_message(session: AgentSession | None) -> AgentSession:
        session = session or AgentSession(id=session_id)
        session.chat_messages.append(UserMessage(content=str(event["text"])))
        return session

    # Lambda retries an invocation that failed after it saved: the request id
    # makes the retry find its turn already stored instead of adding it again.
    session = await store.update(session_id, add_message, idempotency_key=context.aws_request_id)
    return {"messages": len(session.chat_messages)}
