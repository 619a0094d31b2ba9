"""The embedded server against a participant who probes it (issue 13): every check runs on a real `codigit serve`.

A participant holds annotator credentials and reaches only their own datasets. Nothing they can ask may depend on
text or people they cannot see: not search scores (the withdrawal-ledger oracle), not other users' progress; bad
search bodies are their mistake (422, no traceback in the log); the server makes no browser contact a third party;
and the organiser's home, database and keys are private whatever existed before.
"""

from __future__ import annotations

import os
import re
import stat
import time
import uuid

import httpx
import pytest
from conftest import Server, codigit, start_server

from codigit.errors import CodigitError
from codigit.server.serve import check_host

ROUND_TEXTS = {  # a review round an annotator reads; some records share words with the ledger below
    "r0": "Amara moved away and left the story circle",
    "r1": "the river story: Amara and her grandmother",
    "r2": "a story about bread, told twice",
    "r3": "left early; moved to another city for work",
    "r4": "grandmother grandmother grandmother",
}
QUERIES = [  # what a participant would try: a pseudonym, words of a withdrawal reason, alternatives, one field
    {"q": "Amara"},
    {"q": "moved"},
    {"q": "moved | grandmother"},
    {"q": "story -bread"},
    {"q": '"left the story"'},
    {"q": "Amara", "field": "text"},
]


def ok(response: httpx.Response):
    assert response.status_code < 300, f"{response.request.method} {response.request.url}: {response.text}"
    return response.json()


def new_workspace(owner: httpx.Client) -> str:
    return ok(owner.post("/workspaces", json={"name": f"hardening-{uuid.uuid4().hex[:8]}"}))["id"]


def new_annotator(server: Server, owner: httpx.Client, workspace_id: str) -> tuple[httpx.Client, str]:
    name = f"hardening-{uuid.uuid4().hex[:8]}"
    user = ok(
        owner.post("/users", json={"first_name": name, "username": name, "role": "annotator", "password": "pass-1234"})
    )
    ok(owner.post(f"/workspaces/{workspace_id}/users", json={"user_id": user["id"]}))
    return server.http(user["api_key"]), name


def new_dataset(owner: httpx.Client, workspace_id: str, texts: dict[str, str], metadata: dict | None = None) -> str:
    """A published dataset with one text field `text`, one label question and integer metadata ({external id: {name:
    value}})."""
    ds = ok(owner.post("/datasets", json={"name": f"ds-{uuid.uuid4().hex[:8]}", "workspace_id": workspace_id}))["id"]
    ok(owner.post(f"/datasets/{ds}/fields", json={"name": "text", "title": "text", "settings": {"type": "text"}}))
    label = {"type": "label_selection", "options": [{"value": v, "text": v} for v in ("yes", "no")]}
    ok(owner.post(f"/datasets/{ds}/questions", json={"name": "ok", "title": "ok", "required": True, "settings": label}))
    for name in sorted({name for values in (metadata or {}).values() for name in values}):
        prop = {"name": name, "title": name, "settings": {"type": "integer"}, "visible_for_annotators": True}
        ok(owner.post(f"/datasets/{ds}/metadata-properties", json=prop))
    ok(owner.put(f"/datasets/{ds}/publish"))
    items = [
        {"external_id": ext, "fields": {"text": t}, **({"metadata": metadata[ext]} if metadata else {})}
        for ext, t in texts.items()
    ]
    ok(owner.post(f"/datasets/{ds}/records/bulk", json={"items": items}))
    return ds


def annotator_view(client: httpx.Client, dataset_id: str, query: dict) -> list[tuple[str, float]]:
    """What an annotator's own search shows for a text query: (record, score) in the order given."""
    body = {"query": {"text": query}}
    result = ok(client.post(f"/me/datasets/{dataset_id}/records/search", json=body, params={"limit": 100}))
    return [(item["record"]["external_id"], item["query_score"]) for item in result["items"]]


