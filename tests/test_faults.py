"""Faults: the server is killed with SIGKILL while annotators submit; after a restart every acknowledged
submission is still there (a SQLite commit has reached the WAL file before the 201 goes out, so a process crash
cannot lose it; power loss is another matter, see docs/organisers.md)."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
import uuid

import argilla as rg
import httpx
import pytest
from conftest import make_dataset, start_server

pytestmark = pytest.mark.slow  # servers killed and restarted under load; a 10k-story release killed mid-write


def test_sigkill_mid_load_loses_no_acknowledged_submission(tmp_path):
    server = start_server(tmp_path / "home")
    try:
        client = rg.Argilla(api_url=server.url, api_key=server.api_key)
        dataset = make_dataset(client, "faults")
        dataset.records.log([{"id": f"x{i}", "text": f"record {i}"} for i in range(200)])
        record_ids = [r._server_id for r in dataset.records]
        workspace_id = client.workspaces("jobs").id
        owner = server.http()
        keys = []
        for i in range(20):
            user = owner.post("/users", json={"username": f"kill-{i}", "first_name": "k", "role": "annotator",
                                              "password": "pw-12345678"}).raise_for_status().json()  # fmt: skip
            owner.post(f"/workspaces/{workspace_id}/users", json={"user_id": user["id"]}).raise_for_status()
            keys.append(user["api_key"])
        acknowledged: list[str] = []  # response ids the server answered 201 for
        lock = threading.Lock()

        def annotate(key: str) -> None:
            with httpx.Client(base_url=f"{server.url}/api/v1", headers={"X-Argilla-Api-Key": key}, timeout=30) as h:
                for rid in record_ids:
                    try:
                        r = h.post(f"/records/{rid}/responses",
                                   json={"values": {"ok": {"value": "yes"}}, "status": "submitted"})  # fmt: skip
                    except httpx.HTTPError:
                        return  # the server is gone
                    if r.status_code == 201:
                        with lock:
                            acknowledged.append(r.json()["id"])

        threads = [threading.Thread(target=annotate, args=(k,)) for k in keys]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(acknowledged) < 100 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.proc.send_signal(signal.SIGKILL)  # mid-load, no shutdown of any kind
        server.proc.wait(timeout=30)
        for t in threads:
            t.join(timeout=60)
        assert len(acknowledged) >= 100
    finally:
        if server.proc.poll() is None:
            server.proc.kill()

    # the database after a crash: every acknowledged response is in it, and the file is sound
    with sqlite3.connect(server.home / "argilla.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {str(uuid.UUID(row[0])) for row in db.execute("SELECT id FROM responses")}
    assert set(acknowledged) <= stored
    again = start_server(server.home)  # and the server comes back on it
    try:
        progress = again.http().get(f"/datasets/{dataset.id}/users/progress").json()["users"]
        # every submitted answer counts, on completed records and on those still short of min_submitted (2): the
        # records the fastest annotator reached alone before the kill
        assert sum(u[status]["submitted"] for u in progress for status in ("completed", "pending")) >= len(acknowledged)
    finally:
        again.stop()


def test_sigkill_mid_release_leaves_no_release_and_a_rerun_succeeds(tmp_path):
    """`codigit release` killed while it writes: no release folder (only its hidden temp folder), and the same
    command then writes a release that verifies."""
    import subprocess
    import sys

    from conftest import REPO, codigit
    from release_data import base, snapshot

    from codigit.records import write_snapshot

    snap = write_snapshot(snapshot(*base(10_000)), tmp_path / "snaps")  # big enough to take several seconds
    out = tmp_path / "releases"
    args = ["release", "0.1.0", "--snapshot", str(snap), "--out", str(out), "--no-roster"]
    proc = subprocess.Popen([sys.executable, "-m", "codigit.cli", *args], cwd=REPO, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(out.glob(".tmp-0.1.0-*/public/data/*.parquet")):  # mid-write: the first files are there
        assert proc.poll() is None, f"the release finished before it could be killed: {proc.stderr.read()}"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert not (out / "0.1.0").exists() and [p.name for p in out.iterdir() if not p.name.startswith(".tmp-")] == []
    again = codigit(*args)
    assert again.returncode == 0, again.stderr
    verified = codigit("release", "verify", str(out / "0.1.0"))
    assert verified.returncode == 0, verified.stderr
