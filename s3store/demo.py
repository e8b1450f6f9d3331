"""`s3store demo`: a scripted tool-using agent serving three users, as Lambda would run it.

Each turn is one invocation: a new aioboto3 session and store on a new event
loop (`asyncio.run`), which loads the session, lets the agent take its turn
(a user message, a tool call, the tool's result, a reply) and saves it with
`update()`. Two invocations of one session run at the same time in two threads;
S3's conditional write refuses the one that saves second and `update()` redoes
its turn on the newer session. Then an operator lists, shows, exports and
purges, as the `s3store` commands do. The agent is a few rules, not a language
model, so every run tells the same story.

Every HTTP request is counted from botocore's own events on the aioboto3
session (`request-created`, `response-received`), for the closing table.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import aioboto3
from botocore.utils import determine_content_length
from rich.console import Console
from rich.filesize import decimal
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from s3store.errors import StorageError
from s3store.models import (
    AgentSession,
    AssistantMessage,
    ChatMessage,
    RunState,
    SessionId,
    SystemMessage,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from s3store.operations import Connection, export_sessions, summary
from s3store.s3 import S3SessionStore
from s3store.tables import listing_table, summary_table

__all__ = ["run_demo"]

T = TypeVar("T")

# -- the agent ---------------------------------------------------------------------

SYSTEM_PROMPT = "You are a helpful shop assistant. Use the tools; answer in one sentence."

WEATHER = {"Lisbon": (21, "sunny"), "Oslo": (4, "overcast"), "Porto": (17, "light rain")}
ORDERS = {"1042": {"status": "shipped", "carrier": "DHL", "eta": "Thursday"}}
EUR_RATES = {"USD": Decimal("1.08"), "GBP": Decimal("0.86")}


def get_weather(city: str) -> dict[str, Any]:
    temp_c, sky = WEATHER.get(city, (15, "unknown"))
    return {"city": city, "temp_c": temp_c, "sky": sky}


def percent_of(percent: str, amount: str) -> dict[str, Any]:
    result = Decimal(percent) / 100 * Decimal(amount)
    return {"expression": f"{percent}% of {amount}", "result": str(result.normalize())}


def lookup_order(order_id: str) -> dict[str, Any]:
    return {"order_id": order_id, **ORDERS.get(order_id, {"status": "not found"})}


def cancel_order(order_id: str) -> dict[str, Any]:
    return {"order_id": order_id, "status": "cancellation requested"}


def convert_eur(amount: str, to: str) -> dict[str, Any]:
    result = (Decimal(amount) * EUR_RATES[to]).quantize(Decimal("0.01"))
    return {"amount": f"{amount} EUR", "result": f"{result} {to}"}


TOOLS: dict[str, Callable[..., dict[str, Any]]] = {
    "get_weather": get_weather,
    "percent_of": percent_of,
    "lookup_order": lookup_order,
    "cancel_order": cancel_order,
    "convert_eur": convert_eur,
}
READ_ONLY_TOOLS = frozenset({"get_weather", "percent_of", "lookup_order", "convert_eur"})

REPLIES: dict[str, Callable[[dict[str, Any]], str]] = {
    "get_weather": lambda r: f"It is {r['temp_c']} °C and {r['sky']} in {r['city']}.",
    "percent_of": lambda r: f"{r['expression']} is {r['result']}.",
    "lookup_order": lambda r: (
        f"Order {r['order_id']} is {r['status']} with {r['carrier']}, due {r['eta']}."
    ),
    "cancel_order": lambda r: f"I have asked to cancel order {r['order_id']}.",
    "convert_eur": lambda r: f"{r['amount']} is {r['result']}.",
}


def _last_tool_call(session: AgentSession) -> ToolCall | None:
    for message in reversed(session.chat_messages):
        if isinstance(message, AssistantMessage) and message.tool_calls:
            return message.tool_calls[-1]
    return None


def plan(session: AgentSession, text: str) -> tuple[str, dict[str, str]] | None:
    """The tool call a turn needs, or None; a follow-up reuses the session's last tool."""
    if match := re.search(r"weather in (\w+)", text):
        return "get_weather", {"city": match[1]}
    follow_up = re.fullmatch(r"And in (\w+)\?", text)
    last = _last_tool_call(session)
    if follow_up and last is not None and "city" in (arguments := json.loads(last.arguments)):
        return last.name, {**arguments, "city": follow_up[1]}
    if match := re.search(r"([\d.]+)% of ([\d.]+)", text):
        return "percent_of", {"percent": match[1], "amount": match[2]}
    if match := re.search(r"[Cc]ancel order (\d+)", text):
        return "cancel_order", {"order_id": match[1]}
    if match := re.search(r"order (\d+)", text):
        return "lookup_order", {"order_id": match[1]}
    if match := re.search(r"([\d.]+) EUR to (USD|GBP)", text):
        return "convert_eur", {"amount": match[1], "to": match[2]}
    return None


