"""Write history: which saves a stored session version is built from.

Every save stores, in the object's user metadata, a token of its own followed by
the tokens of the version it replaced, newest first, at most `HISTORY_LENGTH` of
them. When a save's answer is lost and its retry meets another version, the
history of what is stored now says whether the lost write landed (its token is
there, even if later writes superseded it), did not land (someone else's write
follows the version it was built on, or the whole lineage is visible without
it), or cannot be told any more (the token may have fallen off the end).

An `update()` with an idempotency key uses a token derived from the key, so the
stored history also says whether that key's change was already applied.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets

__all__ = [
    "HISTORY_LENGTH",
    "METADATA_KEY",
    "Outcome",
    "decode",
    "encode",
    "extend",
    "key_token",
    "new_token",
    "outcome",
]

METADATA_KEY = "s3store-writes"
"""The user-metadata key (S3 sends it as `x-amz-meta-s3store-writes`)."""

HISTORY_LENGTH = 100
"""Tokens kept per object: 100 tokens of 16 hex digits, comma-separated, plus the
key make 1,713 bytes, within S3's 2 KB limit on user metadata."""

# A whole history: one match over the text, not one per token (a read decodes one).
_HISTORY = re.compile(r"[0-9a-f]{16}(?:,[0-9a-f]{16})*")


def new_token() -> str:
    """A random token for one save: 64 bits, so two saves never share one."""
    return secrets.token_hex(8)


def key_token(idempotency_key: str) -> str:
    """The token of an idempotency key: a digest, so a key of any length and text fits."""
    data = idempotency_key.encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:16]


def extend(token: str, base: tuple[str, ...]) -> tuple[str, ...]:
    """The history of a write with `token` built on a version whose history is `base`."""
    return (token, *base[: HISTORY_LENGTH - 1])


def encode(history: tuple[str, ...]) -> str:
    return ",".join(history)


def decode(text: str | None) -> tuple[str, ...]:
    """A history read from metadata; anything that is not one (another tool's) is empty."""
    return tuple(text.split(",")) if text and _HISTORY.fullmatch(text) else ()


class Outcome(enum.Enum):
    """What became of a write whose answer was lost, judged from the stored history."""

    CURRENT = "landed, and is the stored version"
    SUPERSEDED = "landed, and later writes were built on it"
    NOT_LANDED = "did not land"
    UNKNOWN = "cannot be told: it may have fallen off the bounded history"


def outcome(token: str, base: tuple[str, ...], stored: tuple[str, ...] | None) -> Outcome:
    """What became of the write with `token`, built on `base`, given the `stored` history.

    `stored` is None when no object is stored: a delete ends a lineage, and a write
    it removed counts as not landed. Only s3store's writes carry a history, so a
    write by another tool (agent-base itself, say) starts a new lineage the same way.
    """
    if stored is None:
        return Outcome.NOT_LANDED
    if stored and stored[0] == token:
        return Outcome.CURRENT
    if token in stored:
        return Outcome.SUPERSEDED
    if len(stored) < HISTORY_LENGTH:
        return Outcome.NOT_LANDED  # the whole lineage is in view, and the write is not in it
    if base and base[0] in stored:
        return Outcome.NOT_LANDED  # another write follows the version it was built on
    return Outcome.UNKNOWN
