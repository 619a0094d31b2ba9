"""Load benchmark for `codigit serve`: concurrent annotators, and the annotation queue at 1k vs 100k records.

Starts its own server (argilla-server 2.8 on SQLite with codigit's SQL search engine) in a temporary home, drives
it over HTTP on 127.0.0.1 only, and prints figures; nothing here asserts on timing.

    .venv/bin/python benchmarks/server_load.py [--annotators 20,100] [--quick] [--no-search]

1. For each N in --annotators (default 20 and 100), N annotators at once on a dataset of their own, each fetching
   their queue (the UI's request) and submitting a response to the first record, a fixed number of times
   (load_phase.py): throughput, p50/p95 latency of submissions and of queue fetches, errors; the server process's
   CPU per submission, its peak RSS and, with py-spy, where its CPU went (server_profile.py); then every
   acknowledged (2xx) submission is looked up in the database (SQLite file) and counted via the owner API.
2. One annotator's queue request on a 1k-record and a 100k-record dataset, interleaved, after that annotator has
   submitted a few responses to each so the "pending" filter has something to exclude. Records are created
   through the bulk API (default), or with `--seed in-process` (the `--quick` default) through argilla's own
   `CreateRecordsBulk` in a child process; either way they are real records of the server's database, indexed
   by its own triggers.

The last line printed is `search_p95_ratio_100k_vs_1k: X`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from conftest import UI_QUEUE, Server, start_server  # noqa: E402  the tests' own way of starting `codigit serve`
from load_phase import QUEUE_PARAMS, Measured, load_figures, ms, pct, run_load  # noqa: E402
from load_setup import (  # noqa: E402
    BULK_MAX,
    bulk_create,
    check,
    create_annotators,
    create_dataset,
    db_response_ids,
    records_payload,
)


# -- small helpers -------------------------------------------------------------------------------------------------
def code_version() -> str:
    """The commit the server runs, with "+dirty" when codigit/ has uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "codigit"], cwd=REPO, capture_output=True, text=True)
    except OSError:
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if head.returncode == 0 else "unknown"


def seed_in_process(home: Path, dataset_id: str, n: int, seed: int) -> None:
    """Argilla's own bulk path (`CreateRecordsBulk`, as the bulk route runs it) on the server's database, minus HTTP.

    Runs in a child process (argilla-server reads its settings on first import) while the server is up and idle.
    Records are validated, inserted, given their distribution status and committed exactly as the route does, so
    codigit's triggers index them in the same transaction. Only the per-record webhook notification is skipped:
    this home has no webhooks, so it would re-load the dataset (6 queries) per record and enqueue nothing.
    """
    import warnings

    from codigit.server import app as server_app

    # argilla's bulk path emits this SAWarning on every batch (the server logs the same); it is not ours to fix
    warnings.filterwarnings("ignore", message="Object of type <Record> not in session")
    server_app.configure(home)
    import argilla_server.bulk.records_bulk as records_bulk
    from argilla_server.api.schemas.v1.records_bulk import RecordsBulkCreate
    from argilla_server.database import AsyncSessionLocal, async_engine
    from argilla_server.models import Dataset
    from sqlalchemy.orm import selectinload

    from codigit.server.search import SQLSearchEngine

    async def no_webhooks(db, event, record):
        return []

    records_bulk.notify_record_event_v1 = no_webhooks
    rng = random.Random(seed)

    async def go() -> None:
        engine = SQLSearchEngine()
        for start in range(0, n, BULK_MAX):
            async with AsyncSessionLocal() as db:
                dataset = await Dataset.get_or_raise(
                    db,
                    uuid.UUID(dataset_id),
                    options=[
                        selectinload(Dataset.fields),
                        selectinload(Dataset.questions),
                        selectinload(Dataset.metadata_properties),
                        selectinload(Dataset.vectors_settings),
                    ],
                )
                bulk = RecordsBulkCreate(items=records_payload(dataset_id, start, min(start + BULK_MAX, n), rng))
                await records_bulk.CreateRecordsBulk(db, engine).create_records_bulk(dataset, bulk)
        await async_engine.dispose()

    asyncio.run(go())


def seed_via_child(home: Path, dataset_id: str, n: int, seed: int) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, __file__, "--seed-in-process", str(home), dataset_id, str(n), str(seed)],
        cwd=REPO,
        check=True,
        timeout=3600,
    )
    return time.perf_counter() - t0