def take_turn(session: AgentSession, text: str) -> None:
    """Append one turn to the session: the user's message, any tool call, the reply."""
    session.chat_messages.append(UserMessage(content=text))
    call = plan(session, text)
    if call is None:
        session.chat_messages.append(AssistantMessage(content="Sorry, I cannot help with that."))
        session.run_state = RunState()
        return
    name, arguments = call
    tool_call = ToolCall(
        id=f"call_{session.total_tool_calls + 1}", name=name, arguments=json.dumps(arguments)
    )
    result = TOOLS[name](**arguments)
    session.chat_messages += [
        AssistantMessage(tool_calls=[tool_call]),
        ToolMessage(tool_call_id=tool_call.id, content=json.dumps(result)),
        AssistantMessage(content=REPLIES[name](result)),
    ]
    session.total_tool_calls += 1
    session.run_state = RunState(turn_tool_calls=1, run_has_tool_calls=True)
    if name in READ_ONLY_TOOLS:
        session.always_allowed_actions.add(name)


# -- counting requests -------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    invocation: str
    operation: str
    status: int | None
    sent: int
    received: int
    seconds: float


class Recorder:
    """Every HTTP request of the demo's clients, as botocore sends it (retries included)."""

    _START = "s3store.demo.start"

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._lock = threading.Lock()

    def session(self, connection: Connection, invocation: str) -> aioboto3.Session:
        """A new aioboto3 session whose clients report their requests as `invocation`'s."""
        session = connection.session()
        # Registered before any client exists: each client copies the session's handlers.
        session.events.register("request-created.s3", self._started)
        session.events.register(
            "response-received.s3",
            lambda **event: self._finished(invocation, **event),
        )
        return session

    def of(self, invocation: str) -> list[Request]:
        with self._lock:
            return [request for request in self.requests if request.invocation == invocation]

    def _started(self, request: Any, **_: Any) -> None:
        # The context dict travels with the operation to `response-received`; an
        # operation's attempts run one after another, so one slot is enough.
        request.context[self._START] = (
            time.perf_counter(),
            determine_content_length(request.body) or 0,
        )

    def _finished(
        self,
        invocation: str,
        *,
        event_name: str,
        context: dict[str, Any],
        response_dict: dict[str, Any] | None,
        **_: Any,
    ) -> None:
        started, sent = context.pop(self._START)
        status: int | None = None
        received = 0
        if response_dict is not None:
            status = response_dict["status_code"]
            body = response_dict["body"]
            # A streamed body (GetObject) is not read yet: its length is the header's.
            received = (
                len(body)
                if isinstance(body, (bytes, bytearray))
                else int(response_dict["headers"].get("content-length") or 0)
            )
        request = Request(
            invocation,
            event_name.rsplit(".", 1)[-1],
            status,
            sent,
            received,
            time.perf_counter() - started,
        )
        with self._lock:
            self.requests.append(request)


def requests_table(requests: list[Request]) -> Table:
    table = Table(
        title="HTTP requests to S3",
        title_justify="left",
        caption="Latency is the client's: from the request's creation to its response. Each "
        "invocation's first request also sets up its new client's connection.",
        caption_justify="left",
    )
    for name in ("operation", "requests", "not 2xx", "sent", "received", "median"):
        table.add_column(name, justify="left" if name == "operation" else "right")
    by_operation: dict[str, list[Request]] = {}
    for request in requests:
        by_operation.setdefault(request.operation, []).append(request)

    def row(name: str, group: list[Request]) -> list[str]:
        failed = [r.status for r in group if r.status is None or not 200 <= r.status < 300]
        return [
            name,
            str(len(group)),
            ", ".join(f"{status} ({n})" for status, n in sorted(Counter(failed).items(), key=str))
            or "-",
            decimal(sum(r.sent for r in group)),
            decimal(sum(r.received for r in group)),
            f"{statistics.median(r.seconds for r in group) * 1000:.1f} ms",
        ]

    for name in sorted(by_operation):
        table.add_row(*row(name, by_operation[name]))
    table.add_section()
    table.add_row(*row("all", requests), style="bold")
    return table


# -- invocations ---------------------------------------------------------------------


USERS = {
    "alice": SessionId(1, "alice"),
    "bob": SessionId(2, "bob"),
    "carol": SessionId(3, "carol"),
}

