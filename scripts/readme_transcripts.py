"""README.md's console transcripts, made by running their commands, so that none goes stale.

    python scripts/readme_transcripts.py           # rewrite the transcripts in README.md
    python scripts/readme_transcripts.py --check   # exit 1, showing the difference, if stale

A transcript is the region of README.md between `<!-- transcript: NAME -->` and
`<!-- /transcript -->`: `demo` (`s3store demo`, as `make demo` runs it), `local` (a
session against `s3store local`) and `probe` (`python -m s3store.probe` on that server).
Each command runs under bash in a fresh pseudo-terminal, and the transcript is the text
it leaves there, as a reader's terminal shows it (stdout and stderr in the order written,
progress bars gone). What differs from run to run is replaced (ports, times, version ids,
the demo's random prefix) or left out (latencies). It needs the `s3store` command and
moto (`pip install -e '.[local]'`), and runs the commands of the interpreter's own
environment.
"""

from __future__ import annotations

import argparse
import difflib
import fcntl
import os
import pty
import re
import select
import shlex
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
REGION = re.compile(
    r"(?P<start><!-- transcript: (?P<name>[\w-]+) -->\n).*?(?P<end><!-- /transcript -->)",
    re.DOTALL,
)
COLUMNS, ROWS = 160, 50
TIMEOUT = 120.0  # seconds for one command

# -- a terminal ----------------------------------------------------------------------

# What a program writes to a terminal besides text: a CSI sequence (cursor, erase,
# colour), an OSC sequence (a title, a link), or a carriage return, newline or backspace.
CONTROL = re.compile(
    r"\x1b\[(?P<parameters>[0-9;?]*)(?P<final>[A-Za-z])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|[\r\n\b]"
)


def screen(output: str) -> str:
    """The text `output` leaves on a terminal: Rich's progress display draws over itself
    and erases itself (carriage return, cursor up, erase line), colours leave nothing."""
    lines: list[list[str]] = [[]]
    row = column = 0

    def write(text: str) -> None:
        nonlocal column
        line = lines[row]
        line.extend(" " * (column - len(line)))
        line[column : column + len(text)] = text
        column += len(text)

    def move_to(new_row: int) -> None:
        nonlocal row
        row = max(new_row, 0)
        lines.extend([] for _ in range(row + 1 - len(lines)))

    position = 0
    for match in CONTROL.finditer(output):
        write(output[position : match.start()])
        position = match.end()
        code, final = match[0], match["final"]
        count = int(match["parameters"] or 1) if final in ("A", "B", "C", "D", "G") else 0
        if code == "\n":  # the terminal's output processing adds the carriage return
            move_to(row + 1)
            column = 0
        elif code == "\r":
            column = 0
        elif code == "\b":
            column = max(column - 1, 0)
        elif final == "A":
            move_to(row - count)
        elif final == "B":
            move_to(row + count)
        elif final == "C":
            column += count
        elif final == "D":
            column = max(column - count, 0)
        elif final == "G":
            column = count - 1
        elif final == "K":
            erase_in_line(lines[row], column, match["parameters"] or "0")
        elif final not in (None, "m", "h", "l"):  # colours, showing and hiding the cursor
            raise ValueError(f"a terminal control this script does not know: {code!r}")
    write(output[position:])
    return "\n".join("".join(line).rstrip() for line in lines).strip("\n")


def erase_in_line(line: list[str], column: int, mode: str) -> None:
    if mode == "0":
        del line[column:]
    elif mode == "1":
        line[: column + 1] = " " * min(column + 1, len(line))
    else:
        line.clear()