def test_search_scores_do_not_depend_on_another_datasets_text(server, owner):
    """The ledger oracle: an annotator searching their own round sees the same records, order and scores whether or
    not another dataset (the organisers' withdrawal ledger, in a workspace they are not in) holds the words."""
    round_ws = new_workspace(owner)
    annotator, _ = new_annotator(server, owner, round_ws)
    round_id = new_dataset(owner, round_ws, ROUND_TEXTS)
    before = {str(q): annotator_view(annotator, round_id, q) for q in QUERIES}
    assert {ext for ext, _ in before[str(QUERIES[0])]} == {"r0", "r1"}  # the queries do find something
    assert all(score > 0 for view in before.values() for _, score in view)

    ledger = {f"w{i}": f"pseudonym Amara withdrew: moved away, story left {'moved ' * (i % 4)}" for i in range(40)}
    new_dataset(owner, new_workspace(owner), ledger)
    after = {str(q): annotator_view(annotator, round_id, q) for q in QUERIES}
    assert after == before


def test_annotators_get_no_progress_figures_about_other_people(server, owner):
    ws = new_workspace(owner)
    (asha, asha_name), (bo, bo_name) = new_annotator(server, owner, ws), new_annotator(server, owner, ws)
    ds = new_dataset(owner, ws, {"a": "one", "b": "two"})
    for client in (asha, bo):
        record = ok(client.post(f"/me/datasets/{ds}/records/search", json={}))["items"][0]["record"]["id"]
        ok(
            client.post(
                f"/records/{record}/responses", json={"values": {"ok": {"value": "yes"}}, "status": "submitted"}
            )
        )

    for client, me in ((asha, asha_name), (bo, bo_name)):
        assert [u["username"] for u in ok(client.get(f"/datasets/{ds}/users/progress"))["users"]] == [me]
        progress = ok(client.get(f"/datasets/{ds}/progress"))
        assert [u["username"] for u in progress.get("users", [])] == [me]
        assert progress["total"] == 2  # the dataset's own figures stay
    everyone = {u["username"] for u in ok(owner.get(f"/datasets/{ds}/users/progress"))["users"]}
    assert everyone == {asha_name, bo_name}
    assert {u["username"] for u in ok(owner.get(f"/datasets/{ds}/progress"))["users"]} == {asha_name, bo_name}


def _range(ge=None, le=None, **scope) -> dict:
    bounds = {k: v for k, v in (("ge", ge), ("le", le)) if v is not None}
    return {"filters": {"and": [{"type": "range", "scope": scope, **bounds}]}}


BAD_BODIES = {  # (body, what the answer says); raw JSON where Python's json would not write it
    "huge integer bound": (
        '{"filters": {"and": [{"type": "range", "scope": {"entity": "metadata", "metadata_property": "n"}, '
        '"ge": 1' + "0" * 400 + "}]}}",
        "valid number",
    ),
    "infinite bound": (
        '{"filters": {"and": [{"type": "range", "scope": {"entity": "metadata", "metadata_property": "n"}, '
        '"le": Infinity}]}}',
        "not a finite number",
    ),
    "text bound": (_range("abc", entity="metadata", metadata_property="n"), "not a finite number"),
    "date beyond datetime": (_range(1e308, entity="record", property="inserted_at"), "epoch milliseconds"),
    "date as text": (_range(le="not a date", entity="record", property="inserted_at"), "epoch milliseconds"),
    "too many terms": ({"query": {"text": {"q": " ".join(f"w{i}" for i in range(500))}}}, "at most"),
    "query of the wrong type": ({"query": {"text": {"q": ["Amara"]}}}, "valid string"),
    "filters of the wrong type": ({"filters": "everything"}, "ValidationError"),
}


def test_bad_search_bodies_are_422_without_a_traceback(server, owner):
    ws = new_workspace(owner)
    annotator, _ = new_annotator(server, owner, ws)
    ds = new_dataset(owner, ws, {"a": "one", "b": "two"}, metadata={"a": {"n": 1}, "b": {"n": 2}})
    path = f"/me/datasets/{ds}/records/search"
    log_start = server.log.stat().st_size
    for name, (body, says) in BAD_BODIES.items():
        content = body if isinstance(body, str) else httpx.Request("POST", "/", json=body).content
        got = annotator.post(path, content=content, headers={"content-type": "application/json"})
        assert got.status_code == 422 and says in got.text, f"{name}: {got.status_code} {got.text[:300]}"
        assert "Traceback" not in got.text, name
    for params in ({"limit": 10**20}, {"offset": -1}, {"limit": "many"}):
        assert annotator.post(path, json={}, params=params).status_code == 422, params
    assert ok(annotator.post(path, json={}, params={"offset": 2**70}))["items"] == []  # past the end: nothing
    assert ok(annotator.post(path, json=_range(1e308, entity="metadata", metadata_property="n")))["total"] == 0
    assert ok(annotator.post(path, json=_range(le=2, entity="metadata", metadata_property="n")))["total"] == 2
    time.sleep(0.5)  # margin for lines uvicorn logs after a response is sent (errors are logged before it)
    with server.log.open(errors="replace") as log:
        log.seek(log_start)
        written = log.read()
    assert "Traceback" not in written and "Exception in ASGI" not in written, written[-3000:]


