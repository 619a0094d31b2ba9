"""codigit/server/native_submit.py: an answer stored by codigit's own statements is what argilla-server would have
stored and answered, and every request it does not handle gets argilla-server's own answer with nothing written.

Both paths run in one child process on one database (argilla_server reads its settings when first imported): the
app as `codigit serve` builds it (codigit's path first) and argilla-server's API app on its own, without the
middleware (argilla-server's handler)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime

import pytest
from conftest import CHILD_APP, REPO

CHILD = (
    CHILD_APP
    + r"""
from argilla_server.api.routes import api_v1


def db_rows(sql, *args):
    conn = sqlite3.connect(home / "argilla.db")
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, args)]
    finally:
        conn.close()

async def main():
    out = {}
    t = httpx.ASGITransport(app=app)
    owner = httpx.AsyncClient(transport=t, base_url="http://t/api/v1", headers={"X-Argilla-Api-Key": key})
    ws = (await owner.post("/workspaces", json={"name": "w"})).json()
    ds = (await owner.post("/datasets", json={"name": "d", "workspace_id": ws["id"],
                           "distribution": {"strategy": "overlap", "min_submitted": 2}})).json()
    assert (await owner.post(f"/datasets/{ds['id']}/fields", json={"name": "t", "title": "t", "required": True,
                             "settings": {"type": "text"}})).status_code == 201
    for q in ({"name": "story", "title": "s", "required": True, "settings": {"type": "text"}},
              {"name": "mood", "title": "m", "required": False,
               "settings": {"type": "label_selection", "options": [{"value": "a", "text": "A"},
                                                                     {"value": "b", "text": "B"}]}},
              {"name": "stars", "title": "r", "required": False,
               "settings": {"type": "rating", "options": [{"value": 1}, {"value": 2}, {"value": 3}]}}):
        r = await owner.post(f"/datasets/{ds['id']}/questions", json=q)
        assert r.status_code == 201, r.text
    assert (await owner.put(f"/datasets/{ds['id']}/publish")).status_code == 200
    r = await owner.post(f"/datasets/{ds['id']}/records/bulk",
                         json={"items": [{"fields": {"t": f"text {i}"}, "metadata": {}} for i in range(6)]})
    records = [item["id"] for item in r.json()["items"]]
    users = {}
    for name in ("ann1", "ann2", "outsider"):
        u = (await owner.post("/users", json={"username": name, "first_name": name, "role": "annotator",
                                              "password": f"{name}-password"})).json()
        if name != "outsider":
            assert (await owner.post(f"/workspaces/{ws['id']}/users", json={"user_id": u["id"]})).status_code == 201
        users[name] = u
    # ann2 signs in as the browser does: a bearer token from their password
    token = (await owner.post("/token", data={"username": "ann2", "password": "ann2-password"})).json()
    signed_in = {"ann2": {"Authorization": f"Bearer {token['access_token']}"}}

    def client(name, to_argilla):
        transport = httpx.ASGITransport(app=api_v1) if to_argilla else t
        base = "http://t" if to_argilla else "http://t/api/v1"
        headers = signed_in.get(name) or {"X-Argilla-Api-Key": key if name == "owner" else users[name]["api_key"]}
        return httpx.AsyncClient(transport=transport, base_url=base, headers=headers)

    full = {"values": {"story": {"value": "Ada fixed the roof."}, "mood": {"value": "b"}, "stars": {"value": 3}},
            "status": "submitted"}
    draft = {"values": {"story": {"value": "half a sto"}}, "status": "draft"}
    # codigit's path on records 0, 2, 4; argilla-server's on 1, 3, 5, in the same order
    for path, (first, second, third) in (("codigit", records[0::2]), ("argilla", records[1::2])):
        argilla = path == "argilla"
        answers = []
        for name, rec, body in (("ann1", first, full), ("ann2", first, full), ("ann1", second, draft),
                                ("ann2", third, {"status": "discarded"})):
            async with client(name, argilla) as c:
                seen.clear()
                r = await c.post(f"/records/{rec}/responses", json=body)
                answers.append([r.status_code, r.headers.get("content-type"), r.json()])
                out.setdefault(path + "_statements", []).append([s.split()[0] for s in seen])
        out[path] = {
            "answers": answers,
            "responses": db_rows("SELECT * FROM responses WHERE record_id IN (?, ?, ?) ORDER BY inserted_at",
                                 *(x.replace("-", "") for x in (first, second, third))),
            "records": db_rows("SELECT id, status, external_id, metadata, dataset_id, inserted_at, updated_at "
                               "FROM records WHERE id IN (?, ?, ?) ORDER BY inserted_at",
                               *(x.replace("-", "") for x in (first, second, third))),
        }
        async with client("ann1", False) as c:  # read back through argilla-server's ORM and schemas
            r = await c.get(f"/records/{first}")
            out[path]["read_back"] = [r.status_code, r.json()]

    out["dataset_users"] = db_rows("SELECT * FROM datasets_users")
    out["datasets"] = db_rows("SELECT * FROM datasets")
    # requests codigit's path hands on: its answers against argilla-server's, and what they wrote
    before = db_rows("SELECT count(*) AS n FROM responses")[0]["n"]
    bad = [
        ("ann1", records[0], full, {}),                                              # a second answer
        ("ann1", records[4], {"values": {"nope": {"value": "x"}}, "status": "submitted"}, {}),  # unknown question
        ("ann1", records[4], {"values": {"stars": {"value": 9}}, "status": "draft"}, {}),  # out of range
        ("ann1", records[4], {"status": "submitted"}, {}),                            # submitted without values
        ("outsider", records[4], full, {}),                                           # not in the workspace
        ("ann1", str(uuid.uuid4()), full, {}),                                        # no such record
        ("ann1", "not-a-uuid", full, {}),
        ("ann1", records[4], full, {"X-Argilla-Api-Key": "wrong"}),
        ("ann1", records[4], full, {"X-Argilla-Api-Key": "", "Authorization": "Bearer not.a.token"}),
        ("ann1", records[4], "{not json", {}),
    ]
    out["handed_on"] = []
    for name, rec, body, headers in bad:
        pair = []
        for argilla in (False, True):
            async with client(name, argilla) as c:
                kwargs = {"content": body, "headers": {"content-type": "application/json", **headers}} \
                    if isinstance(body, str) else {"json": body, "headers": headers}
                r = await c.post(f"/records/{rec}/responses", **kwargs)
                pair.append([r.status_code, r.text])
        out["handed_on"].append(pair)
    out["written_by_refusals"] = db_rows("SELECT count(*) AS n FROM responses")[0]["n"] - before

    # the queue: each request through codigit's path and through argilla-server's handler, on the same database
    ui = [("include", "responses"), ("include", "suggestions"), ("offset", "0"), ("limit", "10")]
    pending = {"query": {}, "filters": {"and": [
        {"type": "terms", "scope": {"entity": "response", "property": "status"}, "values": ["pending"]},
        {"type": "terms", "scope": {"entity": "record", "property": "status"}, "values": ["pending"]}]}}
    submitted = {"query": {}, "filters": {"and": [
        {"type": "terms", "scope": {"entity": "response", "property": "status"}, "values": ["submitted"]}]}}
    draft = {"filters": {"and": [
        {"type": "terms", "scope": {"entity": "response", "property": "status"}, "values": ["draft", "discarded"]}]}}
    sorted_ = {**pending, "sort": [{"scope": {"entity": "record", "property": "inserted_at"}, "order": "desc"}]}
    text = {"query": {"text": {"q": "text"}}}
    queues = [  # (who, params, body, codigit's path answers it)
        ("ann1", ui, pending, True), ("ann2", ui, pending, True), ("ann1", [("include", "responses")], pending, True),
        ("ann1", ui, submitted, True), ("ann2", ui, draft, True), ("ann1", [], {}, True),
        ("ann1", [("offset", "2"), ("limit", "1")], pending, True), ("ann1", [("offset", "99")], pending, True),
        ("owner", ui, submitted, True),
        ("ann1", ui, sorted_, False), ("ann1", ui, text, False), ("ann1", [("include", "vectors")], pending, False),
        ("ann1", [("limit", "0")], pending, False), ("ann1", [("limit", "x")], pending, False),
        ("outsider", ui, pending, False), ("ann1", ui, {"filters": {"and": [{"type": "terms"}]}}, False),
    ]
    # a dataset whose records carry metadata (what an annotator sees of it depends on its properties' roles)
    d2 = (await owner.post("/datasets", json={"name": "d2", "workspace_id": ws["id"]})).json()
    for part, item in (("fields", {"name": "t", "title": "t", "required": True, "settings": {"type": "text"}}),
                       ("questions", {"name": "q", "title": "q", "required": True, "settings": {"type": "text"}}),
                       ("metadata-properties", {"name": "seen", "title": "s", "visible_for_annotators": True,
                                                "settings": {"type": "terms"}})):
        assert (await owner.post(f"/datasets/{d2['id']}/{part}", json=item)).status_code == 201
    assert (await owner.put(f"/datasets/{d2['id']}/publish")).status_code == 200
    r = await owner.post(f"/datasets/{d2['id']}/records/bulk", json={"items": [
        {"fields": {"t": "m"}, "metadata": {"seen": "yes", "hidden": "no"}}]})
    assert r.status_code == 201, r.text
    queues.append(("ann1", ui, pending, False, d2["id"]))
    out["queues"] = []
    for name, params, body, ours, *other in queues:
        dataset_id = other[0] if other else ds["id"]
        pair = []
        for argilla in (False, True):
            async with client(name, argilla) as c:
                seen.clear()
                r = await c.post(f"/me/datasets/{dataset_id}/records/search", params=params, json=body)
                pair.append([r.status_code, r.json(), any("FROM fields" in s for s in seen)])
        out["queues"].append([ours, *pair])
    print(json.dumps(out, default=str))

