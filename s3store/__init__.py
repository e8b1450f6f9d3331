"""s3store: async session store for AI agents on Amazon S3.

A Python port of agent-base's `SessionStore`: `save`, `load`, `list` and `delete`
of `AgentSession` snapshots, kept as JSON objects under a bucket prefix.
"""

from s3store.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    BulkOperationError,
    ConfigurationError,
    CorruptSessionError,
    InvalidSessionError,
    InvalidSessionIdError,
    SessionConflictError,
    SessionStoreError,
    SessionTooLargeError,
    StorageError,
    WriteOutcomeUnknownError,
)
from s3store.events import RuntimeEvent
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
from s3store.s3 import Purged, S3SessionStore, SessionInfo, SessionVersion
from s3store.serverless import lambda_handler
from s3store.store import Concurrency, InMemorySessionStore, LoggedEvent, SessionStore

__all__ = [
    "AccessDeniedError",
    "AgentSession",
    "AssistantMessage",
    "Base64Image",
    "BucketNotFoundError",
    "BulkOperationError",
    "ChatMessage",
    "Concurrency",
    "ConfigurationError",
    "CorruptSessionError",
    "CustomMessage",
    "Image",
    "InMemorySessionStore",
    "InvalidSessionError",
    "InvalidSessionIdError",
    "LoggedEvent",
    "Purged",
    "RunState",
    "RuntimeEvent",
    "S3SessionStore",
    "SessionConflictError",
    "SessionId",
    "SessionInfo",
    "SessionStore",
    "SessionStoreError",
    "SessionTooLargeError",
    "SessionVersion",
    "StorageError",
    "SystemMessage",
    "ToolCall",
    "ToolMessage",
    "UrlImage",
    "UserMessage",
    "WriteOutcomeUnknownError",
    "lambda_handler",
]

__version__ = "0.1.0"
