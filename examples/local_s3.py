"""Your own code against the embedded S3 server: a script, or an integration test's fixture.

`s3store.local.LocalS3` is the server behind `s3store local` and `s3store --local`:
moto on 127.0.0.1, with a bucket set up as terraform/ sets one up (versioning on).
It needs `pip install 's3store[local]'`. Run: `python examples/local_s3.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from s3store import AgentSession, S3SessionStore, SessionId, UserMessage
from s3store.local import LocalS3


def say(session_id: SessionId, text: str) -> Callable[[AgentSession | None], AgentSession]:
    def change(stored: AgentSession | None) -> AgentSession:
        session = stored or AgentSession(id=session_id)
        session.chat_messages.append(UserMessage(content=text))
        return session

    return change


async def conversation(store: S3SessionStore) -> None:
    async with store:
        session_id = SessionId(1, "user-42")
        for text in ("hello", "are you there?"):
            saved = await store.update(session_id, say(session_id, text))
            print(f"{session_id}: {len(saved.chat_messages)} message(s)")
        info = await store.stat(session_id)
        assert info is not None
        print(f"stored as s3://{store.bucket}/{info.key}, version {info.version_id}")
        await store.delete(session_id)
        purged = await store.purge(session_id)
        print(f"purged {purged.versions} versions and {purged.delete_markers} delete marker")


def main() -> None:
    with LocalS3() as server:
        print(f"embedded S3 on {server.endpoint_url}")
        asyncio.run(conversation(server.store()))


if __name__ == "__main__":
    main()
