"""Load benchmark for `codigit serve`: concurrent annotators, and the annotation queue at 1k vs 100k records.

Starts its own server (argilla-server 2.8 on SQLite with codigit's SQL search engine) in a temporary home, drives
it over HTTP on 127.0.0.1 only, and prints figures; nothing here asserts on timing.

    .venv/bin/python benchmarks/server_load.py [--annotators N] [--quick]

1. N annotators at once, each fetching their queue (the UI's request) and submitting a response to the first
   record, a fixed number of times: throughput, p50/p95 latency of submissions and of queue fetches, errors;
   then every acknowledged (2xx) submission is looked up in the database (SQLite file) and counted via the
   owner API.
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
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from conftest import UI_QUEUE, Server, start_server  # noqa: E402  the tests' own way of starting `codigit serve`

BULK_MAX = 500  # argilla_server.api.schemas.v1.records_bulk.RECORDS_BULK_CREATE_MAX_ITEMS
QUEUE_PARAMS = {"include": "responses", "offset": 0, "limit": 10}
WORDS = (
    "gender work family identity care safety story prompt answer model community language school parent child "
    "friend colleague manager health voice choice respect fairness equal pay home time help listen learn change"
).split()


# -- small helpers -------------------------------------------------------------------------------------------------
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


def code_version() -> str:
    """The commit the server runs, with "+dirty" when codigit/ has uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "codigit"], cwd=REPO, capture_output=True, text=True)
    except OSError:
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if head.returncode == 0 else "unknown"


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def check(resp: httpx.Response, what: str) -> dict:
    if resp.status_code >= 300:
        raise RuntimeError(f"{what}: HTTP {resp.status_code} {resp.text[:500]}")
    return resp.json()


def error_key(resp: httpx.Response | None = None, exc: BaseException | None = None) -> str:
    if exc is not None:
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    assert resp is not None
    try:
        detail = resp.json().get("detail", resp.text)
    except ValueError:
        detail = resp.text
    return f"HTTP {resp.status_code}: {str(detail)[:200]}"


