"""The one exception hierarchy of s3store: every failure is a `SessionStoreError`."""

from __future__ import annotations

from typing import Any


class SessionStoreError(Exception):
    """Base class of every error s3store raises.

    `bucket` and `key` name the object involved, when there is one; the message
    names them too and says what to do.
    """

    def __init__(self, message: str, *, bucket: str | None = None, key: str | None = None) -> None:
        where = ", ".join(
            f"{name} {value!r}" for name, value in (("bucket", bucket), ("key", key)) if value
        )
        super().__init__(f"{message} ({where})" if where else message)
        self.bucket = bucket
        self.key = key


class ConfigurationError(SessionStoreError, ValueError):
    """The store is set up wrongly (a missing or invalid bucket name, say): fix the settings."""


class InvalidSessionIdError(SessionStoreError, ValueError):
    """A session id that cannot name a stored session (missing, malformed or too long)."""


class InvalidSessionError(SessionStoreError, ValueError):
    """A session that cannot be stored as agent-base reads it, refused before any request.

    `path` names the offending field (such as `chat_messages.3.Custom.data.n`); the
    message says what is wrong with it. Nothing was written.
    """

    def __init__(
        self, message: str, *, path: str, bucket: str | None = None, key: str | None = None
    ) -> None:
        super().__init__(message, bucket=bucket, key=key)
        self.path = path


class CorruptSessionError(SessionStoreError):
    """An object exists under the session's key but is not a valid session.

    The object's bytes are kept in `raw` for inspection; nothing is deleted.
    """

    def __init__(self, message: str, *, raw: bytes, bucket: str | None = None, key: str) -> None:
        super().__init__(message, bucket=bucket, key=key)
        self.raw = raw


class SessionConflictError(SessionStoreError):
    """A conditional save lost a race: the stored session is not the version this copy saw.

    The save was definitely not stored (a save that landed before its answer was
    lost is recognised and succeeds instead).

    Reload the session, apply the change again and save, or use `SessionStore.update()`,
    which does exactly that.
    """


class WriteOutcomeUnknownError(SessionStoreError):
    """A save whose answer was lost, and whose outcome can no longer be told.

    The write may or may not be in the stored session: more later writes were
    built on the stored version than its write history keeps. Unlike
    `SessionConflictError`, this does not mean "not saved": load the session and
    check whether the change is there before making it again.
    """


class SessionTooLargeError(SessionStoreError):
    """A session over the store's `max_session_bytes`: refused before any request.

    Raised by `save()` for the encoded JSON, and by `load()` for an object that
    would not fit in memory as the store allows; raise the limit or trim the session.
    """


class NoSuchVersionError(SessionStoreError):
    """The session has no stored version of that id (`history()` lists the ones it has)."""


class BucketNotFoundError(SessionStoreError):
    """The bucket does not exist (or is not visible to these credentials)."""


class AccessDeniedError(SessionStoreError):
    """S3 refused the request: the credentials lack a permission, or are invalid."""


class StorageError(SessionStoreError):
    """Any other failure of the storage service: `operation` and `code` say which."""

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        code: str | None = None,
        bucket: str | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(message, bucket=bucket, key=key)
        self.operation = operation
        self.code = code


class BulkOperationError(SessionStoreError):
    """Some items of a bulk operation (`load_many`, `save_many`, `delete_many`) failed.

    Every other item was done: `errors` maps each failed session id to its own
    typed error, and `done` lists the ids that succeeded, in input order. For
    `load_many`, `loaded` holds what was loaded (None for sessions that do not
    exist), so no result is lost with the failure. Retry just the ids in `errors`.
    """

    def __init__(
        self,
        operation: str,
        *,
        errors: dict[Any, SessionStoreError],
        done: list[Any],
        loaded: dict[Any, Any] | None = None,
        bucket: str | None = None,
    ) -> None:
        first_id, first = next(iter(errors.items()))
        super().__init__(
            f"{operation}: {len(errors)} of {len(errors) + len(done)} session(s) failed "
            f"(first: {first_id}: {first}); the rest succeeded. Retry the ids in `.errors`",
            bucket=bucket,
        )
        self.operation = operation
        self.errors = errors
        self.done = done
        self.loaded: dict[Any, Any] = loaded if loaded is not None else {}
