"""server_load.py's concurrent phase: N simulated annotators against a running `codigit serve`, and its figures.

Each annotator fetches their queue (the UI's request) and submits a response to the first record, a fixed number of
times, all starting together. Measured around the phase: throughput, latencies, errors, the server process's CPU
time (per submission), its peak resident memory and, with py-spy, where its CPU went (server_profile.py).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from server_profile import Sampler, peak_rss_mb, summary

from codigit.simulate import UI_QUEUE

QUEUE_PARAMS = {"include": "responses", "offset": 0, "limit": 10}
WORDS = (
    "gender work family identity care safety story prompt answer model community language school parent child "
    "friend colleague manager health voice choice respect fairness equal pay home time help listen learn change"
).split()


def pct(values: list[float], q: float) -> float:
    """q-th percentile (0..100) with linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def ms(seconds: float) -> str:
    return "n/a" if seconds != seconds else f"{seconds * 1000:.1f} ms"


def story(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def error_key(resp: httpx.Response | None = None, exc: BaseException | None = None) -> str:
    if exc is not None:
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    assert resp is not None
    try:
        detail = resp.json().get("detail", resp.text)
    except ValueError:
        detail = resp.text
    return f"HTTP {resp.status_code}: {str(detail)[:200]}"


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Timings:
    queue: list[float] = field(default_factory=list)
    submit: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    acked: list[str] = field(default_factory=list)  # response ids the server answered 2xx for
    empty_queues: int = 0


async def annotator(
    url: str, api_key: str, dataset_id: str, submissions: int, timings: Timings, start: asyncio.Event,
    deadline: float, seed: int, think: float,
) -> None:  # fmt: skip
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=f"{url}/api/v1", headers={"X-Argilla-Api-Key": api_key}, timeout=120) as c:
        await start.wait()
        done = 0
        attempts = 0
        while done < submissions and attempts < submissions * 3 and time.monotonic() < deadline:
            attempts += 1
            t0 = time.perf_counter()
            try:
                resp = await c.post(f"/me/datasets/{dataset_id}/records/search", params=QUEUE_PARAMS, json=UI_QUEUE)
            except httpx.HTTPError as e:
                timings.errors["queue " + error_key(exc=e)] += 1
                continue
            if resp.status_code != 200:
                timings.errors["queue " + error_key(resp)] += 1
                continue
            timings.queue.append(time.perf_counter() - t0)
            items = resp.json()["items"]
            if not items:
                timings.empty_queues += 1
                break
            record_id = items[0]["record"]["id"]
            if think:  # reading and writing, uniform in [0, 2 * think]
                await asyncio.sleep(rng.uniform(0, 2 * think))
            body = {"values": {"q": {"value": story(rng, 30)}}, "status": "submitted"}
            t0 = time.perf_counter()
            try:
                resp = await c.post(f"/records/{record_id}/responses", json=body)
            except httpx.HTTPError as e:
                timings.errors["submit " + error_key(exc=e)] += 1
                continue
            if resp.status_code >= 300:
                timings.errors["submit " + error_key(resp)] += 1
                continue
            timings.submit.append(time.perf_counter() - t0)
            timings.acked.append(resp.json()["id"])
            done += 1


async def run_load(
    url: str, api_keys: list[str], dataset_id: str, submissions: int, max_seconds: float, think: float
) -> tuple[Timings, float]:
    timings = Timings()
    start = asyncio.Event()
    deadline = time.monotonic() + max_seconds
    tasks = [
        asyncio.create_task(annotator(url, key, dataset_id, submissions, timings, start, deadline, i, think))
        for i, key in enumerate(api_keys)
    ]
    await asyncio.sleep(0.5)  # let every client get to the start line
    t0 = time.perf_counter()
    start.set()
    await asyncio.gather(*tasks)
    return timings, time.perf_counter() - t0


class Measured:
    """Server CPU, client CPU and a py-spy profile of the server around a phase (`with Measured(pid) as m:`)."""

    def __init__(self, pid: int, profile: bool = True):
        self.pid, self.sampler = pid, Sampler(pid) if profile else None

    def __enter__(self) -> Measured:
        if self.sampler is not None:
            self.sampler.start()
        self.cpu0, self.client0 = process_cpu(self.pid), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server_cpu = process_cpu(self.pid) - self.cpu0
        self.client_cpu = time.process_time() - self.client0
        self.profile = self.sampler.stop() if self.sampler is not None else None

    def figures(self, label: str, submissions: int, wall: float) -> list[tuple[str, str]]:
        per = 1000 * self.server_cpu / submissions if submissions else float("nan")
        rows = [
            (
                f"{label}: CPU server / this client",
                f"{self.server_cpu:.1f} s / {self.client_cpu:.1f} s ({wall:.1f} s wall)",
            ),
            (f"{label}: server CPU per submission (incl. its queue fetch)", f"{per:.1f} ms"),
            (f"{label}: server peak RSS (since start)", f"{peak_rss_mb(self.pid):.0f} MiB"),
        ]
        if self.sampler is not None:
            rows += [(f"{label}: {k}", v) for k, v in summary(self.profile, self.sampler.error)]
        return rows


def load_figures(label: str, timings: Timings, wall: float, n_annotators: int, submissions: int, think: float):
    n_ok = len(timings.submit)
    figures = [
        (f"{label}: annotators x submissions each, think time", f"{n_annotators} x {submissions}, {think:g} s"),
        (f"{label}: wall time", f"{wall:.1f} s"),
        (f"{label}: acknowledged submissions", str(n_ok)),
        (f"{label}: throughput", f"{n_ok / wall:.1f} submissions/s"),
        (f"{label}: requests/s (queue + submit)", f"{(n_ok + len(timings.queue)) / wall:.1f}"),
        (
            f"{label}: submit p50 / p95 / max",
            f"{ms(pct(timings.submit, 50))} / {ms(pct(timings.submit, 95))} / "
            f"{ms(max(timings.submit, default=float('nan')))}",
        ),
        (
            f"{label}: queue fetch p50 / p95 / max",
            f"{ms(pct(timings.queue, 50))} / {ms(pct(timings.queue, 95))} / "
            f"{ms(max(timings.queue, default=float('nan')))}",
        ),
        (f"{label}: errors", str(sum(timings.errors.values()))),
    ]
    for msg, count in timings.errors.most_common():
        figures.append((f"{label}:   error", f"{count} x {msg}"))
    if timings.empty_queues:
        figures.append((f"{label}: annotators who found an empty queue", str(timings.empty_queues)))
    return figures