def terminal() -> tuple[int, int]:
    """A pseudo-terminal COLUMNS wide: the file descriptors of its two ends."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    return leader, follower


def read(leader: int, process: subprocess.Popen[bytes], done: Callable[[bytes], bool]) -> bytes:
    """What the terminal receives until `done` says it is enough or every writer has
    closed it; the process group is killed after TIMEOUT."""
    received = b""
    deadline = time.monotonic() + TIMEOUT
    while not done(received):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            os.killpg(process.pid, signal.SIGKILL)
            raise TimeoutError(f"{process.args!r} was still running after {TIMEOUT} s")
        if select.select([leader], [], [], remaining)[0]:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: no process has the terminal open anymore
                chunk = b""
            if not chunk:
                break
            received += chunk
    return received


def start(
    command: str, environment: dict[str, str], folder: Path
) -> tuple[subprocess.Popen[bytes], int]:
    """`command`, run by bash in `folder` with its stdout and stderr on a new terminal;
    the process and the terminal's end to read."""
    leader, follower = terminal()
    try:
        process = subprocess.Popen(
            ["bash", "-c", command],
            stdin=subprocess.DEVNULL,
            stdout=follower,
            stderr=follower,
            cwd=folder,
            env={
                **environment,
                "COLUMNS": str(COLUMNS),
                "LINES": str(ROWS),
                "TERM": "xterm-256color",
            },
            start_new_session=True,
        )
    finally:
        os.close(follower)
    return process, leader


def run(command: str, environment: dict[str, str], folder: Path, *, status: int = 0) -> str:
    """What `command` leaves on the terminal, after `$ command`; RuntimeError unless it
    exits with `status`, so that no failure is written into README.md as its output."""
    process, leader = start(command, environment, folder)
    try:
        output = read(leader, process, lambda _: False)
        process.wait(timeout=TIMEOUT)
    finally:
        os.close(leader)
    text = screen(output.decode())
    if process.returncode != status:
        raise RuntimeError(f"{command} exited with {process.returncode}, not {status}:\n{text}")
    return f"$ {command}\n{text}" if text else f"$ {command}"


@contextmanager
def running(command: str, environment: dict[str, str], folder: Path) -> Iterator[str]:
    """`command` started on a terminal of its own, yielding what it wrote up to its first
    remark on stderr (`s3store: ...`); Ctrl-C (SIGINT) stops it at the end."""
    remark = re.compile(rb"s3store: [^\n]*\n")
    process, leader = start(command, environment, folder)
    try:
        started = read(leader, process, lambda out: remark.search(out) is not None)
        if not remark.search(started):
            raise RuntimeError(f"{command} ended before it started:\n{screen(started.decode())}")
        yield screen(started.decode())
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
        read(leader, process, lambda _: False)
        process.wait(timeout=TIMEOUT)
        os.close(leader)


# -- the transcripts ---------------------------------------------------------------------

# What differs from run to run, and what stands for it; a time keeps its width, so
# that the tables around it stay aligned.
VARYING = (
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:<port>"),
    (re.compile(r"\d{4}-\d\d-\d\d([ T])\d\d:\d\d:\d\d"), r"YYYY-MM-DD\1hh:mm:ss"),
    (
        re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"),
        "<version id>",
    ),
    (re.compile(r"s3store-demo-[0-9a-f]{8}"), "s3store-demo-XXXXXXXX"),
)

# The commands of the local session, in its "other terminal": those that only look run
# side by side (and beside the probe, which works in a bucket of its own), then the rest.
LOOKING = (
    "s3store ls",
    "s3store show '3(carol)'",
    "s3store stats",
    "s3store ls | cut -f1,2",
    "s3store ls --json --limit 1",
    "s3store export sessions.jsonl --json 2>/dev/null",
)
CHANGING = (
    "s3store rm '1(alice)'",
    "s3store purge '1(alice)'",
    "s3store show 1; echo exit code $?",
    "s3store import sessions.jsonl",
)
PROBE = 'python -m s3store.probe "$AWS_ENDPOINT_URL"'

# A Rich table's box characters where a column ends, and what ends the table's row there.
CLOSING = {"┳": "┓", "┃": "┃", "╇": "┩", "│": "│", "┼": "┤", "┴": "┘"}


def normalised(text: str) -> str:
    for pattern, placeholder in VARYING:
        text = pattern.sub(placeholder, text)
    return text


