"""What both demos share (`codigit demo` and `codigit demo --corpus`): step lines with their times, a server of the
demo's own, and libraries' output kept out of the step lines."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

VERSION = "0.1.0"
ORGANISER = "codigit demo"


class Steps:
    """`[3/11] what …` lines with the time each step took: the demo's progress at a glance."""

    def __init__(self, total: int) -> None:
        self.total, self.n, self.start = total, 0, time.monotonic()

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        self.n += 1
        print(f"[{self.n}/{self.total}] {what} …", flush=True)
        t = time.monotonic()
        yield
        print(f"      done in {_duration(time.monotonic() - t)}", flush=True)

    def elapsed(self) -> str:
        return _duration(time.monotonic() - self.start)


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {int(seconds % 60)} s"


@contextlib.contextmanager
def demo_server(home: Path, port: int, log: Path, keep_serving: bool = False) -> Iterator[str]:
    """`codigit serve` on the demo's home in a child process (loopback only); yields its URL, stops it after
    (or, with `keep_serving`, waits until Ctrl-C has stopped it)."""
    from codigit.server.serve import spawn

    proc = spawn(home, port, log, ("--snapshots", str(home.parent / "data" / "snapshots")))
    try:
        yield f"http://127.0.0.1:{port}"
        if keep_serving:
            print(f"\nThe demo's server keeps running at http://127.0.0.1:{port} — Ctrl-C stops it.", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                proc.wait()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=60)  # Ctrl-C reached the server too: let it shut down cleanly
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextlib.contextmanager
def library_output_to(log: Path) -> Iterator[None]:
    """Libraries' warnings, progress bars and log records go to the demo's log, not between its step lines (and the
    trainer's loss dicts too: `_model_steps` sends stdout there around the model work). codigit's own lines are
    printed to stdout; an error still reaches the terminal, raised after this has put stderr back."""
    root = logging.getLogger()
    with open(log, "a", encoding="utf-8", buffering=1) as f:
        handler = logging.StreamHandler(f)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        saved, root.handlers = root.handlers, [handler]
        try:
            with contextlib.redirect_stderr(f):
                yield
        finally:
            root.handlers = saved
            # libraries (transformers, datasets) make their handler on first use, on whatever stderr was then
            for logger in logging.Logger.manager.loggerDict.values():
                for h in getattr(logger, "handlers", []):
                    if isinstance(h, logging.StreamHandler) and h.stream is f:
                        h.setStream(sys.stderr)