def story(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


@dataclass
class Timings:
    queue: list[float] = field(default_factory=list)
    submit: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    acked: list[str] = field(default_factory=list)  # response ids the server answered 2xx for
    empty_queues: int = 0


# -- setup through the owner API -----------------------------------------------------------------------------------
def create_dataset(owner: httpx.Client, workspace_id: str, name: str) -> str:
    # as the study's authoring dataset: records stay open to everyone (min_submitted far above the community)
    ds = check(
        owner.post(
            "/datasets",
            json={
                "name": name,
                "workspace_id": workspace_id,
                "distribution": {"strategy": "overlap", "min_submitted": 1000},
            },
        ),
        "create dataset",
    )
    check(
        owner.post(
            f"/datasets/{ds['id']}/fields",
            json={"name": "invitation", "title": "Invitation", "required": True, "settings": {"type": "text"}},
        ),
        "create field",
    )
    check(
        owner.post(
            f"/datasets/{ds['id']}/questions",
            json={"name": "q", "title": "Your answer", "required": True, "settings": {"type": "text"}},
        ),
        "create question",
    )
    check(owner.put(f"/datasets/{ds['id']}/publish"), "publish dataset")
    return ds["id"]


async def bulk_create(server: Server, dataset_id: str, n: int, concurrency: int, seed: int) -> float:
    """Create n records through `POST /datasets/{id}/records/bulk` in batches of 500; returns seconds taken."""
    rng = random.Random(seed)
    batches = [records_payload(dataset_id, start, min(start + BULK_MAX, n), rng) for start in range(0, n, BULK_MAX)]
    todo = iter(batches)
    done = 0
    t0 = time.perf_counter()

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done
        for batch in todo:
            resp = await client.post(f"/datasets/{dataset_id}/records/bulk", json={"items": batch})
            if resp.status_code != 201:
                raise RuntimeError(f"bulk create: HTTP {resp.status_code} {resp.text[:500]}")
            done += len(batch)
            if n >= 20_000 and done % 10_000 < BULK_MAX:
                rate = done / (time.perf_counter() - t0)
                print(f"    {done:>7} / {n} records  ({rate:.0f} records/s)", flush=True)

    async with httpx.AsyncClient(
        base_url=f"{server.url}/api/v1", headers={"X-Argilla-Api-Key": server.api_key}, timeout=600
    ) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return time.perf_counter() - t0


def records_payload(dataset_id: str, start: int, stop: int, rng: random.Random) -> list[dict]:
    return [
        {"fields": {"invitation": f"Invitation {i}: " + story(rng, 40)}, "external_id": f"{dataset_id}-{i}"}
        for i in range(start, stop)
    ]


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


def create_annotators(owner: httpx.Client, workspace_id: str, n: int, prefix: str) -> list[dict]:
    users = []
    for i in range(n):
        user = check(
            owner.post(
                "/users",
                json={
                    "username": f"{prefix}{i:04d}",
                    "first_name": f"Annotator {i}",
                    "role": "annotator",
                    "password": uuid.uuid4().hex,
                },
            ),
            "create user",
        )
        check(owner.post(f"/workspaces/{workspace_id}/users", json={"user_id": user["id"]}), "add user to workspace")
        users.append(user)
    return users


def db_response_ids(home: Path, dataset_id: str) -> set[str]:
    """Response ids of the dataset, read straight from the server's SQLite file (uuid hex, as SQLAlchemy stores)."""
    conn = sqlite3.connect(f"file:{home / 'argilla.db'}?mode=ro", uri=True, timeout=60)
    try:
        rows = conn.execute(
            "SELECT responses.id FROM responses JOIN records ON records.id = responses.record_id "
            "WHERE records.dataset_id = ?",
            (uuid.UUID(dataset_id).hex,),
        ).fetchall()
    finally:
        conn.close()
    return {uuid.UUID(str(r[0])).hex for r in rows}


# -- the simulated annotators ----------------------------------------------------------------------------------------
async def annotator(
    server: Server,
    api_key: str,
    dataset_id: str,
    submissions: int,
    timings: Timings,
    start: asyncio.Event,
    deadline: float,
    seed: int,
    think: float,
) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(
        base_url=f"{server.url}/api/v1", headers={"X-Argilla-Api-Key": api_key}, timeout=120
    ) as client:
        await start.wait()
        done = 0
        attempts = 0
        while done < submissions and attempts < submissions * 3 and time.monotonic() < deadline:
            attempts += 1
            t0 = time.perf_counter()
            try:
                resp = await client.post(
                    f"/me/datasets/{dataset_id}/records/search", params=QUEUE_PARAMS, json=UI_QUEUE
                )
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
                resp = await client.post(f"/records/{record_id}/responses", json=body)
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
    server: Server, users: list[dict], dataset_id: str, submissions: int, max_seconds: float, think: float
) -> tuple[Timings, float]:
    timings = Timings()
    start = asyncio.Event()
    deadline = time.monotonic() + max_seconds
    tasks = [
        asyncio.create_task(
            annotator(server, u["api_key"], dataset_id, submissions, timings, start, deadline, i, think)
        )
        for i, u in enumerate(users)
    ]
    await asyncio.sleep(0.5)  # let every client get to the start line
    t0 = time.perf_counter()
    start.set()
    await asyncio.gather(*tasks)
    return timings, time.perf_counter() - t0


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


