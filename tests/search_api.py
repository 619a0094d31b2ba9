"""The search tests' client side: datasets made through the real argilla-server API, searches as the UI sends
them, and the query builders (Elasticsearch's filter and sort shapes) the search tests share."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

LABEL = {"type": "label_selection", "options": [{"value": v, "text": v} for v in ("pos", "neg", "neu")]}


def ok(response: httpx.Response):
    assert response.status_code < 300, f"{response.request.method} {response.request.url}: {response.text}"
    return response.json() if response.content else None


@dataclass
class Dataset:
    id: str
    ids: dict[str, str]  # external id -> record id
    questions: dict[str, str]  # name -> question id
    metadata: dict[str, str]  # name -> metadata property id


def create_dataset(owner, ws_id, name, items, *, fields=("title", "body"), questions=None, metadata=None, vectors=0):
    """A published dataset with the given record items; suggestions name their question (`question`)."""
    questions = questions or {"label": LABEL}
    ds = ok(owner.post("/datasets", json={"name": name, "workspace_id": ws_id}))["id"]
    for f in fields:
        ok(owner.post(f"/datasets/{ds}/fields", json={"name": f, "title": f, "settings": {"type": "text"}}))
    qids = {
        q: ok(owner.post(f"/datasets/{ds}/questions", json={"name": q, "title": q, "required": i == 0, "settings": s}))
        for i, (q, s) in enumerate(questions.items())
    }
    mids = {
        m: ok(owner.post(f"/datasets/{ds}/metadata-properties", json={"name": m, "title": m, "settings": {"type": t}}))
        for m, t in (metadata or {}).items()
    }
    if vectors:
        ok(owner.post(f"/datasets/{ds}/vectors-settings", json={"name": "emb", "title": "emb", "dimensions": vectors}))
    ok(owner.put(f"/datasets/{ds}/publish"))
    for item in items:
        for s in item.get("suggestions", []):
            s["question_id"] = qids[s.pop("question")]["id"]
    created = ok(owner.post(f"/datasets/{ds}/records/bulk", json={"items": items}))["items"]
    return Dataset(
        ds,
        {r["external_id"]: r["id"] for r in created},
        {q: v["id"] for q, v in qids.items()},
        {m: v["id"] for m, v in mids.items()},
    )


def add_annotator(server, owner, workspace_id: str, username: str, user_id: str | None = None) -> httpx.Client:
    """A new annotator in the workspace, as an HTTP client with the annotator's own API key."""
    user = {"id": user_id, "first_name": username, "username": username, "role": "annotator", "password": "pass-1234"}
    user = ok(owner.post("/users", json=user))
    ok(owner.post(f"/workspaces/{workspace_id}/users", json={"user_id": user["id"]}))
    return server.http(user["api_key"])


def search(client, ds: Dataset, body: dict | None = None, *, me: bool = False, **params) -> tuple[list[str], int]:
    """External ids in the order the search returns them, and its total."""
    path = f"/me/datasets/{ds.id}/records/search" if me else f"/datasets/{ds.id}/records/search"
    result = ok(client.post(path, json=body or {}, params={"limit": 1000, **params}))
    return [item["record"]["external_id"] for item in result["items"]], result["total"]


def terms(entity: str, values: list, **scope) -> dict:
    return {"type": "terms", "scope": {"entity": entity, **scope}, "values": values}


def range_(entity: str, ge=None, le=None, **scope) -> dict:
    bounds = {k: v for k, v in (("ge", ge), ("le", le)) if v is not None}
    return {"type": "range", "scope": {"entity": entity, **scope}, **bounds}


def where(*filters: dict, **body) -> dict:
    return {"filters": {"and": list(filters)}, **body}


def by(entity: str, order: str, **scope) -> dict:
    return {"scope": {"entity": entity, **scope}, "order": order}


PENDING_QUEUE = where(  # exactly what the UI sends for an annotator's "Pending" view
    terms("response", ["pending"], property="status"), terms("record", ["pending"], property="status")
)