# -- one annotator's queue at two dataset sizes ----------------------------------------------------------------------
def queue_latencies(
    http: httpx.Client, dataset_ids: dict[str, str], warmup: int, n: int
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Time n queue requests per dataset, interleaved (a, b, a, b, ...) so both sizes see the same machine state."""
    lat: dict[str, list[float]] = {label: [] for label in dataset_ids}
    total: dict[str, int] = {}
    for i in range(warmup + n):
        for label, dataset_id in dataset_ids.items():
            t0 = time.perf_counter()
            resp = http.post(f"/me/datasets/{dataset_id}/records/search", params=QUEUE_PARAMS, json=UI_QUEUE)
            elapsed = time.perf_counter() - t0
            total[label] = check(resp, "queue")["total"]
            if i >= warmup:
                lat[label].append(elapsed)
    return lat, total


def submit_some(http: httpx.Client, dataset_id: str, n: int) -> None:
    for i in range(n):
        items = check(
            http.post(f"/me/datasets/{dataset_id}/records/search", params=QUEUE_PARAMS, json=UI_QUEUE), "queue"
        )["items"]
        body = {"values": {"q": {"value": f"answer {i}"}}, "status": "submitted"}
        check(http.post(f"/records/{items[0]['record']['id']}/responses", json=body), "submit")


# -- the concurrent phase, once per number of annotators -----------------------------------------------------------
def load_round(server: Server, owner: httpx.Client, ws_id: str, n: int, args: argparse.Namespace) -> list:
    """n annotators at once on a dataset of their own; figures labelled "load n", verified against the database."""
    label = f"load {n}"
    t0 = time.perf_counter()
    users = create_annotators(owner, ws_id, n, f"load{n}x")
    print(f"created {n} annotators in {time.perf_counter() - t0:.1f}s", flush=True)
    load_ds = create_dataset(owner, ws_id, f"load-{n}")
    secs = asyncio.run(bulk_create(server, load_ds, args.load_records, args.bulk_concurrency, 1))
    figures = [(f"{label}: seed {args.load_records} records via bulk API", f"{secs:.1f} s")]
    print(f"{label}: {n} annotators x {args.submissions} submissions ...", flush=True)
    import_ds = create_dataset(owner, ws_id, f"import-{n}") if args.import_during_load else None

    async def owner_import() -> str:  # the owner adding records while annotators work, one batch at a time
        if import_ds is None:
            return ""
        t0 = time.perf_counter()
        try:
            await bulk_create(server, import_ds, args.import_during_load, 1, 4)
        except (RuntimeError, httpx.HTTPError) as e:
            return f"FAILED after {time.perf_counter() - t0:.1f} s: {str(e)[:200]}"
        return f"{args.import_during_load} records in {time.perf_counter() - t0:.1f} s"

    async def load_phase() -> tuple[tuple, str]:
        keys = [u["api_key"] for u in users]
        return await asyncio.gather(
            run_load(server.url, keys, load_ds, args.submissions, args.max_load_seconds, args.think), owner_import()
        )

    with Measured(server.proc.pid, profile=not args.no_profile) as measured:
        (timings, wall), import_result = asyncio.run(load_phase())
    figures += load_figures(label, timings, wall, n, args.submissions, args.think)
    figures += measured.figures(label, len(timings.submit), wall)
    if import_result:
        figures.append((f"{label}: owner's bulk import during the load", import_result))

    in_db = db_response_ids(server.home, load_ds)
    acked = {uuid.UUID(r).hex for r in timings.acked}
    progress = check(owner.get(f"/datasets/{load_ds}/users/progress"), "users progress")["users"]
    api_submitted = sum(
        (u.get(state) or {}).get("submitted") or 0 for u in progress for state in ("completed", "pending")
    )
    return figures + [
        (f"{label}: verify: acknowledged found in the SQLite file", f"{len(acked & in_db)} / {len(acked)}"),
        (f"{label}: verify: acknowledged but missing from the database", str(len(acked - in_db))),
        (f"{label}: verify: stored although the client got an error", str(len(in_db - acked))),
        (f"{label}: verify: responses in the database (dataset)", str(len(in_db))),
        (f"{label}: verify: submitted responses per owner API (users/progress)", str(api_submitted)),
    ]


# -- main ------------------------------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--annotators", help="concurrent annotators, one load phase per comma-separated number (default 20,100)"
    )
    parser.add_argument("--quick", action="store_true", help="fewer requests and submissions; still 1k vs 100k")
    parser.add_argument("--submissions", type=int, help="submissions per annotator (default 10, --quick 5)")
    parser.add_argument("--load-records", type=int, default=2000, help="records in each load-test dataset")
    parser.add_argument("--small", type=int, default=1_000, help="records in the small search dataset")
    parser.add_argument("--big", type=int, default=100_000, help="records in the big search dataset")
    parser.add_argument("--search-requests", type=int, help="timed queue requests per size (default 50, --quick 30)")
    parser.add_argument("--no-search", action="store_true", help="only the load phases (no 1k vs 100k queue test)")
    parser.add_argument("--no-profile", action="store_true", help="no py-spy sampling of the server during the load")
    parser.add_argument(
        "--bulk-concurrency", type=int, default=1, help="bulk requests in flight while seeding via the API (default 1)"
    )
    parser.add_argument(
        "--think", type=float, default=0.0, help="mean seconds an annotator spends on a record (default 0: stress)"
    )
    parser.add_argument(
        "--import-during-load",
        type=int,
        default=0,
        metavar="N",
        help="the owner bulk-creates N records in another dataset (500 per request) during each load (default 0)",
    )
    parser.add_argument(
        "--max-load-seconds", type=float, help="bound on each concurrent phase (default 300, --quick 120)"
    )
    parser.add_argument(
        "--seed",
        choices=("api", "in-process"),
        help="how the search datasets get their records: the bulk HTTP route (default), or argilla's own bulk path "
        "in a child process without HTTP and webhook look-ups (default with --quick: 100k via the API takes minutes)",
    )
    parser.add_argument("--home", type=Path, help="server home (default: a new temporary directory)")
    parser.add_argument("--seed-in-process", nargs=4, metavar=("HOME", "DATASET", "N", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.annotators = [int(n) for n in (args.annotators or "20,100").split(",")]
    args.submissions = args.submissions or (5 if args.quick else 10)
    args.search_requests = args.search_requests or (30 if args.quick else 50)
    args.max_load_seconds = args.max_load_seconds or (120 if args.quick else 300)
    args.seed = args.seed or ("in-process" if args.quick else "api")
    return args


def search_phase(server: Server, owner: httpx.Client, ws_id: str, args: argparse.Namespace) -> tuple[list, float]:
    """One annotator's queue on the small and the big dataset; figures and the p95 ratio big / small."""
    searcher = create_annotators(owner, ws_id, 1, "searcher")[0]
    how = "bulk API" if args.seed == "api" else "argilla bulk path in-process"
    figures = []
    datasets = {}
    for label, size, seed in (("1k", args.small, 2), ("100k", args.big, 3)):
        datasets[label] = create_dataset(owner, ws_id, f"search-{label}")
        print(f"seeding {size} records ({how}) ...", flush=True)
        if args.seed == "api":
            secs = asyncio.run(bulk_create(server, datasets[label], size, args.bulk_concurrency, seed))
        else:
            secs = seed_via_child(server.home, datasets[label], size, seed)
        figures.append((f"seed: {size} records via {how}", f"{secs:.1f} s ({size / secs:.0f} rec/s)"))
    http = server.http(searcher["api_key"])
    sizes = {"1k": args.small, "100k": args.big}
    for ds in datasets.values():
        submit_some(http, ds, 5)
    results, totals = queue_latencies(http, datasets, 5, args.search_requests)
    for label, lat in results.items():
        figures += [
            (f"search {label}: records / pending for the annotator", f"{sizes[label]} / {totals[label]}"),
            (
                f"search {label}: queue p50 / p95 / max ({args.search_requests} req, interleaved)",
                f"{ms(pct(lat, 50))} / {ms(pct(lat, 95))} / {ms(max(lat))}",
            ),
        ]
    return figures, pct(results["100k"], 95) / pct(results["1k"], 95)


def log_figures(server: Server) -> list[tuple[str, str]]:
    log = server.log.read_text(errors="replace") if server.log.exists() else ""
    markers = Counter(m for line in log.splitlines() for m in ("database is locked", "Traceback", "ERROR") if m in line)
    figures = [("server log: lines with locked / Traceback / ERROR", str(dict(markers)))]
    # the exception lines that end each traceback, e.g. "sqlalchemy.exc.TimeoutError: QueuePool limit ..."
    raised = Counter(
        line.strip()[:160]
        for line in log.splitlines()
        if re.match(r"^[\w.]+(Error|Exception|Warning)\b", line.strip()) and not line.startswith(" ")
    )
    return figures + [("server log:   raised", f"{count} x {msg}") for msg, count in raised.most_common(5)]


def main() -> None:
    args = parse_args()
    if args.seed_in_process:
        home, dataset_id, n, seed = args.seed_in_process
        seed_in_process(Path(home), dataset_id, int(n), int(seed))
        return
    t_start = time.perf_counter()
    tmp = None
    if args.home is None:
        tmp = tempfile.TemporaryDirectory(prefix="codigit-load-")
        home = Path(tmp.name) / "home"
    else:
        home = args.home
    print(f"starting codigit serve in {home}", flush=True)
    figures: list[tuple[str, str]] = [("code (git HEAD of codigit)", code_version())]
    ratio = float("nan")
    server = start_server(home)
    try:
        owner = server.http()
        owner.timeout = httpx.Timeout(600)
        ws = check(owner.post("/workspaces", json={"name": f"load-{uuid.uuid4().hex[:8]}"}), "create workspace")
        for n in args.annotators:
            figures += load_round(server, owner, ws["id"], n, args)
        if not args.no_search:
            search, ratio = search_phase(server, owner, ws["id"], args)
            figures += search
        figures.append(("total run time", f"{time.perf_counter() - t_start:.1f} s"))
    finally:
        if server.proc.poll() is None:
            server.stop()
        figures += log_figures(server)
        if tmp is not None:
            tmp.cleanup()
        else:
            figures.append(("server log", str(server.log)))
        print_table(figures)
    print(f"search_p95_ratio_100k_vs_1k: {ratio:.2f}")
    from record import machine, record

    record("server_load", {**dict(figures), "search_p95_ratio_100k_vs_1k": round(ratio, 2)}, machine())


def print_table(figures: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in figures)
    print()
    print(f"{'figure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 40}")
    for k, v in figures:
        print(f"{k:<{width}}  {v}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