# -- main ------------------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotators", type=int, help="concurrent annotators (default 100, --quick 20)")
    parser.add_argument("--quick", action="store_true", help="fewer annotators and requests; still 1k vs 100k")
    parser.add_argument("--submissions", type=int, help="submissions per annotator (default 10, --quick 5)")
    parser.add_argument("--load-records", type=int, default=2000, help="records in the load-test dataset")
    parser.add_argument("--small", type=int, default=1_000, help="records in the small search dataset")
    parser.add_argument("--big", type=int, default=100_000, help="records in the big search dataset")
    parser.add_argument("--search-requests", type=int, help="timed queue requests per size (default 50, --quick 30)")
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
        help="the owner bulk-creates N records in another dataset (500 per request) during the load (default 0)",
    )
    parser.add_argument(
        "--max-load-seconds", type=float, help="bound on the concurrent phase (default 300, --quick 120)"
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
    if args.seed_in_process:
        home, dataset_id, n, seed = args.seed_in_process
        seed_in_process(Path(home), dataset_id, int(n), int(seed))
        return
    seed_mode = args.seed or ("in-process" if args.quick else "api")
    n_annotators = args.annotators or (20 if args.quick else 100)
    submissions = args.submissions or (5 if args.quick else 10)
    n_search = args.search_requests or (30 if args.quick else 50)
    max_load_seconds = args.max_load_seconds or (120 if args.quick else 300)
    warmup = 5

    t_start = time.perf_counter()
    tmp = None
    if args.home is None:
        tmp = tempfile.TemporaryDirectory(prefix="codigit-load-")
        home = Path(tmp.name) / "home"
    else:
        home = args.home
    print(f"starting codigit serve in {home}", flush=True)
    figures: list[tuple[str, str]] = [("code (git HEAD of codigit)", code_version())]
    server = start_server(home)
    try:
        owner = server.http()
        owner.timeout = httpx.Timeout(600)
        ws = check(owner.post("/workspaces", json={"name": f"load-{uuid.uuid4().hex[:8]}"}), "create workspace")

        # -- 1. concurrent annotators ------------------------------------------------------------------------------
        t0 = time.perf_counter()
        users = create_annotators(owner, ws["id"], n_annotators + 1, "loadann")
        searcher, users = users[-1], users[:-1]
        print(f"created {len(users) + 1} annotators in {time.perf_counter() - t0:.1f}s", flush=True)
        load_ds = create_dataset(owner, ws["id"], "load")
        secs = asyncio.run(bulk_create(server, load_ds, args.load_records, args.bulk_concurrency, 1))
        print(f"seeded the load dataset ({args.load_records} records) in {secs:.1f}s", flush=True)
        figures.append((f"seed: {args.load_records} load records via bulk API", f"{secs:.1f} s"))

        print(f"load: {len(users)} annotators x {submissions} submissions ...", flush=True)
        cpu0, client0 = process_cpu(server.proc.pid), time.process_time()
        import_ds = create_dataset(owner, ws["id"], "import") if args.import_during_load else None

        async def load_phase() -> tuple[tuple[Timings, float], str]:
            async def owner_import() -> str:  # the owner adding records while annotators work, one batch at a time
                if import_ds is None:
                    return ""
                t0 = time.perf_counter()
                try:
                    await bulk_create(server, import_ds, args.import_during_load, 1, 4)
                except (RuntimeError, httpx.HTTPError) as e:
                    return f"FAILED after {time.perf_counter() - t0:.1f} s: {str(e)[:200]}"
                return f"{args.import_during_load} records in {time.perf_counter() - t0:.1f} s"

            return await asyncio.gather(
                run_load(server, users, load_ds, submissions, max_load_seconds, args.think), owner_import()
            )

        (timings, wall), import_result = asyncio.run(load_phase())
        server_cpu, client_cpu = process_cpu(server.proc.pid) - cpu0, time.process_time() - client0
        n_ok = len(timings.submit)
        figures += [
            ("load: annotators x submissions each, think time", f"{len(users)} x {submissions}, {args.think:g} s"),
            ("load: wall time", f"{wall:.1f} s"),
            ("load: acknowledged submissions", str(n_ok)),
            ("load: throughput", f"{n_ok / wall:.1f} submissions/s"),
            ("load: requests/s (queue + submit)", f"{(n_ok + len(timings.queue)) / wall:.1f}"),
            (
                "load: submit p50 / p95 / max",
                f"{ms(pct(timings.submit, 50))} / {ms(pct(timings.submit, 95))} / "
                f"{ms(max(timings.submit, default=float('nan')))}",
            ),
            (
                "load: queue fetch p50 / p95 / max",
                f"{ms(pct(timings.queue, 50))} / {ms(pct(timings.queue, 95))} / "
                f"{ms(max(timings.queue, default=float('nan')))}",
            ),
            ("load: CPU server / this client", f"{server_cpu:.1f} s / {client_cpu:.1f} s ({wall:.1f} s wall, 2 cores)"),
            ("load: errors", str(sum(timings.errors.values()))),
        ]
        if import_result:
            figures.append(("load: owner's bulk import during the load", import_result))
        for msg, count in timings.errors.most_common():
            figures.append(("load:   error", f"{count} x {msg}"))
        if timings.empty_queues:
            figures.append(("load: annotators who found an empty queue", str(timings.empty_queues)))

        in_db = db_response_ids(home, load_ds)
        acked = {uuid.UUID(r).hex for r in timings.acked}
        missing = acked - in_db
        progress = check(owner.get(f"/datasets/{load_ds}/users/progress"), "users progress")["users"]
        api_submitted = sum(
            (u.get(state) or {}).get("submitted") or 0 for u in progress for state in ("completed", "pending")
        )
        figures += [
            ("verify: acknowledged submissions found in the SQLite file", f"{len(acked & in_db)} / {len(acked)}"),
            ("verify: acknowledged but missing from the database", str(len(missing))),
            ("verify: stored although the client got an error", str(len(in_db - acked))),
            ("verify: responses in the database (dataset)", str(len(in_db))),
            ("verify: submitted responses per owner API (users/progress)", str(api_submitted)),
        ]

        # -- 2. one annotator's queue: 1k vs 100k records ----------------------------------------------------------
        how = "bulk API" if seed_mode == "api" else "argilla bulk path in-process"
        secs = {}
        datasets = {}
        for label, size, seed in (("1k", args.small, 2), ("100k", args.big, 3)):
            datasets[label] = create_dataset(owner, ws["id"], f"search-{label}")
            print(f"seeding {size} records ({how}) ...", flush=True)
            if seed_mode == "api":
                secs[label] = asyncio.run(bulk_create(server, datasets[label], size, args.bulk_concurrency, seed))
            else:
                secs[label] = seed_via_child(home, datasets[label], size, seed)
            figures.append((f"seed: {size} records via {how}", f"{secs[label]:.1f} s ({size / secs[label]:.0f} rec/s)"))
        http = server.http(searcher["api_key"])
        sizes = {"1k": args.small, "100k": args.big}
        for ds in datasets.values():
            submit_some(http, ds, 5)
        results, totals = queue_latencies(http, datasets, warmup, n_search)
        for label, lat in results.items():
            figures += [
                (f"search {label}: records / pending for the annotator", f"{sizes[label]} / {totals[label]}"),
                (
                    f"search {label}: queue p50 / p95 / max ({n_search} req, interleaved)",
                    f"{ms(pct(lat, 50))} / {ms(pct(lat, 95))} / {ms(max(lat))}",
                ),
            ]
        ratio = pct(results["100k"], 95) / pct(results["1k"], 95)
        figures.append(("total run time", f"{time.perf_counter() - t_start:.1f} s"))
    finally:
        if server.proc.poll() is None:
            server.stop()
        log = server.log.read_text(errors="replace") if server.log.exists() else ""
        markers = Counter(
            m for line in log.splitlines() for m in ("database is locked", "Traceback", "ERROR") if m in line
        )
        figures.append(("server log: lines with locked / Traceback / ERROR", str(dict(markers))))
        # the exception lines that end each traceback, e.g. "sqlalchemy.exc.TimeoutError: QueuePool limit ..."
        raised = Counter(
            line.strip()[:160]
            for line in log.splitlines()
            if re.match(r"^[\w.]+(Error|Exception|Warning)\b", line.strip()) and not line.startswith(" ")
        )
        for msg, count in raised.most_common(5):
            figures.append(("server log:   raised", f"{count} x {msg}"))
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
