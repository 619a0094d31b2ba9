"""The embedded server's submission fast path (codigit/server/hot_path.py, sqlite_calls.py): argilla-server's work
that no one receives is skipped, and everything someone does receive is unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

import argilla as rg
import pytest
from conftest import CHILD_APP, REPO, make_dataset, wait_for


class Listener:
    """A webhook receiver on 127.0.0.1: the bodies it was sent."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.http = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_port}/hook"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def events(self, kind: str) -> list[dict]:
        return [body for body in self.received if body["type"] == kind]


def test_a_webhook_created_while_the_server_runs_gets_the_next_submissions_events(server):
    """The server remembers that no webhook listens; a webhook created through the API gets the very next events."""
    client = rg.Argilla(api_url=server.url, api_key=server.api_key)
    dataset = make_dataset(client, f"hooks-{uuid.uuid4().hex[:6]}")
    http = server.http()
    first, second = list(dataset.records)[:2]
    body = {"values": {"ok": {"value": "yes"}}, "status": "submitted"}
    assert http.post(f"/records/{first._server_id}/responses", json=body).status_code == 201  # no webhook yet

    listener = Listener()
    hook = http.post("/webhooks", json={"url": listener.url, "events": ["response.created", "record.updated"]})
    assert hook.status_code == 201, hook.text
    try:
        created = http.post(f"/records/{second._server_id}/responses", json=body)
        assert created.status_code == 201, created.text
        got = wait_for(lambda: listener.events("response.created"))
        assert [e["data"]["id"] for e in got] == [created.json()["id"]]
        assert got[0]["data"]["record"]["dataset"]["name"] == dataset.name  # the full event, dataset and all
        assert [e["data"]["id"] for e in wait_for(lambda: listener.events("record.updated"))] == [
            str(second._server_id)
        ]
        assert listener.events("record.completed") == []  # not subscribed: not sent
    finally:
        assert http.delete(f"/webhooks/{hook.json()['id']}").status_code == 200
        listener.http.shutdown()


def test_each_key_signs_in_its_own_user(server):
    """The user found by API key is reused for the username lookup that follows: never another request's user."""
    owner = server.http()
    keys = {}
    for name in (f"hp-a-{uuid.uuid4().hex[:6]}", f"hp-b-{uuid.uuid4().hex[:6]}"):
        user = owner.post("/users", json={"username": name, "first_name": name, "role": "annotator",
                                          "password": uuid.uuid4().hex})  # fmt: skip
        assert user.status_code == 201, user.text
        keys[name] = user.json()["api_key"]
    for _ in range(3):
        for name, key in keys.items():
            me = server.http(key).get("/me")
            assert me.status_code == 200 and me.json()["username"] == name
    assert server.http("not-a-key").get("/me").status_code == 401
    assert "total;dur=" in owner.get("/me").headers["server-timing"]  # argilla-server's header, from codigit's ASGI


# In a child process (argilla_server reads its settings when first imported): the app as `codigit serve` builds it,
# driven in-process, with every SQL statement a submission runs recorded.
STATEMENTS = (
    CHILD_APP
    + r"""
async def main():
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1",
                                 headers={"X-Argilla-Api-Key": key}) as http:
        ws = (await http.post("/workspaces", json={"name": "w"})).json()
        ds = (await http.post("/datasets", json={"name": "d", "workspace_id": ws["id"]})).json()
        for part, name in (("fields", "t"), ("questions", "q")):
            r = await http.post(f"/datasets/{ds['id']}/{part}",
                                json={"name": name, "title": name, "required": True, "settings": {"type": "text"}})
            assert r.status_code == 201, r.text
        assert (await http.put(f"/datasets/{ds['id']}/publish")).status_code == 200
        r = await http.post(f"/datasets/{ds['id']}/records/bulk", json={"items": [{"fields": {"t": "a"}}]})
        assert r.status_code == 201, r.text
        record = r.json()["items"][0]
        seen.clear()
        r = await http.post(f"/records/{record['id']}/responses",
                            json={"values": {"q": {"value": "hi"}}, "status": "submitted"})
        print(json.dumps({"status": r.status_code, "statements": seen}))

asyncio.run(main())
"""
)


@pytest.mark.parametrize("native", ["1", "0"], ids=["codigit-path", "argilla-path"])
def test_a_submission_without_webhooks_builds_no_event_and_signs_in_once(tmp_path, native):
    """On codigit's path for answers (native_submit.py) and on argilla-server's, which it hands requests on to."""
    env = {**os.environ, "CODIGIT_NATIVE_SUBMIT": native}
    result = subprocess.run([sys.executable, "-c", STATEMENTS, str(tmp_path / "home")], capture_output=True,
                            text=True, cwd=REPO, env=env, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["status"] == 201
    statements = out["statements"]
    # argilla-server's event building reloads the dataset with its vector settings; nothing else reads them
    assert not [s for s in statements if "FROM vectors_settings" in s]
    assert len([s for s in statements if s.startswith("SELECT users.")]) == 1  # by key; not again by username
    assert any(s.startswith("INSERT INTO responses") for s in statements)
    assert len([s for s in statements if s.startswith("BEGIN")]) == (1 if native == "1" else 2)
