"""The embedded server's own life: background jobs on its loop, restart on the same home, clean shutdown."""

from __future__ import annotations

import signal

import argilla as rg
import pytest
from conftest import STUDY, codigit, make_dataset, start_server, wait_for


def test_distribution_change_runs_the_status_job_in_process(server):
    """PATCHing min_submitted enqueues argilla's rq job; it must run on the server's loop, without Redis."""
    client = rg.Argilla(api_url=server.url, api_key=server.api_key)
    dataset = make_dataset(client, "distribution-job")
    http = server.http()
    record = next(iter(dataset.records))
    created = http.post(
        f"/records/{record._server_id}/responses", json={"values": {"ok": {"value": "yes"}}, "status": "submitted"}
    )
    assert created.status_code == 201, created.text
    assert http.get(f"/datasets/{dataset.id}/progress").json()["completed"] == 0  # 1 of 2 needed

    patched = http.patch(f"/datasets/{dataset.id}", json={"distribution": {"strategy": "overlap", "min_submitted": 1}})
    assert patched.status_code == 200, patched.text
    progress = wait_for(lambda: (p := http.get(f"/datasets/{dataset.id}/progress").json())["completed"] == 1 and p)
    assert progress["total"] == 3 and progress["pending"] == 2


@pytest.mark.slow
def test_restart_keeps_everything(tmp_path):
    home = tmp_path / "home"
    first = start_server(home)
    try:
        assert codigit("init", "--study", str(STUDY), home=home).returncode == 0
        client = rg.Argilla(api_url=first.url, api_key=first.api_key)
        dataset = make_dataset(client, "survives-restart")
        key = first.api_key
        http = first.http()
        record_id = next(iter(dataset.records))._server_id
        http.post(f"/records/{record_id}/responses", json={"values": {"ok": {"value": "no"}}, "status": "submitted"})
    finally:
        assert first.stop(signal.SIGINT) == 0  # Ctrl-C is a clean shutdown
    assert "server stopped" in first.log.read_text()

    second = start_server(home)
    try:
        assert second.api_key == key  # the owner's credentials still open the account
        client = rg.Argilla(api_url=second.url, api_key=second.api_key)
        again = client.datasets("survives-restart", workspace="jobs")
        records = list(again.records(with_responses=True))
        assert sorted(r.id for r in records) == ["r0", "r1", "r2"]
        answered = [r for r in records if r._server_id == record_id][0]
        assert [resp.value for resp in answered.responses["ok"]] == ["no"]
        assert client.datasets("ledger", workspace="codigit-organisers") is not None
        found = second.http().post(f"/datasets/{again.id}/records/search", json={"query": {"text": {"q": "number 2"}}})
        assert [item["record"]["external_id"] for item in found.json()["items"]] == ["r2"]
    finally:
        assert second.stop() == 0


@pytest.mark.slow
def test_redis_url_uses_a_real_redis_and_an_rq_worker(tmp_path):
    """`--redis-url`: jobs go through a real Redis to the rq worker that serve starts beside itself."""
    import subprocess

    import redis
    from conftest import free_port

    port = free_port()
    redis_proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"redis://127.0.0.1:{port}/0"
        wait_for(lambda: _pings(url))
        server = start_server(tmp_path / "home", extra=("--redis-url", url))
        try:
            client = rg.Argilla(api_url=server.url, api_key=server.api_key)
            dataset = make_dataset(client, "redis-job")
            http = server.http()
            record_id = next(iter(dataset.records))._server_id
            body = {"values": {"ok": {"value": "yes"}}, "status": "submitted"}
            assert http.post(f"/records/{record_id}/responses", json=body).status_code == 201
            http.patch(f"/datasets/{dataset.id}", json={"distribution": {"strategy": "overlap", "min_submitted": 1}})
            wait_for(lambda: http.get(f"/datasets/{dataset.id}/progress").json()["completed"] == 1)
            # the worker records the finished job just after the job's own database writes
            jobs = redis.Redis.from_url(url)
            wait_for(lambda: jobs.zcard("rq:finished:default") >= 1)
        finally:
            assert server.stop() == 0
    finally:
        redis_proc.terminate()
        redis_proc.wait(timeout=10)


def _pings(url: str) -> bool:
    import redis

    try:
        return redis.Redis.from_url(url).ping()
    except redis.ConnectionError:
        return False


@pytest.mark.slow
def test_concurrent_submissions_all_land(server):
    """40 annotators submit at the same moment: every submission is acknowledged and stored, none refused."""
    from concurrent.futures import ThreadPoolExecutor

    client = rg.Argilla(api_url=server.url, api_key=server.api_key)
    dataset = make_dataset(client, "concurrent")
    workspace_id = client.workspaces("jobs").id
    owner = server.http()
    keys = []
    for i in range(40):
        user = owner.post(
            "/users",
            json={"username": f"load-{i}", "first_name": f"load-{i}", "role": "annotator", "password": "pw-12345678"},
        ).raise_for_status()
        owner.post(f"/workspaces/{workspace_id}/users", json={"user_id": user.json()["id"]}).raise_for_status()
        keys.append(user.json()["api_key"])
    record_ids = [r._server_id for r in dataset.records]

    def submit(key: str) -> list[int]:
        with server.http(key) as http:
            body = {"values": {"ok": {"value": "yes"}}, "status": "submitted"}
            return [http.post(f"/records/{rid}/responses", json=body).status_code for rid in record_ids]

    with ThreadPoolExecutor(max_workers=len(keys)) as pool:
        codes = [code for result in pool.map(submit, keys) for code in result]
    assert codes == [201] * (len(keys) * len(record_ids))
    progress = owner.get(f"/datasets/{dataset.id}/users/progress").json()["users"]
    assert sum(u["completed"]["submitted"] for u in progress) == len(codes)
