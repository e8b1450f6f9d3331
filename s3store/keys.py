"""The object key layout: `<prefix><id>.json` or `<prefix><id>(<external id>).json`.

The external id is percent-encoded, keeping only ASCII letters, digits and `-._~`,
so any external id round-trips, no key contains `/` or `..` of its own, and no key
leaves the prefix. Every key maps back to exactly one session id and vice versa.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from s3store.errors import InvalidSessionIdError
from s3store.models import SessionId

__all__ = [
    "MAX_KEY_BYTES",
    "event_name",
    "events_folder",
    "key_name",
    "normalize_prefix",
    "parse_key",
    "parse_name",
    "position_name",
    "session_key",
    "session_name",
]

MAX_KEY_BYTES = 1024
"""S3's limit on the length of an object key, in UTF-8 bytes."""

_SUFFIX = ".json"
_NAME = re.compile(r"(0|[1-9][0-9]*)(?:\(([A-Za-z0-9._~%-]*)\))?")


def normalize_prefix(prefix: str) -> str:
    """Make the prefix end in `/`; `""` stays `""`, meaning the bucket root."""
    return prefix if prefix == "" or prefix.endswith("/") else prefix + "/"


def key_name(session_id: SessionId) -> str:
    """The session's name in its key: `42`, or `42(<percent-encoded external id>)`.

    Made only of ASCII letters, digits and `-._~%()`: safe to print, to pipe and to
    pass back as an argument, and different for every session.
    """
    if not isinstance(session_id, SessionId):
        raise InvalidSessionIdError(
            f"expected a SessionId, got {type(session_id).__name__}: set the session's id "
            "before saving it"
        )
    name = str(session_id.id)
    if session_id.external_id is not None:
        try:
            name += f"({quote(session_id.external_id, safe='')})"
        except UnicodeEncodeError:
            raise InvalidSessionIdError(
                f"external id {session_id.external_id!r} holds an unpaired surrogate, "
                "which is not valid Unicode and cannot be stored: pass valid text"
            ) from None
    return name


def parse_name(name: str) -> SessionId | None:
    """The session a key name (`key_name()`'s form) names, or None when it names none."""
    return parse_key("", name + _SUFFIX)


def session_key(prefix: str, session_id: SessionId) -> str:
    """The object key of a session; raises `InvalidSessionIdError` if there is none."""
    return _within_limit(f"{prefix}{key_name(session_id)}{_SUFFIX}", session_id)


def session_name(prefix: str, session_id: SessionId) -> str:
    """A session's object name under `prefix` (its key without the prefix)."""
    return session_key(prefix, session_id)[len(prefix) :]


def parse_key(prefix: str, key: str) -> SessionId | None:
    """The session id a key names, or None when the key is not one this layout writes."""
    if not key.startswith(prefix) or not key.endswith(_SUFFIX):
        return None
    name = key[len(prefix) : -len(_SUFFIX)]
    if (
        name.isdigit()
        and name.isascii()
        and (name[0] != "0" or name == "0")
        and len(key.encode()) <= MAX_KEY_BYTES
    ):
        # The usual key, `<prefix><id>.json`, is canonical as it stands (ASCII
        # digits, no leading zero, within S3's length), so listing many keys skips
        # the regex and the re-encoding below. SessionId still checks the range.
        try:
            return SessionId(int(name))
        except InvalidSessionIdError:
            return None
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    try:
        external_id = None if match[2] is None else unquote(match[2], errors="strict")
        session_id = SessionId(int(match[1]), external_id)
    except (UnicodeDecodeError, InvalidSessionIdError):
        return None
    # Only the canonical spelling counts, so that two keys never name one session.
    return session_id if session_key(prefix, session_id) == key else None


def events_folder(session_id: SessionId) -> str:
    """Where a session's events are, under the prefix: `<key name>/events/`, a
    sub-folder that `list()`, which does not descend into sub-folders, never sees."""
    return f"{key_name(session_id)}/events/"


def position_name(position: int) -> str:
    """An event's name in its folder: its position, 20 digits, so name order is
    position order."""
    return f"{position:020d}{_SUFFIX}"


def event_name(prefix: str, session_id: SessionId, position: int) -> str:
    """An event's object name under `prefix`; `InvalidSessionIdError` if S3 would
    refuse its key."""
    name = f"{events_folder(session_id)}{position_name(position)}"
    return _within_limit(prefix + name, session_id)[len(prefix) :]


def _within_limit(key: str, session_id: SessionId) -> str:
    size = len(key.encode())
    if size > MAX_KEY_BYTES:
        raise InvalidSessionIdError(
            f"a key of session {key_name(session_id)[:40]}... would be {size} bytes, over "
            f"S3's limit of {MAX_KEY_BYTES}: use a shorter external id or prefix"
        )
    return key