def test_no_page_loads_scripts_from_a_third_party(server):
    """Swagger UI and ReDoc come from a CDN: their pages are gone; the OpenAPI schema (plain JSON) stays."""
    with httpx.Client(base_url=server.url, timeout=30, follow_redirects=True) as http:
        for path in ("/api/v1/docs", "/api/v1/redoc", "/api/v1/docs/oauth2-redirect", "/docs", "/api"):
            page = http.get(path)
            assert "cdn.jsdelivr.net" not in page.text and "swagger-ui" not in page.text.lower(), path
            # what is left at these paths (404, or the UI's own page for /docs) loads nothing from another host
            assert not re.findall(r'(?:src|href)="(?:https?:)?//', page.text), path
        schema = http.get("/api/v1/openapi.json")
        assert schema.status_code == 200 and schema.json()["paths"]


@pytest.mark.parametrize("host", ["", "  ", "0"])
def test_serve_refuses_a_host_that_means_every_interface_unsaid(tmp_path, host):
    result = codigit("serve", "--host", host, "--home", str(tmp_path / "home"), "--port", "1", timeout=60)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "every interface" in result.stderr, result.stderr
    assert not (tmp_path / "home").exists()  # refused before anything was made


def test_explicit_hosts_are_told_apart():
    assert check_host("0.0.0.0") and check_host("::")  # every interface, said so: allowed (and warned about)
    assert not check_host("127.0.0.1") and not check_host("localhost")
    with pytest.raises(CodigitError, match="every interface"):
        check_host("")


@pytest.mark.slow
def test_a_home_made_with_open_modes_is_private_after_start(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)  # whatever the umask
    logins = home / "participant-logins.csv"
    logins.write_text("name,email,username,password,login_url\n")
    os.chmod(logins, 0o644)
    srv = start_server(home)
    try:
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        for name in ("argilla.db", "argilla.db-wal", "argilla.db-shm", "credentials.json", logins.name):
            assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name
        report = [line for line in srv.log.read_text().splitlines() if line.startswith("codigit: privacy:")]
        assert any(line.endswith(f"127.0.0.1:{srv.port}: loopback only") for line in report), report
        assert any("files other users can read: none" in line for line in report), report
        assert any("searched dataset's own statistics" in line for line in report), report
        assert any(line.endswith("API docs pages: none (they load scripts from a CDN)") for line in report), report
    finally:
        srv.stop()


@pytest.mark.slow
def test_init_states_who_can_reach_what_and_refuses_a_participant_in_the_ledgers_workspace(tmp_path):
    import argilla as rg
    from conftest import STUDY, own_study_server

    with own_study_server(tmp_path / "home") as srv:
        first = codigit("init", "--study", str(STUDY), home=srv.home)
        assert first.returncode == 0, first.stderr
        assert "privacy: the withdrawal ledger is in codigit-organisers, which no participant joins" in first.stdout
        assert "privacy: the shared workspace codigit holds review rounds only" in first.stdout
        client = rg.Argilla(api_url=srv.url, api_key=srv.api_key)
        intruder = rg.User(username="p-intruder", first_name="x", role="annotator", password=uuid.uuid4().hex,
                           client=client).create()  # fmt: skip
        intruder.add_to_workspace(client.workspaces("codigit-organisers"))  # a membership made by hand
        refused = codigit("init", "--study", str(STUDY), home=srv.home)
        assert refused.returncode == 2
        assert refused.stderr.strip().splitlines() == [
            "codigit: error: participant(s) p-intruder are members of codigit-organisers, where the withdrawal ledger "
            "is: remove them from that workspace, then rerun `init`"
        ]