SCRIPT = [
    ("alice", "What's the weather in Lisbon?"),
    ("bob", "What is 17.5% of 2340?"),
    ("carol", "Where is my order 1042?"),
    ("alice", "And in Oslo?"),
    ("bob", "Convert 409.5 EUR to GBP"),
]
# Sent at the same moment from two devices: two invocations of carol's session.
CONCURRENT = [("carol", "Cancel order 1042, please."), ("carol", "What's the weather in Porto?")]


@dataclass
class Invocation:
    """One Lambda-style invocation: a turn of one user's session."""

    name: str
    user: str
    text: str
    loaded: int | None = None  # messages in the session as first loaded; None when new
    reloaded: int = 0  # messages in the session as loaded by the last attempt
    added: tuple[ChatMessage, ...] = ()
    attempts: int = 0
    total: int = 0


def invoke(
    connection: Connection,
    recorder: Recorder,
    invocation: Invocation,
    *,
    after_load: Callable[[], object] | None = None,
) -> Invocation:
    """Run one invocation on an event loop of its own, as a Lambda handler calls asyncio.run().

    `after_load` runs once, after the first load and before the first save:
    the demo uses it to hold two invocations at the point where both have
    loaded the same version.
    """
    session_id = USERS[invocation.user]

    def turn(session: AgentSession | None) -> AgentSession:
        invocation.attempts += 1
        count = None if session is None else len(session.chat_messages)
        if invocation.attempts == 1:
            invocation.loaded = count
        invocation.reloaded = count or 0
        if session is None:
            session = AgentSession(
                id=session_id, chat_messages=[SystemMessage(content=SYSTEM_PROMPT)]
            )
        before = len(session.chat_messages)
        take_turn(session, invocation.text)
        invocation.added = tuple(session.chat_messages[before:])
        invocation.total = len(session.chat_messages)
        if invocation.attempts == 1 and after_load is not None:
            after_load()
        return session

    async def handler() -> None:
        store = connection.store(recorder.session(connection, invocation.name))
        async with store:
            await store.update(session_id, turn)

    asyncio.run(handler())
    return invocation


def invoke_concurrently(
    connection: Connection, recorder: Recorder, first: Invocation, second: Invocation
) -> None:
    """Both load the same version; `first` saves, then `second` tries with what it loaded."""
    both_loaded = threading.Barrier(2, timeout=30)
    first_done = threading.Event()
    failures: list[BaseException] = []

    def run_first() -> None:
        try:
            invoke(connection, recorder, first, after_load=both_loaded.wait)
        except BaseException as exc:
            failures.append(exc)
            both_loaded.abort()  # so that the second does not wait for a load that never comes
        finally:
            first_done.set()

    def wait_for_first() -> None:
        both_loaded.wait()
        first_done.wait()

    thread = threading.Thread(target=run_first, name=first.name)
    thread.start()
    try:
        invoke(connection, recorder, second, after_load=wait_for_first)
    except threading.BrokenBarrierError:
        if not failures:  # the barrier timed out: no failure of the first to report instead
            raise
    finally:
        thread.join()
    if failures:
        raise failures[0]


# -- the transcript -------------------------------------------------------------------


def _print_turn(out: Console, invocation: Invocation, recorder: Recorder) -> None:
    state = "new session" if invocation.loaded is None else f"{invocation.loaded} messages loaded"
    out.print(
        f"[bold]▶ {invocation.name}[/] · {invocation.user} · session "
        f"[cyan]{USERS[invocation.user]}[/], {state}"
    )
    out.print(f"    [green]{invocation.user:>9}[/]  {invocation.text}")
    for message in invocation.added[1:]:
        if isinstance(message, AssistantMessage) and message.tool_calls:
            for call in message.tool_calls:
                out.print(f"    [yellow]{'tool call':>9}[/]  {call.name}({call.arguments})")
        elif isinstance(message, ToolMessage):
            out.print(f"    [yellow]{'result':>9}[/]  {message.content}")
        elif isinstance(message, AssistantMessage):
            out.print(f"    [magenta]{'agent':>9}[/]  {message.content}")
    requests = recorder.of(invocation.name)
    trail = " → ".join(f"{r.operation} {r.status}" for r in requests)
    elapsed = sum(r.seconds for r in requests) * 1000
    out.print(f"    [dim]{'S3':>9}  {trail} ({elapsed:.0f} ms)[/]")
    if invocation.attempts > 1:
        out.print(
            f"    [red]{'conflict':>9}[/]  S3 refused the save (412: the session changed "
            f"since it was loaded); update() reloaded it ({invocation.reloaded} messages) "
            f"and took the turn again: attempt {invocation.attempts} saved"
        )
    out.print(f"    [dim]{'saved':>9}  {invocation.total} messages[/]")


