"""LangGraph checkpoints in S3: `S3Saver`, a `BaseCheckpointSaver` on s3store's object layer.

`pip install 's3store[langgraph]'`, then `graph = builder.compile(checkpointer=S3Saver(bucket))`.

The layout, under the store's prefix (each part percent-encoded; `<ns>` is `root` for
the root namespace and `ns-<namespace>` for a subgraph's):

    langgraph/<thread>/<ns>/checkpoints/<inverted id>                 a checkpoint
    langgraph/<thread>/<ns>/checkpoints/<inverted id>/<task>.<index>  one of its pending writes
    langgraph/<thread>/<ns>/blobs/<channel>/<version>                 a large channel value

Checkpoint ids are uuid6, ordered by time; each hex digit of the id is inverted in
the name, so a listing, which S3 returns in name order, returns the newest first,
each checkpoint followed by its own pending writes. The latest checkpoint of a
thread is then one small LIST and one GET (and a GET for each of its large values
and pending writes, all at once), and `alist()` reads only the checkpoints it
returns. A channel value of up to `INLINE_BYTES` is kept in each checkpoint that
holds it; a larger one is stored once per (channel, version) and shared by every
checkpoint that references it. A checkpoint is stored after its new large values,
so a reader that finds it finds them.

Every object holds the serializer's bytes as they are (`serde.dumps_typed`), with
their type tag, in a small msgpack map: no JSON escaping, no base64. Checkpoints,
blobs and ordinary pending writes are created only if absent: a checkpoint id
stored twice is a `SessionConflictError`, a write retried is kept once, and a blob
already stored is shared. A write to a special channel (an error, an interrupt, a
resume) replaces the task's earlier one, as LangGraph's own savers do.

The async methods run on the caller's event loop; the sync ones (`put`,
`get_tuple`, `list`, ...) run the same coroutines on a `BackgroundLoop` with an
S3 client of its own, so a process may use both. A sync call from that loop's own
thread would wait for itself and is refused: await the async method there instead.
"""

from __future__ import annotations

import asyncio
import builtins
import random
import re
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from contextlib import aclosing, suppress
from typing import Any, NamedTuple
from urllib.parse import quote, unquote

import ormsgpack
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from typing_extensions import Self

from s3store.errors import InvalidSessionIdError, SessionConflictError, SessionStoreError
from s3store.objects import InMemoryObjects, Objects
from s3store.s3 import S3Objects
from s3store.sync import BackgroundLoop

__all__ = ["INLINE_BYTES", "S3Saver"]

INLINE_BYTES = 1024
"""A channel value whose serialized bytes are up to this size is kept in each
checkpoint that holds it, so loading the checkpoint takes no request for it; a
larger one is a blob, stored once and shared."""

ROOT = "langgraph/"
OCTET_STREAM = "application/octet-stream"
# The latest checkpoint is the first name of its namespace's listing; the names
# after it are its pending writes (usually none), then the next checkpoint.
LATEST_PAGE = 32
READ_BATCH = 16
"""Checkpoints `alist()` reads at a time (fewer when its limit leaves fewer to return)."""
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_INVERT = str.maketrans("0123456789abcdef", "fedcba9876543210")

Typed = tuple[str, bytes]


class _Entry(NamedTuple):
    """A checkpoint as a listing names it, with the names of its pending writes."""

    name: str
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    writes: builtins.list[str]


class _Record(NamedTuple):
    """A stored checkpoint, decoded but for its channel values."""

    checkpoint: Checkpoint
    metadata: CheckpointMetadata
    parent_id: str | None
    inline: dict[str, Typed]
    blobs: dict[str, Any]  # channel -> version


