"""`codigit serve --database-url postgresql+asyncpg://…`: the same server and search engine on PostgreSQL.

Starts a throwaway PostgreSQL cluster (Debian's postgresql package, installed by `make test`) on a free loopback
port; nothing else on the machine is touched.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import argilla as rg
import pytest
from conftest import STUDY, codigit, free_port, start_server

pytestmark = pytest.mark.slow  # a PostgreSQL cluster of its own and a server on it


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    assert found, "PostgreSQL server binaries not found: apt-get install postgresql (make test does)"
    return found[-1]


@pytest.fixture(scope="module")
def postgres_url():
    # not under pytest's tmp dir: that is private to root, and the cluster runs as `postgres`
    root = Path(tempfile.mkdtemp(prefix="codigit-pg-"))
    data, port = root / "data", free_port()
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # initdb refuses to run as root
    if as_user:
        shutil.chown(root, "postgres")
    subprocess.run(
        [*as_user, _pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"], check=True, capture_output=True
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*as_user, _pg_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        deadline = time.monotonic() + 30
        while (
            subprocess.run(
                [*as_user, _pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "argilla"],
                capture_output=True,
            ).returncode
            != 0
        ):
            assert time.monotonic() < deadline, (root / "log").read_text()
            time.sleep(0.5)
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/argilla"
    finally:
        subprocess.run([*as_user, _pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_serve_on_postgresql(postgres_url, tmp_path):
    home = tmp_path / "home"
    server = start_server(home, extra=("--database-url", postgres_url))
    try:
        assert server.http().get("/status").json()["search_engine"]["database"] == "postgresql"
        assert codigit("init", "--study", str(STUDY), home=home).returncode == 0
        client = rg.Argilla(api_url=server.url, api_key=server.api_key)
        workspace = rg.Workspace(name="pg", client=client).create()
        settings = rg.Settings(
            fields=[rg.TextField(name="text")],
            questions=[
                rg.LabelQuestion(name="label", labels=["a", "b"]),
                rg.RatingQuestion(name="r", values=[1, 2, 3]),
            ],
            metadata=[rg.TermsMetadataProperty(name="topic"), rg.IntegerMetadataProperty(name="n")],
        )
        dataset = rg.Dataset(name="pg-search", workspace=workspace, settings=settings, client=client).create()
        dataset.records.log(
            [
                {"id": "care", "text": "care work is work", "topic": "care", "n": 1},
                {"id": "family", "text": "a family story about care and work", "topic": ["family", "care"], "n": 5},
                {"id": "identity", "text": "identity and names", "topic": "identity", "n": 9},
            ]
        )
        http = server.http()

        def search(body: dict) -> list[str]:
            found = http.post(f"/datasets/{dataset.id}/records/search", json=body).raise_for_status().json()
            return [item["record"]["external_id"] for item in found["items"]]

        assert search({"query": {"text": {"q": "work"}}})[0] == "care"  # ranked: shorter record, two hits
        assert set(search({"query": {"text": {"q": "care work"}}})) == {"care", "family"}
        terms = {"type": "terms", "scope": {"entity": "metadata", "metadata_property": "topic"}, "values": ["care"]}
        assert set(search({"query": {}, "filters": {"and": [terms]}})) == {"care", "family"}
        rng = {"type": "range", "scope": {"entity": "metadata", "metadata_property": "n"}, "ge": 2, "le": 9}
        assert set(search({"query": {}, "filters": {"and": [rng]}})) == {"family", "identity"}
        order = {"scope": {"entity": "metadata", "metadata_property": "n"}, "order": "desc"}
        assert search({"query": {}, "sort": [order]}) == ["identity", "family", "care"]

        record_id = next(r for r in dataset.records if r.id == "care")._server_id
        body = {"values": {"label": {"value": "a"}, "r": {"value": 3}}, "status": "submitted"}
        assert http.post(f"/records/{record_id}/responses", json=body).status_code == 201
        rated = {"type": "range", "scope": {"entity": "response", "question": "r"}, "ge": 3}
        assert search({"query": {}, "filters": {"and": [rated]}}) == ["care"]
        pending = {"type": "terms", "scope": {"entity": "response", "property": "status"}, "values": ["pending"]}
        mine = http.post(f"/me/datasets/{dataset.id}/records/search", json={"query": {}, "filters": {"and": [pending]}})
        assert {i["record"]["external_id"] for i in mine.json()["items"]} == {"family", "identity"}
        assert http.get(f"/datasets/{dataset.id}/progress").json()["total"] == 3
    finally:
        assert server.stop() == 0
