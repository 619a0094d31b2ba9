"""The search engine's interface, and its index following every change made through the real argilla-server API.

Helpers and query builders come from `search_api`; this module has its own workspace and datasets.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import uuid

import pytest
from conftest import REPO
from search_api import PENDING_QUEUE, Dataset, add_annotator, by, create_dataset, ok, search, terms, where


@pytest.fixture(scope="module")
def workspace(owner) -> str:
    return ok(owner.post("/workspaces", json={"name": "search-index"}))["id"]


@pytest.fixture(scope="module")
def annotator(server, owner, workspace):
    with add_annotator(server, owner, workspace, "index-annotator") as client:
        yield client


# -- the interface itself ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_engine_implements_every_abstract_method(tmp_path):
    """In a subprocess: argilla_server reads its settings (database URL) at import time."""
    script = textwrap.dedent(
        """
        import inspect, json
        from argilla_server.search_engine import SearchEngine
        from codigit.server.search import ENGINE_NAME, SQLSearchEngine

        abstract = sorted(SearchEngine.__abstractmethods__)
        report = {"registered": SearchEngine.registered_classes.get(ENGINE_NAME) is SQLSearchEngine,
                  "still_abstract": sorted(SQLSearchEngine.__abstractmethods__), "abstract": abstract,
                  "inherited": [], "signature": []}
        for name in abstract + ["configure_index_vectors"]:
            impl = inspect.getattr_static(SQLSearchEngine, name)
            if impl is inspect.getattr_static(SearchEngine, name):
                report["inherited"].append(name)
            base, mine = getattr(SearchEngine, name), getattr(SQLSearchEngine, name)
            same_kind = inspect.iscoroutinefunction(base) == inspect.iscoroutinefunction(mine)
            if not same_kind or not set(inspect.signature(base).parameters) <= set(inspect.signature(mine).parameters):
                report["signature"].append(name)
        print(json.dumps(report))
        """
    )
    env = {**os.environ, "ARGILLA_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"}
    env["ARGILLA_HOME_PATH"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["registered"] and len(report["abstract"]) >= 19
    assert (report["still_abstract"], report["inherited"], report["signature"]) == ([], [], [])


# -- the index follows every change ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mutable(owner, workspace) -> Dataset:
    rows = [("m0", "alpha first", "news", 10), ("m1", "beta one", "news", 2), ("m2", "beta two", "blog", 3)]
    rows += [("m3", "beta three", "blog", 4), ("m4", "gamma", "blog", 5)]
    items = [
        {"external_id": ext, "fields": {"title": title, "body": "mutable"}, "metadata": {"genre": g, "words": n}}
        for ext, title, g, n in rows
    ]
    return create_dataset(owner, workspace, "contract-mutable", items, metadata={"genre": "terms", "words": "integer"})


def database(server):
    return contextlib.closing(sqlite3.connect(f"file:{server.home / 'argilla.db'}?mode=ro", uri=True))


def docids(server, record_ids) -> list[int]:
    hexes = [uuid.UUID(r).hex for r in record_ids]
    with database(server) as conn:
        sql = f"SELECT docid FROM codigit_fts_docs WHERE record_id IN ({','.join('?' * len(hexes))})"
        return [docid for (docid,) in conn.execute(sql, hexes)]


def index_rows(server, ids: list[int]) -> tuple[int, int]:
    """How many rows codigit_fts_all and codigit_fts_field hold for these docids."""
    marks = ",".join("?" * len(ids))
    with database(server) as conn:
        n_all = conn.execute(f"SELECT count(*) FROM codigit_fts_all WHERE rowid IN ({marks})", ids).fetchone()[0]
        n_field = conn.execute(f"SELECT count(*) FROM codigit_fts_field WHERE rowid / 1024 IN ({marks})", ids)
        return n_all, n_field.fetchone()[0]


def test_record_update_reaches_filters_sorts_and_text(owner, mutable):
    update = {"metadata": {"genre": "blog", "words": 99}, "fields": {"title": "omega first", "body": "mutable"}}
    ok(owner.patch(f"/records/{mutable.ids['m0']}", json=update))
    assert "m0" in search(owner, mutable, where(terms("metadata", ["blog"], metadata_property="genre")))[0]
    assert "m0" not in search(owner, mutable, where(terms("metadata", ["news"], metadata_property="genre")))[0]
    assert search(owner, mutable, {"query": {"text": {"q": "alpha"}}}) == ([], 0)
    assert search(owner, mutable, {"query": {"text": {"q": "omega", "field": "title"}}}) == (["m0"], 1)
    assert search(owner, mutable, {"sort": [by("record", "desc", property="updated_at")]})[0][0] == "m0"
    assert search(owner, mutable, {"sort": [by("record", "asc", property="updated_at")]})[0][-1] == "m0"
    assert ok(owner.get(f"/metadata-properties/{mutable.metadata['words']}/metrics"))["max"] == 99


def test_deleted_records_vanish(server, owner, mutable):
    doomed = [mutable.ids["m1"], mutable.ids["m2"]]
    ids = docids(server, doomed)
    assert len(ids) == 2 and index_rows(server, ids) == (2, 4)  # one row per record, one per (record, field)
    assert owner.delete(f"/datasets/{mutable.id}/records", params={"ids": ",".join(doomed)}).status_code == 204
    assert search(owner, mutable, {"query": {"text": {"q": "beta"}}}) == (["m3"], 1)
    assert sorted(search(owner, mutable)[0]) == ["m0", "m3", "m4"]
    assert ok(owner.get(f"/datasets/{mutable.id}/progress"))["total"] == 3
    assert ok(owner.get(f"/metadata-properties/{mutable.metadata['words']}/metrics"))["min"] == 4
    assert docids(server, doomed) == [] and index_rows(server, ids) == (0, 0)


def test_deleted_response_returns_record_to_pending_queue(owner, annotator, mutable):
    a, m4 = annotator, mutable.ids["m4"]
    submitted = {"values": {"label": {"value": "pos"}}, "status": "submitted"}
    response = ok(a.post(f"/records/{m4}/responses", json=submitted))
    completed = where(terms("record", ["completed"], property="status"))
    assert search(owner, mutable, completed) == (["m4"], 1)
    assert "m4" not in search(a, mutable, PENDING_QUEUE, me=True)[0]
    ok(a.delete(f"/responses/{response['id']}"))
    assert search(owner, mutable, completed) == ([], 0)
    assert "m4" in search(a, mutable, PENDING_QUEUE, me=True)[0]
    assert ok(a.get(f"/me/datasets/{mutable.id}/metrics"))["responses"]["submitted"] == 0


def test_deleted_dataset_leaves_no_index_rows(server, owner, workspace):
    items = [{"external_id": f"d{i}", "fields": {"title": f"doomed {i}", "body": "doomed"}} for i in range(3)]
    doomed = create_dataset(owner, workspace, "contract-doomed", items)
    ids = docids(server, doomed.ids.values())
    assert len(ids) == 3 and index_rows(server, ids) == (3, 6)
    ok(owner.delete(f"/datasets/{doomed.id}"))  # records go by ON DELETE CASCADE, which fires the delete trigger
    assert docids(server, doomed.ids.values()) == [] and index_rows(server, ids) == (0, 0)
    with database(server) as conn:
        tables = ("records", "codigit_fts_docs", "codigit_fts_all")
        assert len({conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}) == 1


def test_trigger_index_equals_a_rebuild(server, owner, workspace, tmp_path):
    """After inserts, an update and a delete (and whatever other tests changed before), the index the triggers kept
    equals one rebuilt from `records` (on a copy)."""
    from sqlalchemy import create_engine

    from codigit.server import sqlindex

    items = [{"external_id": f"t{i}", "fields": {"title": f"trigger {i}", "body": "rebuilt"}} for i in range(3)]
    mine = create_dataset(owner, workspace, "contract-rebuild", items)
    ok(owner.patch(f"/records/{mine.ids['t0']}", json={"fields": {"title": "changed title", "body": "rebuilt"}}))
    assert owner.delete(f"/datasets/{mine.id}/records", params={"ids": mine.ids["t1"]}).status_code == 204
    copy = tmp_path / "copy.db"
    with database(server) as conn, contextlib.closing(sqlite3.connect(copy)) as dst:
        conn.backup(dst)

    def index(path):
        with contextlib.closing(sqlite3.connect(path)) as conn:
            docs = dict(conn.execute("SELECT docid, record_id FROM codigit_fts_docs"))
            whole = {docs[d]: c for d, c in conn.execute("SELECT rowid, content FROM codigit_fts_all")}
            rows = conn.execute("SELECT rowid, field, content FROM codigit_fts_field")
            return whole, {(docs[rowid // 1024], field): content for rowid, field, content in rows}

    kept = index(copy)
    engine = create_engine(f"sqlite:///{copy}")
    with engine.begin() as conn:  # as `codigit serve` does on a database indexed by an older schema version
        conn.exec_driver_sql("UPDATE codigit_meta SET value = '1' WHERE key = 'schema_version'")
        assert sqlindex.install(conn) is True
    engine.dispose()
    assert index(copy) == kept
    changed, deleted = (uuid.UUID(mine.ids[ext]).hex for ext in ("t0", "t1"))
    assert "changed title" in kept[0][changed] and "trigger 0" not in kept[0][changed] and deleted not in kept[0]