class S3Saver(BaseCheckpointSaver[str]):
    """LangGraph's checkpointer on S3 (see the module's docs for the layout).

    `S3Saver(bucket, **options)` takes `S3Objects`' keyword options (`prefix`,
    `endpoint_url`, `region_name`, `kms_key_id`, `max_object_bytes`, ...) and
    LangGraph's `serde`; `S3Saver.from_env()` reads the bucket, prefix and KMS key
    from the environment, and `S3Saver.in_memory()` is the twin for unit tests.
    """

    objects: Objects
    """The object layer the async methods use (on the caller's event loop)."""

    def __init__(
        self, bucket: str, *, serde: SerializerProtocol | None = None, **options: Any
    ) -> None:
        self._setup(S3Objects(bucket, **options), S3Objects(bucket, **options), serde)

    @classmethod
    def from_env(cls, *, serde: SerializerProtocol | None = None, **options: Any) -> Self:
        """A saver configured as `S3Objects.from_env()` is: `S3STORE_BUCKET`,
        `S3STORE_PREFIX`, `S3STORE_KMS_KEY_ID`; keyword options win over them."""
        saver = cls.__new__(cls)
        saver._setup(S3Objects.from_env(**options), S3Objects.from_env(**options), serde)
        return saver

    @classmethod
    def in_memory(
        cls, objects: InMemoryObjects | None = None, *, serde: SerializerProtocol | None = None
    ) -> Self:
        """A saver over `InMemoryObjects` (new ones unless given), with S3's semantics."""
        saver = cls.__new__(cls)
        shared = objects if objects is not None else InMemoryObjects()
        saver._setup(shared, shared, serde)
        return saver

    def _setup(
        self, objects: Objects, sync_objects: Objects, serde: SerializerProtocol | None
    ) -> None:
        super().__init__(serde=serde)
        self.objects = objects
        # An S3 client belongs to one running loop: the background loop needs its own.
        self._sync_objects = sync_objects
        self._background = BackgroundLoop("s3store langgraph")

    async def __aenter__(self) -> Self:
        await self.objects.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.objects.close()

    def close(self) -> None:
        """Stop the sync methods' background loop, closing its client (at exit otherwise)."""
        self._background.close()

    # -- the async API ----------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint `config` names (its `checkpoint_id`, else the latest of
        its thread and namespace), with its channel values and pending writes."""
        return await self._get_tuple(self.objects, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Checkpoints newest first: of `config`'s thread (and namespace, if it has
        one), or of every thread; those whose metadata has `filter`'s items, older
        than `before`'s checkpoint, at most `limit`."""
        async with aclosing(self._list(self.objects, config, filter, before, limit)) as items:
            async for item in items:
                yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store the checkpoint (its changed large channel values first); the config
        that names it. A checkpoint id already stored is a `SessionConflictError`."""
        return await self._put(self.objects, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's writes as pending writes of `config`'s checkpoint."""
        await self._put_writes(self.objects, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, pending write and blob of the thread."""
        await self._delete_thread(self.objects, thread_id)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every object of one thread to another; what the target holds is kept."""
        await self._copy_thread(self.objects, source_thread_id, target_thread_id)

    # -- the sync API: the same coroutines, on the background loop -------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """`aget_tuple()`, from synchronous code."""
        return self._background.run(self._get_tuple(self._sync_objects, config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """`alist()`, from synchronous code: one checkpoint at a time."""
        items = self._list(self._sync_objects, config, filter, before, limit)
        while True:
            try:
                yield self._background.run(_next(items))
            except StopAsyncIteration:
                return

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """`aput()`, from synchronous code."""
        return self._background.run(
            self._put(self._sync_objects, config, checkpoint, metadata, new_versions)
        )

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """`aput_writes()`, from synchronous code."""
        self._background.run(
            self._put_writes(self._sync_objects, config, writes, task_id, task_path)
        )

    def delete_thread(self, thread_id: str) -> None:
        """`adelete_thread()`, from synchronous code."""
        self._background.run(self._delete_thread(self._sync_objects, thread_id))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """`acopy_thread()`, from synchronous code."""
        self._background.run(
            self._copy_thread(self._sync_objects, source_thread_id, target_thread_id)
        )

    def get_next_version(self, current: str | None, channel: None) -> str:
        """The version after `current`, as LangGraph's own savers make them: a
        zero-padded counter (so versions sort) and a random fraction, so that two
        forks of one checkpoint never share a blob's name with different values."""
        if current is None:
            number = 0
        elif isinstance(current, int):
            number = current
        else:
            number = int(current.split(".")[0])
        return f"{number + 1:032}.{random.random():016}"

    # -- the work, on whichever object layer the caller's loop uses --------------------------

    async def _get_tuple(self, objects: Objects, config: RunnableConfig) -> CheckpointTuple | None:
        thread_id, checkpoint_ns = _thread_and_ns(config)
        folder = _checkpoints_folder(thread_id, checkpoint_ns)
        checkpoint_id = get_checkpoint_id(config)
        if checkpoint_id:
            if not _UUID.fullmatch(checkpoint_id):
                return None  # never stored: put() takes only uuids
            name = folder + checkpoint_id.translate(_INVERT)
            stored, writes = await asyncio.gather(objects.read(name), _names(objects, name + "/"))
            entry = _Entry(name, thread_id, checkpoint_ns, checkpoint_id, writes)
        else:
            async with aclosing(_entries(objects, folder, first_page=LATEST_PAGE)) as entries:
                latest = await anext(entries, None)
            if latest is None:
                return None
            entry, stored = latest, await objects.read(latest.name)
        if stored is None:
            return None
        return await self._tuple(objects, entry, self._record(objects, entry.name, stored.body))

    async def _list(
        self,
        objects: Objects,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> AsyncGenerator[CheckpointTuple, None]:
        if config is not None and get_checkpoint_id(config):
            entries: AsyncGenerator[_Entry, None] = _one(objects, config)
        else:
            folder, after = _listing_of(config, before)
            entries = _entries(objects, folder, after=after)
        before_id = get_checkpoint_id(before) if before else None
        left = limit
        batch: builtins.list[_Entry] = []
        async with aclosing(entries):
            async for entry in entries:
                if left is not None and left <= 0:
                    return  # a limit of 0 or less
                if before_id and entry.checkpoint_id >= before_id:
                    continue
                batch.append(entry)
                if len(batch) < (READ_BATCH if left is None else min(READ_BATCH, left)):
                    continue
                for item in await self._read_batch(objects, batch, filter):
                    yield item
                    left = None if left is None else left - 1
                if left == 0:
                    return  # before listing on
                batch = []
        # Fewer than `left` are left over: all of them can be returned.
        for item in await self._read_batch(objects, batch, filter) if batch else []:
            yield item

    async def _read_batch(
        self, objects: Objects, batch: builtins.list[_Entry], filter: dict[str, Any] | None
    ) -> builtins.list[CheckpointTuple]:
        """The listed checkpoints whose metadata matches `filter`: their records read
        at once, then, for those that match, their values and writes."""
        stored = await asyncio.gather(*(objects.read(entry.name) for entry in batch))
        matches = []
        for entry, found in zip(batch, stored, strict=True):
            if found is None:
                continue  # deleted since it was listed
            record = self._record(objects, entry.name, found.body)
            if filter and not all(record.metadata.get(k) == v for k, v in filter.items()):
                continue
            matches.append(self._tuple(objects, entry, record))
        return builtins.list(await asyncio.gather(*matches))

    async def _tuple(self, objects: Objects, entry: _Entry, record: _Record) -> CheckpointTuple:
        """The checkpoint with its values (inline ones, then blobs) and pending writes."""
        blob_names = {
            channel: _blob_name(entry.thread_id, entry.checkpoint_ns, channel, version)
            for channel, version in record.blobs.items()
        }
        blobs, writes = await asyncio.gather(
            asyncio.gather(*(objects.read(name) for name in blob_names.values())),
            asyncio.gather(*(objects.read(name) for name in entry.writes)),
        )
        values = {
            channel: self._loads(objects, entry.name, typed)
            for channel, typed in record.inline.items()
        }
        for (channel, name), blob in zip(blob_names.items(), blobs, strict=True):
            # As LangGraph's savers do, a value whose blob is not there is left out
            # (a channel given a value but no new version, by a caller that never stored it).
            if blob is not None:
                values[channel] = self._loads(objects, name, _typed(objects, name, blob.body))
        pending = sorted(
            (
                self._write(objects, name, found.body)
                for name, found in zip(entry.writes, writes, strict=True)
                if found is not None  # deleted since it was listed
            ),
            key=lambda write: write[0],
        )
        return CheckpointTuple(
            config=_config(entry.thread_id, entry.checkpoint_ns, entry.checkpoint_id),
            checkpoint={**record.checkpoint, "channel_values": values},
            metadata=record.metadata,
            parent_config=(
                _config(entry.thread_id, entry.checkpoint_ns, record.parent_id)
                if record.parent_id
                else None
            ),
            pending_writes=[write for _, write in pending],
        )

    async def _put(
        self,
        objects: Objects,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        thread_id, checkpoint_ns = _thread_and_ns(config)
        checkpoint_id = _stored_id(checkpoint["id"])
        values = checkpoint["channel_values"]
        inline: dict[str, Typed] = {}
        shared: dict[str, Any] = {}
        new_blobs: dict[str, bytes] = {}
        for channel, version in checkpoint["channel_versions"].items():
            if channel not in values:
                continue  # empty at this checkpoint
            typed = self.serde.dumps_typed(values[channel])
            if len(typed[1]) <= INLINE_BYTES:
                inline[channel] = typed
                continue
            shared[channel] = version
            if channel in new_versions:
                new_blobs[_blob_name(thread_id, checkpoint_ns, channel, version)] = _pack(typed)
        record = {
            "checkpoint": self.serde.dumps_typed(
                {key: value for key, value in checkpoint.items() if key != "channel_values"}
            ),
            "metadata": self.serde.dumps_typed(get_checkpoint_metadata(config, metadata)),
            "parent": get_checkpoint_id(config),
            "inline": inline,
            "blobs": shared,
        }
        # Blobs before the checkpoint, so that a reader who finds it finds them too.
        await asyncio.gather(*(_create(objects, name, body) for name, body in new_blobs.items()))
        name = _checkpoints_folder(thread_id, checkpoint_ns) + checkpoint_id.translate(_INVERT)
        await objects.write(name, _pack(record), base=None, content_type=OCTET_STREAM)
        return _config(thread_id, checkpoint_ns, checkpoint_id)

    async def _put_writes(
        self,
        objects: Objects,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> None:
        thread_id, checkpoint_ns = _thread_and_ns(config)
        checkpoint_id = _stored_id(config["configurable"]["checkpoint_id"])
        folder = _checkpoints_folder(thread_id, checkpoint_ns) + checkpoint_id.translate(_INVERT)
        bodies = {}
        for position, (channel, value) in enumerate(writes):
            index = WRITES_IDX_MAP.get(channel, position)
            name = f"{folder}/{_part(task_id)}.{index}"
            bodies[name] = (
                index,
                _pack(
                    {
                        "task": task_id,
                        "path": task_path,
                        "index": index,
                        "channel": channel,
                        "value": self.serde.dumps_typed(value),
                    }
                ),
            )

        async def put(name: str, index: int, body: bytes) -> None:
            if index >= 0:
                await _create(objects, name, body)  # a retried task's write is kept once
            else:
                await objects.write(
                    name, body, base=None, conditional=False, content_type=OCTET_STREAM
                )

        await asyncio.gather(*(put(name, *indexed) for name, indexed in bodies.items()))

    async def _delete_thread(self, objects: Objects, thread_id: str) -> None:
        names = await _names(objects, _thread_folder(thread_id))
        failures = await objects.delete_many(names)
        if failures:
            raise next(iter(failures.values()))

    async def _copy_thread(self, objects: Objects, source: str, target: str) -> None:
        source_folder, target_folder = _thread_folder(source), _thread_folder(target)

        async def copy(name: str) -> None:
            stored = await objects.read(name)
            if stored is not None:
                await _create(objects, target_folder + name[len(source_folder) :], stored.body)

        await asyncio.gather(*(copy(name) for name in await _names(objects, source_folder)))

    # -- decoding what is stored ---------------------------------------------------------

    def _record(self, objects: Objects, name: str, body: bytes) -> _Record:
        fields = _unpack(objects, name, body)
        try:
            inline = {str(k): (str(v[0]), bytes(v[1])) for k, v in fields["inline"].items()}
            record = _Record(
                checkpoint=self._loads(objects, name, _as_typed(fields["checkpoint"])),
                metadata=self._loads(objects, name, _as_typed(fields["metadata"])),
                parent_id=fields["parent"],
                inline=inline,
                blobs=dict(fields["blobs"]),
            )
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise _corrupt(objects, name, body, f"is not a checkpoint ({exc!r})") from None
        return record

    def _write(self, objects: Objects, name: str, body: bytes) -> tuple[Any, PendingWrite]:
        """A pending write, and the key LangGraph orders a checkpoint's writes by."""
        fields = _unpack(objects, name, body)
        try:
            task_id, channel = str(fields["task"]), str(fields["channel"])
            key = writes_sort_key(str(fields["path"]), task_id, int(fields["index"]))
            value = self._loads(objects, name, _as_typed(fields["value"]))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise _corrupt(objects, name, body, f"is not a pending write ({exc!r})") from None
        return key, (task_id, channel, value)

    def _loads(self, objects: Objects, name: str, typed: Typed) -> Any:
        try:
            return self.serde.loads_typed(typed)
        except Exception as exc:  # whatever the serializer raises on bytes it cannot read
            raise _corrupt(
                objects, name, typed[1], f"holds a value the serializer cannot read ({exc!r})"
            ) from exc


# -- names ------------------------------------------------------------------------------


def _part(text: str) -> str:
    return quote(text, safe="")


def _thread_folder(thread_id: str) -> str:
    return f"{ROOT}{_part(thread_id)}/"


def _checkpoints_folder(thread_id: str, checkpoint_ns: str) -> str:
    namespace = "root" if checkpoint_ns == "" else f"ns-{_part(checkpoint_ns)}"
    return f"{_thread_folder(thread_id)}{namespace}/checkpoints/"


def _blob_name(thread_id: str, checkpoint_ns: str, channel: str, version: Any) -> str:
    folder = _checkpoints_folder(thread_id, checkpoint_ns).removesuffix("checkpoints/")
    return f"{folder}blobs/{_part(channel)}/{_part(str(version))}"


def _parse(name: str) -> tuple[str, str, str, str | None] | None:
    """(thread id, namespace, checkpoint id, write's name or None) of a checkpoint's
    or pending write's name; None for a blob's."""
    parts = name[len(ROOT) :].split("/")
    if len(parts) not in (4, 5) or parts[2] != "checkpoints":
        return None
    thread, namespace, _, inverted, *write = parts
    checkpoint_ns = "" if namespace == "root" else unquote(namespace.removeprefix("ns-"))
    return unquote(thread), checkpoint_ns, inverted.translate(_INVERT), write[0] if write else None


def _thread_and_ns(config: RunnableConfig) -> tuple[str, str]:
    configurable = config.get("configurable") or {}
    thread_id = configurable.get("thread_id")
    if thread_id is None:
        raise InvalidSessionIdError(
            "the config names no thread: pass {'configurable': {'thread_id': ...}}"
        )
    return str(thread_id), str(configurable.get("checkpoint_ns") or "")


def _stored_id(checkpoint_id: str) -> str:
    if not _UUID.fullmatch(checkpoint_id):
        raise InvalidSessionIdError(
            f"checkpoint id {checkpoint_id!r} is not a lower-case uuid, as LangGraph makes "
            "them (uuid6): S3Saver orders checkpoints by it"
        )
    return checkpoint_id


def _config(thread_id: str, checkpoint_ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id,
        }
    }


def _listing_of(
    config: RunnableConfig | None, before: RunnableConfig | None
) -> tuple[str, str | None]:
    """The folder `alist()` lists, and where in it to start: after `before`'s
    checkpoint, when the folder is one namespace's."""
    if config is None:
        return ROOT, None
    thread_id, checkpoint_ns = _thread_and_ns(config)
    if "checkpoint_ns" not in config["configurable"]:
        return _thread_folder(thread_id), None
    folder = _checkpoints_folder(thread_id, checkpoint_ns)
    before_id = get_checkpoint_id(before) if before else None
    if before_id and _UUID.fullmatch(before_id):
        return folder, folder + before_id.translate(_INVERT)
    return folder, None


# -- listing ----------------------------------------------------------------------------


async def _names(objects: Objects, folder: str) -> builtins.list[str]:
    return [info.name async for info in objects.iter_objects(folder, recursive=True)]


async def _entries(
    objects: Objects, folder: str, *, after: str | None = None, first_page: int | None = None
) -> AsyncGenerator[_Entry, None]:
    """The checkpoints under `folder`, in name order (newest first within a
    namespace), each once the names of its pending writes, which follow it, are in.
    `first_page` lists that many names before going on 1,000 at a time."""
    current: _Entry | None = None
    async for name in _listed(objects, folder, after, first_page):
        parsed = _parse(name)
        if parsed is None:
            continue
        thread_id, checkpoint_ns, checkpoint_id, write = parsed
        if write is None:
            if current is not None:
                yield current
            current = _Entry(name, thread_id, checkpoint_ns, checkpoint_id, [])
        elif current is not None and name.startswith(current.name + "/"):
            current.writes.append(name)
        # Otherwise the write of a checkpoint before `after`, or of none stored.
    if current is not None:
        yield current


async def _listed(
    objects: Objects, folder: str, after: str | None, first_page: int | None
) -> AsyncIterator[str]:
    last = after
    if first_page is not None:
        count = 0
        async for info in objects.iter_objects(
            folder, after=after, limit=first_page, recursive=True
        ):
            count += 1
            last = info.name
            yield info.name
        if count < first_page:
            return
    async for info in objects.iter_objects(folder, after=last, recursive=True):
        yield info.name


async def _one(objects: Objects, config: RunnableConfig) -> AsyncGenerator[_Entry, None]:
    """The checkpoint `config` names, as a listing would give it, if it is stored."""
    thread_id, checkpoint_ns = _thread_and_ns(config)
    checkpoint_id = str(get_checkpoint_id(config))
    if not _UUID.fullmatch(checkpoint_id):
        return
    name = _checkpoints_folder(thread_id, checkpoint_ns) + checkpoint_id.translate(_INVERT)
    if await objects.head(name) is not None:
        yield _Entry(
            name, thread_id, checkpoint_ns, checkpoint_id, await _names(objects, name + "/")
        )


async def _next(items: AsyncIterator[CheckpointTuple]) -> CheckpointTuple:
    return await anext(items)


# -- bodies -----------------------------------------------------------------------------


async def _create(objects: Objects, name: str, body: bytes) -> None:
    """Store `body` unless something is stored under `name` already (then keep that)."""
    with suppress(SessionConflictError):
        await objects.write(name, body, base=None, content_type=OCTET_STREAM)


def _pack(document: object) -> bytes:
    return ormsgpack.packb(document)


def _unpack(objects: Objects, name: str, body: bytes) -> dict[str, Any]:
    try:
        document = ormsgpack.unpackb(body)
    except ValueError as exc:
        raise _corrupt(objects, name, body, f"is not msgpack ({exc})") from None
    if not isinstance(document, dict):
        raise _corrupt(objects, name, body, "is not a msgpack map")
    return document


def _typed(objects: Objects, name: str, body: bytes) -> Typed:
    try:
        return _as_typed(ormsgpack.unpackb(body))
    except (ValueError, TypeError, IndexError) as exc:
        raise _corrupt(objects, name, body, f"is not a stored channel value ({exc})") from None


def _as_typed(value: Any) -> Typed:
    """A serializer's (type, bytes) pair, as msgpack gives it back: a list."""
    kind, data = value
    if not isinstance(kind, str) or not isinstance(data, bytes):
        raise TypeError(f"expected (str, bytes), not ({type(kind)}, {type(data)})")
    return kind, data


def _corrupt(objects: Objects, name: str, body: bytes, problem: str) -> SessionStoreError:
    return objects.corrupt(problem, body, objects.key(name))