def demo(environment: dict[str, str], folder: Path) -> str:
    """Where `make demo`'s two invocations of one session meet, and the closing table of
    requests, without the times: each invocation's, and the table's latency column."""
    lines = run("s3store demo", environment, folder).splitlines()

    def first(start: str, after: int = 0) -> int:
        found = (n for n in range(after, len(lines)) if lines[n].lstrip().startswith(start))
        number = next(found, None)
        if number is None:
            raise RuntimeError(f"no line starts with {start!r} in the demo's:\n" + "\n".join(lines))
        return number

    meet, second = first("▶ #6a"), first("▶ #6b")
    invocations = [
        re.sub(r" \(\d+ ms\)$", "", line) for line in lines[meet : first("saved", second) + 1]
    ]
    title = first("HTTP requests to S3")
    table = lines[title + 1 : first("└", title) + 1]
    cut = table[0].rindex("┳")  # the last column is the median latency
    table = [line[:cut] + CLOSING[line[cut]] for line in table]
    return "\n".join([*invocations, "...", lines[title], *table])


def local(environment: dict[str, str], folder: Path) -> tuple[str, str]:
    """A session against `s3store local`, its variables exported in another terminal; and
    the probe's table for that server, its first row and its verdict."""
    with running("s3store local", environment, folder) as started:
        exported = dict(
            shlex.split(line)[1].split("=", 1)
            for line in started.splitlines()
            if line.startswith("export ")
        )
        environment = {**environment, **exported}
        kept = run("s3store demo --keep | tail -1", environment, folder)
        prefix = re.search(r"--prefix (\S+)", kept)
        if prefix is None:
            raise RuntimeError(f"the demo did not say where it kept its sessions:\n{kept}")
        environment["S3STORE_PREFIX"] = prefix[1]
        with ThreadPoolExecutor(len(LOOKING) + 1) as pool:
            # Exit status 1: moto stores a PUT whose checksum does not match, as AWS does not.
            probing = pool.submit(run, PROBE, environment, folder, status=1)
            looked = pool.map(lambda command: run(command, environment, folder), LOOKING)
            session = [
                f"$ s3store local\n{started}",
                "",
                "# in another terminal, with those variables exported",
                kept,
                f"$ export S3STORE_PREFIX={prefix[1]}",
                *looked,
                *(run(command, environment, folder) for command in CHANGING),
            ]
            probe = probing.result().splitlines()
    verdict = probe.index("", 4)  # the blank line under the table
    return "\n".join(session), "\n".join([*probe[:4], "...", *probe[verdict:]])


def transcripts(folder: Path) -> dict[str, str]:
    """Each transcript by name, made in `folder`'s sub-folders `demo` and `local`."""
    # Nothing reaches AWS: no AWS or s3store variable of this environment is passed on,
    # and no AWS configuration file is read. This interpreter's commands come first.
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "S3STORE_"))
    }
    environment.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    # The demo and the local session each have a server of their own: run side by side.
    with ThreadPoolExecutor(2) as pool:
        demoed = pool.submit(demo, environment, folder / "demo")
        session, probe = local(environment, folder / "local")
        made = {"demo": demoed.result(), "local": session, "probe": probe}
    return {name: normalised(text) for name, text in made.items()}


def rewritten(readme: str, made: dict[str, str]) -> str:
    """README.md with each transcript region holding the transcript just made."""
    names = [match["name"] for match in REGION.finditer(readme)]
    if sorted(names) != sorted(made):
        raise SystemExit(
            f"README.md has the transcript regions {names}; this script makes {sorted(made)}"
        )
    return REGION.sub(
        lambda match: f"{match['start']}```console\n{made[match['name']]}\n```\n{match['end']}",
        readme,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a transcript is stale"
    )
    arguments = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="readme-transcripts-") as folder:
        for name in ("demo", "local"):
            Path(folder, name).mkdir()
        made = transcripts(Path(folder))
    current = README.read_text()
    wanted = rewritten(current, made)
    if wanted == current:
        print("README.md's transcripts are current")
        return 0
    if arguments.check:
        diff = difflib.unified_diff(
            current.splitlines(keepends=True),
            wanted.splitlines(keepends=True),
            "README.md",
            "README.md, as its commands run now",
        )
        sys.stdout.writelines(diff)
        print("README.md's transcripts are stale: run python scripts/readme_transcripts.py")
        return 1
    README.write_text(wanted)
    print("rewrote README.md's transcripts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