asyncio.run(main())
"""
)

UUID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")
WHEN = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d\.\d{6}")


def shape(value):
    """Ids and timestamps replaced by what they look like (a dashed or a hex id, an ISO or a SQLite time)."""
    text = json.dumps(value, sort_keys=True)
    text = UUID.sub(lambda m: "<uuid-dashed>" if "-" in m[0] else "<uuid-hex>", text)
    return json.loads(WHEN.sub(lambda m: f"<time{m[0][10]}>", text))


def run_child(tmp_path) -> dict:
    result = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "home")], capture_output=True, text=True,
                            cwd=REPO, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> dict:
    return run_child(tmp_path_factory.mktemp("native"))


def test_codigits_path_stores_and_answers_as_argilla_server_does_and_hands_on_the_rest(out):
    ours, theirs = out["codigit"], out["argilla"]
    assert [a[0] for a in ours["answers"]] == [201, 201, 201, 201]
    assert shape(ours["answers"]) == shape(theirs["answers"])
    assert ours["answers"][0][2]["values"] == {"story": {"value": "Ada fixed the roof."}, "mood": {"value": "b"},
                                               "stars": {"value": 3}}  # fmt: skip
    # the rows as stored: every column, ids and times in the same formats, values and statuses equal
    assert shape(ours["responses"]) == shape(theirs["responses"]) and len(ours["responses"]) == 4
    assert shape(ours["records"]) == shape(theirs["records"])
    assert [r["status"] for r in ours["records"]] == ["completed", "pending", "pending"]  # min_submitted 2
    for rows in (ours["records"], ours["responses"]):
        assert all(r["updated_at"] >= r["inserted_at"] for r in rows)
    assert ours["read_back"][1].pop("fields") == {"t": "text 0"} and theirs["read_back"][1].pop("fields")
    assert shape(ours["read_back"]) == shape(theirs["read_back"]) and ours["read_back"][0] == 200
    # one row per annotator and dataset, whichever path wrote it; the dataset's last activity is the last answer
    assert sorted(len(r["user_id"]) for r in out["dataset_users"]) == [32, 32]
    last = datetime.fromisoformat(max(r["updated_at"] for r in theirs["responses"]))
    assert [abs(datetime.fromisoformat(d["last_activity_at"]) - last).total_seconds() < 1 for d in out["datasets"]] == [
        True
    ]
    # codigit's path took these answers: one transaction each, in fewer statements; argilla-server commits twice
    for ours_sql, theirs_sql in zip(out["codigit_statements"], out["argilla_statements"], strict=True):
        assert ours_sql.count("BEGIN") == 1 and theirs_sql.count("BEGIN") == 2
        assert len(ours_sql) < len(theirs_sql)

    # what codigit's path hands on gets argilla-server's answer, and nothing is written
    statuses = [pair[0][0] for pair in out["handed_on"]]
    assert statuses == [409, 422, 422, 422, 403, 404, 422, 401, 401, 422]
    for ours_answer, theirs_answer in out["handed_on"]:
        assert ours_answer == theirs_answer
    assert out["written_by_refusals"] == 0


def test_codigits_queue_answers_as_argilla_server_does_and_hands_on_the_rest(out):
    """native_queue.py: the same JSON as argilla-server's handler for the UI's queue and its variants (as each user,
    by API key and by sign-in token, the owner too); every other request is argilla-server's own."""
    assert len(out["queues"]) == 17
    assert out["queues"][-1][1][1]["items"][0]["record"]["metadata"] == {"seen": "yes"}  # the annotator's view
    for ours_expected, (ours_status, ours_json, ours_orm), (theirs_status, theirs_json, theirs_orm) in out["queues"]:
        assert (ours_status, ours_json) == (theirs_status, theirs_json)
        # argilla-server's handler loads the dataset's fields through its ORM (unless FastAPI refuses the request
        # first); codigit's path does not, so a request it hands on is seen doing so
        assert (ours_orm, theirs_orm) == ((False, True) if ours_expected else (theirs_orm, theirs_orm))
    first = out["queues"][0][1]
    record = first[1]["items"][0]["record"]
    assert first[0] == 200 and first[1]["total"] >= 1 and {"responses", "suggestions", "metadata"} <= set(record)
    assert "vectors" not in record  # not asked for: left out, as argilla-server leaves it out
    assert record["metadata"] == {}  # as the SDK logs the study's records: answered here, not handed on
    submitted = out["queues"][3][1][1]
    assert submitted["items"]
    assert all(item["record"]["responses"][0]["status"] == "submitted" for item in submitted["items"])