def _operator(connection: Connection, recorder: Recorder, name: str) -> S3SessionStore:
    return connection.store(recorder.session(connection, name))


def run_demo(connection: Connection, *, keep: bool = False) -> None:
    # Piped, rich would wrap at 80 columns, too narrow for the transcript and table.
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 110)
    started = time.perf_counter()
    recorder = Recorder()
    if not connection.embedded:
        # Never touch real sessions: the demo's ids are small numbers anyone may use.
        connection = replace(
            connection, prefix=f"{connection.prefix}s3store-demo-{secrets.token_hex(4)}/"
        )
    out.print(
        f"[bold]s3store demo[/]: a scripted agent keeping its sessions in "
        f"{escape(str(connection))}\n"
    )

    for number, (user, text) in enumerate(SCRIPT, 1):
        _print_turn(
            out, invoke(connection, recorder, Invocation(f"#{number}", user, text)), recorder
        )

    number = len(SCRIPT) + 1
    (user_a, text_a), (user_b, text_b) = CONCURRENT
    first, second = (
        Invocation(f"#{number}a", user_a, text_a),
        Invocation(f"#{number}b", user_b, text_b),
    )
    out.print(
        f"\n[bold]Two invocations of session {USERS[user_a]} at once[/] (two devices, two "
        "Lambdas): both load the same version, then both save with If-Match"
    )
    invoke_concurrently(connection, recorder, first, second)
    _print_turn(out, first, recorder)
    _print_turn(out, second, recorder)
    if second.attempts < 2:
        raise StorageError(
            f"invocation {second.name} saved over {first.name}'s turn without a conflict: this "
            "endpoint ignores If-Match, which s3store's optimistic concurrency needs",
            operation="PutObject",
            bucket=connection.bucket,
        )

    out.print("\n[bold]The operator's view[/] (what the s3store commands show)\n")
    _operate(out, connection, recorder, keep=keep)

    out.print()
    out.print(requests_table(recorder.requests))
    out.print(f"demo finished in {time.perf_counter() - started:.1f} s")
    if keep and not connection.embedded:
        out.print(f"kept its sessions: s3store ls --prefix {escape(connection.prefix)}")


def _operate(out: Console, connection: Connection, recorder: Recorder, *, keep: bool) -> None:
    """The operator's steps, each on its own event loop and store, as each command runs."""

    def run(step: Callable[[S3SessionStore], Awaitable[T]]) -> T:
        async def with_store() -> T:
            async with connection.store(recorder.session(connection, "operator")) as store:
                return await step(store)

        return asyncio.run(with_store())

    out.print("[dim]$ s3store ls[/]")
    infos = run(lambda store: store.list_info())
    out.print(Text(f"{connection}: {len(infos)} session(s)"))
    out.print(listing_table(infos))

    shown = USERS["carol"]
    out.print(f"\n[dim]$ s3store show {shown}[/]")
    info, session = run(lambda store: asyncio.gather(store.stat(shown), store.load(shown)))
    if info is None or session is None:
        raise RuntimeError(f"session {shown}, saved in this run, is gone")
    out.print(summary_table(summary(info, session, connection.bucket)))

    with tempfile.TemporaryDirectory(prefix="s3store-demo-") as folder:
        path = Path(folder, "sessions.jsonl")
        out.print(f"\n[dim]$ s3store export {path}[/]")
        with path.open("wb") as file:
            exported = run(lambda store: export_sessions(store, file, concurrency=4))
        first_line = path.read_text().splitlines()[0]
    out.print(
        f"exported {exported.sessions} session(s), {decimal(exported.bytes)}; "
        f"line 1: {first_line[:72]}…"
    )

    erased = USERS["bob"]
    out.print(f"\n[dim]$ s3store purge {erased}[/]   (bob asked to be forgotten)")
    purged = run(lambda store: store.purge(erased))
    out.print(
        f"purged {erased}: {purged.versions} version(s), one per saved turn, and "
        f"{purged.delete_markers} delete marker(s)"
    )
    out.print("\n[dim]$ s3store ls[/]")
    infos = run(lambda store: store.list_info())
    out.print(Text(f"{connection}: {len(infos)} session(s)"))
    out.print(listing_table(infos))

    if connection.embedded or keep:
        return

    async def purge_all(store: S3SessionStore) -> None:
        for info in infos:
            await store.purge(info.session_id)

    run(purge_all)
    out.print(f"\ncleaned up: purged the demo's sessions under {escape(str(connection))}")
