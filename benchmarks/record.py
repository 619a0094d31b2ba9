"""One line per benchmark run in `benchmarks/results.jsonl`: date, git commit, machine, figures.

Each script in benchmarks/ calls `record(...)` once, after printing its figures; `docs/hooks.py` renders the
file as the table on the docs' benchmarks page. A run inside the test suite (pytest sets PYTEST_CURRENT_TEST,
which child processes inherit) records nothing: the committed file holds only runs someone meant to measure.
`CODIGIT_BENCHMARK_RESULTS=FILE` sends the line elsewhere (e.g. `$OUT/results.jsonl` on a lent GPU machine, to be
appended here afterwards).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results.jsonl"


def commit() -> str | None:
    """The checkout's commit (short), with `-dirty` when tracked files differ from it; None outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=30).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if dirty else head or None


def machine() -> str:
    """CPU model and cores, and the GPU when torch (already imported by the benchmark) sees one."""
    cpu = platform.processor() or platform.machine()
    try:
        names = [ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                 if ln.startswith("model name")]  # fmt: skip
        cpu = names[0] if names else cpu
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    text = f"{cpu}, {cores} cores"
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])  # MemTotal, the first line
        text += f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    torch = sys.modules.get("torch")  # never imported here just to ask: some benchmarks do not use it
    if torch is not None:
        text += f"; GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "; no GPU"
    return f"{text}; Python {platform.python_version()}"


def record(name: str, figures: dict, machine: str) -> Path | None:
    """Append one run's figures; returns the file written, or None inside the test suite."""
    if os.environ.get("PYTEST_CURRENT_TEST"):
        return None
    path = Path(os.environ.get("CODIGIT_BENCHMARK_RESULTS") or RESULTS)
    line = {
        "name": name,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit(),
        "machine": machine,
        "command": " ".join([f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]]),
        "figures": figures,
    }
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(line, ensure_ascii=False) + "\n")
    print(f"recorded in {path}")
    return path
