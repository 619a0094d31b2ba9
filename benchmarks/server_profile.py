"""Where the server's CPU goes under load: a py-spy sample of the running `codigit serve`, summarised as a few lines.

Used by server_load.py around its load phase. py-spy (a sampling profiler, in the test extra) attaches to the
server's process from outside, so the server runs exactly as deployed; without py-spy, or without the permission to
attach (ptrace), the summary says so and the benchmark goes on. Samples are taken only while a thread holds the
GIL (`--gil`): Python work, which is what one server process can do at most one core of.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

RATE = 100  # samples a second
# Frames that only carry a request along (event loop, ASGI middleware, greenlet glue): never the answer to "where".
PLUMBING = (
    "asyncio/", "uvicorn/", "starlette/", "anyio/", "fastapi/", "brotli_asgi/", "<frozen", "threading.py",
    "contextlib.py", "codigit/cli.py", "codigit/server/cli.py", "codigit/server/serve.py", "backoff/",
    "codigit/server/sqlite_writes.py", "codigit/server/hot_path.py:ServerTiming", "sqlalchemy/util/_concurrency",
    "greenlet",
)  # fmt: skip


def py_spy() -> str | None:
    """The py-spy executable beside this Python, or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Sampler:
    """`py-spy record` on a process, from start() to stop(); stop() returns the collapsed stacks' file or None."""

    def __init__(self, pid: int):
        self.pid = pid
        self.proc: subprocess.Popen | None = None
        self.out = Path(tempfile.mkdtemp(prefix="codigit-prof-")) / "stacks.txt"
        self.error = ""

    def start(self) -> None:
        exe = py_spy()
        if exe is None:
            self.error = "py-spy not installed (pip install py-spy)"
            return
        cmd = [exe, "record", "--pid", str(self.pid), "--gil", "--rate", str(RATE), "--format", "raw"]
        self.proc = subprocess.Popen(
            [*cmd, "-o", str(self.out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )

    def stop(self) -> Path | None:
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGINT)  # py-spy writes what it sampled and exits
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        if not self.out.exists() or self.out.stat().st_size == 0:
            self.error = "py-spy recorded nothing: " + (err.strip().splitlines() or ["(no message)"])[-1][:200]
            return None
        return self.out


def part(root: str) -> str:
    """Which part of the server a stack belongs to, by its outermost frame. SQLAlchemy runs an async session's
    work (building statements, loading rows into objects) in greenlets, which py-spy shows as stacks of their own:
    a handler's share below leaves out its SQL, which is counted here."""
    if "threading.py" in root:
        return "SQLite calls (aiosqlite threads)"
    if "sqlalchemy/" in root:
        return "SQLAlchemy statements and ORM loading (greenlets)"
    return "event loop: HTTP, routing, handlers, validation"


def parse(path: Path) -> tuple[Counter, Counter, int, Counter]:
    """(self samples per frame, inclusive samples per frame, total samples, samples per part) from py-spy's
    collapsed stacks."""
    own: Counter = Counter()
    inclusive: Counter = Counter()
    parts: Counter = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [function(f) for f in stack.split(";")]
        parts[part(frames[0])] += n
        own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    return own, inclusive, total, parts


def function(frame: str) -> str:
    """'Class.method (pkg/mod.py:123)' -> 'pkg/mod.py:Class.method' (lines merged: one entry per function)."""
    name, _, where = frame.partition(" (")
    return f"{where.rsplit(':', 1)[0]}:{name}" if where else name


def summary(path: Path | None, error: str = "", top: int = 8) -> list[tuple[str, str]]:
    """Figures: the shares of the server's parts, the functions with the most samples of their own, and the
    codigit/argilla-server functions (with everything they call on the event loop) that take the largest shares."""
    if path is None:
        return [("profile", error or "not taken")]
    own, inclusive, total, parts = parse(path)
    if not total:
        return [("profile", "no samples")]
    figures = [("profile: samples while holding the GIL", f"{total} ({RATE}/s)")]
    # numbered labels: the recorded figures are a dict (benchmarks/record.py)
    for i, (name, n) in enumerate(parts.most_common(), 1):
        figures.append((f"profile: part {i}", f"{100 * n / total:4.1f}% {name}"))
    for i, (name, n) in enumerate(own.most_common(top), 1):
        figures.append((f"profile: self {i}", f"{100 * n / total:4.1f}% {name}"))
    ours = [
        (name, n)
        for name, n in inclusive.most_common()
        if ("argilla_server/" in name or "codigit/" in name) and not name.startswith(PLUMBING)
        and not any(p in name for p in PLUMBING)
    ]  # fmt: skip
    for i, (name, n) in enumerate(ours[:top], 1):
        figures.append((f"profile: incl. {i}", f"{100 * n / total:4.1f}% {name}"))
    os.unlink(path)
    return figures


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set so far (VmHWM, Linux), in MiB; NaN elsewhere."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")
