"""server_load.py's setup through the owner API: datasets, records (bulk), annotators; and the database check."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from load_phase import story

if TYPE_CHECKING:
    from conftest import Server

BULK_MAX = 500  # argilla_server.api.schemas.v1.records_bulk.RECORDS_BULK_CREATE_MAX_ITEMS


def check(resp: httpx.Response, what: str) -> dict:
    if resp.status_code >= 300:
        raise RuntimeError(f"{what}: HTTP {resp.status_code} {resp.text[:500]}")
    return resp.json()


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
