"""s3store: async session store for AI agents on Amazon S3.

A Python port of agent-base's `SessionStore`: `save`, `load`, `list` and `delete`
of `AgentSession` snapshots, kept as JSON objects under a bucket prefix.
"""

from typing import TYPE_CHECKING, Any

from s3store.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    BulkOperationError,
    ConfigurationError,
    CorruptSessionError,
    InvalidSessionError,
    InvalidSessionIdError,
    NoSuchVersionError,
    SessionConflictError,
    SessionStoreError,
    SessionTooLargeError,
    StorageError,
    WriteOutcomeUnknownError,
)
from s3store.models import (
    AgentSession,
    AssistantMessage,
    Base64Image,
    ChatMessage,
    CustomMessage,
    Image,
    RunState,
    SessionId,
    SystemMessage,
    ToolCall,
    ToolMessage,
    UrlImage,
    UserMessage,
)
from s3store.objects import (
    Codec,
    InMemoryObjects,
    ModelCodec,
    ObjectHead,
    ObjectInfo,
    Objects,
    StoredObject,
    StoredVersion,
    Updated,
)
from s3store.s3 import Purged, S3Objects, S3SessionStore, SessionVersion
from s3store.serverless import lambda_handler
from s3store.store import (
    Concurrency,
    InMemorySessionStore,
    LoggedEvent,
    SessionInfo,
    SessionStore,
)

__all__ = [
    "AccessDeniedError",
    "AgentSession",
    "AssistantMessage",
    "Base64Image",
    "BucketNotFoundError",
    "BulkOperationError",
    "ChatMessage",
    "Codec",
    "Concurrency",
    "ConfigurationError",
    "CorruptSessionError",
    "CustomMessage",
    "Image",
    "InMemoryObjects",
    "InMemorySessionStore",
    "InvalidSessionError",
    "InvalidSessionIdError",
    "LoggedEvent",
    "ModelCodec",
    "NoSuchVersionError",
    "ObjectHead",
    "ObjectInfo",
    "Objects",
    "Purged",
    "RunState",
    "RuntimeEvent",
    "S3Objects",
    "S3SessionStore",
    "SessionConflictError",
    "SessionId",
    "SessionInfo",
    "SessionStore",
    "SessionStoreError",
    "SessionTooLargeError",
    "SessionVersion",
    "StorageError",
    "StoredObject",
    "StoredVersion",
    "SystemMessage",
    "ToolCall",
    "ToolMessage",
    "Updated",
    "UrlImage",
    "UserMessage",
    "WriteOutcomeUnknownError",
    "lambda_handler",
]

__version__ = "0.1.0"

if TYPE_CHECKING:
    from s3store.events import RuntimeEvent


def __getattr__(name: str) -> Any:
    # agent-base's event union takes its share of the import: load it on first use.
    if name == "RuntimeEvent":
        from s3store.events import RuntimeEvent

        return RuntimeEvent
    raise AttributeError(f"module 's3store' has no attribute {name!r}")
