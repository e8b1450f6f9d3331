"""What every benchmark case shares: results, the server process, sessions to store."""

from __future__ import annotations

import asyncio
import compileall
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from s3store import AgentSession, AssistantMessage, SessionId, ToolCall, ToolMessage, UserMessage

REGION = "us-east-1"
LATENCY = 0.020
"""Added to every request on the `*_slow` endpoints: S3 as a Lambda function sees it."""


@dataclass
class Result:
    """One figure: `value` against `baseline` measured in the same run, lower is better.

    `ratio` is value / baseline. `target` is the ratio the issue asks for
    (`None` for figures shown for context only).
    """

    name: str
    value: float
    baseline: float
    unit: str
    target: float | None = None

    @property
    def ratio(self) -> float:
        return self.value / self.baseline

    @property
    def holds(self) -> bool | None:
        return None if self.target is None else self.ratio <= self.target

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": round(self.ratio, 4), "holds": self.holds}


@dataclass(frozen=True)
class Options:
    quick: bool

    def pick(self, quick: int, full: int) -> int:
        return quick if self.quick else full


@dataclass(frozen=True)
class Servers:
    """URLs of the server process: moto and the fake endpoint, each direct and slowed."""

    moto: str
    moto_slow: str
    fake: str
    fake_slow: str


def fake_credentials() -> None:
    """Test credentials and no configuration files: nothing here may reach AWS."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )


@contextmanager
def server_process(*args: str) -> Iterator[dict[str, str]]:
    """Run `python args...`, a server that prints one JSON line of its URLs once it
    listens and ends when its standard input closes; yield those URLs."""
    process = subprocess.Popen(
        [sys.executable, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the server process {args} exited before it was ready")
        yield json.loads(line)
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def servers(latency: float = LATENCY) -> Iterator[Servers]:
    """Start `benchmarks.serve` in its own process; stop it by closing its stdin."""
    with server_process("-m", "benchmarks.serve", str(latency)) as urls:
        yield Servers(**urls)


def bucket_name() -> str:
    return f"bench-{uuid.uuid4().hex[:16]}"


def make_session(number: int, messages: int, *, external_id: str | None = None) -> AgentSession:
    """A session of `messages` messages in agent turns: user, tool call, tool result, answer."""
    session = AgentSession(id=SessionId(number, external_id))
    for turn in range(messages // 4 + 1):
        for message in _turn(turn):
            if len(session.chat_messages) == messages:
                return session
            session.chat_messages.append(message)
    return session


def _turn(turn: int) -> list[Any]:
    call = f"call_{turn}"
    return [
        UserMessage(content=f"Question {turn}: what does the log say about the failing job?"),
        AssistantMessage(
            tool_calls=[
                ToolCall(id=call, name="read_log", arguments='{"job": "nightly", "n": 200}')
            ]
        ),
        ToolMessage(tool_call_id=call, content="2026-11-24 03:00:01 step 4 failed: " + "x" * 120),
        AssistantMessage(content="The nightly job fails at step 4 because the disk is full. " * 2),
    ]


def turn_messages(turn: int) -> list[Any]:
    """What one serverless turn appends: a user message, a tool call, its result."""
    return _turn(turn)[:3]


def session_of_size(number: int, size: int) -> AgentSession:
    """A session whose JSON is about `size` bytes."""
    per_message = len(AgentSession(chat_messages=_turn(0)).model_dump_json().encode()) / len(
        _turn(0)
    )
    return make_session(number, max(1, int(size / per_message)))


ANSWERED = "answered"
"""What a cold-process script prints once it has its answer (`print(ANSWERED, flush=True)`)."""


def byte_compile_s3store() -> None:
    """Write s3store's bytecode, as pip does when it installs a wheel.

    This checkout is installed editable and CI runs with PYTHONDONTWRITEBYTECODE,
    so without this every fresh process would compile s3store from source while
    aioboto3 and pydantic, installed from wheels, load theirs.
    """
    compileall.compile_dir(Path(__file__).parents[1] / "s3store", quiet=1)


def time_to_answer(command: list[str], env: dict[str, str] | None = None) -> float:
    """Seconds from starting `command` to its printing `ANSWERED`: what a caller of a
    new Lambda container waits, which the interpreter's teardown after it is not."""
    start = time.perf_counter()
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        line = process.stdout.readline()
        answered = time.perf_counter() - start
        process.stdout.read()
    if process.returncode != 0 or line.strip() != ANSWERED:
        raise RuntimeError(f"{command[:3]} failed (exit {process.returncode}): {line!r}")
    return answered


def cold_medians(
    commands: Callable[[int], list[list[str]]], repeat: int, env: dict[str, str] | None = None
) -> list[float]:
    """Median milliseconds to answer of each of the commands `commands(round)` gives,
    run in turns `repeat` times each (the order rotating, so that none always starts on
    the machine another has just warmed)."""
    byte_compile_s3store()
    times: list[list[float]] = []
    for round_number in range(repeat):
        batch = commands(round_number)
        times = times or [[] for _ in batch]
        for offset in range(len(batch)):
            side = (round_number + offset) % len(batch)
            times[side].append(time_to_answer(batch[side], env))
    return [statistics.median(side) * 1e3 for side in times]


def median_time(fn: Callable[[], object], repeat: int, clock: Callable[[], float]) -> float:
    """Median over `repeat` runs of `fn`, by `clock`, in seconds."""
    times = []
    for _ in range(repeat):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)


async def amedian_time(
    fn: Callable[[], Awaitable[object]], repeat: int, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Median over `repeat` runs of the coroutine function `fn`, by `clock`, in seconds."""
    times = []
    for _ in range(repeat):
        start = clock()
        await fn()
        times.append(clock() - start)
    return statistics.median(times)


async def put_all(
    client: Any, bucket: str, items: list[tuple[str, bytes]], limit: int = 32
) -> None:
    """Store many objects quickly (setup only, never measured)."""
    pending = iter(items)

    async def work() -> None:
        for key, body in pending:
            await client.put_object(Bucket=bucket, Key=key, Body=body)

    await asyncio.gather(*(work() for _ in range(limit)))
