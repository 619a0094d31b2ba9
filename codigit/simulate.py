"""Participants simulated through the same HTTP endpoints the annotation UI calls, each with their own key.

`codigit demo` uses them to play a workshop, and the tests to act as participants; neither goes around the server.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

# The body the annotation UI sends for a participant's "Pending" queue (POST /me/datasets/{id}/records/search).
UI_QUEUE = {
    "query": {},
    "filters": {
        "and": [
            {"type": "terms", "scope": {"entity": "response", "property": "status"}, "values": ["pending"]},
            {"type": "terms", "scope": {"entity": "record", "property": "status"}, "values": ["pending"]},
        ]
    },
}


def sign_in(url: str, username: str, password: str) -> str:
    """Sign in as a participant does (the UI's password form) and return their API key."""
    with httpx.Client(base_url=f"{url}/api/v1", timeout=30) as http:
        token = http.post("/token", data={"username": username, "password": password}).raise_for_status()
        me = http.get("/me", headers={"Authorization": f"Bearer {token.json()['access_token']}"}).raise_for_status()
    return me.json()["api_key"]


def api_client(url: str, api_key: str) -> httpx.Client:
    """A plain HTTP client on the server's /api/v1 with this key."""
    return httpx.Client(base_url=f"{url}/api/v1", headers={"X-Argilla-Api-Key": api_key}, timeout=60)


@dataclass
class Participant:
    """A participant acting through the annotation UI's endpoints, with their own key."""

    username: str
    http: httpx.Client

    def dataset_id(self, name: str, workspace: str | None = None) -> str:
        workspace = workspace or self.username
        spaces = {w["id"]: w["name"] for w in self.http.get("/me/workspaces").raise_for_status().json()["items"]}
        for d in self.http.get("/me/datasets").raise_for_status().json()["items"]:
            if d["name"] == name and spaces.get(d["workspace_id"]) == workspace:
                return d["id"]
        raise LookupError(f"{self.username} sees no dataset {workspace}/{name}")

    def queue(self, dataset_id: str) -> list[dict]:
        """The records in their "Pending" queue, as the UI asks for them."""
        found = self.http.post(f"/me/datasets/{dataset_id}/records/search", params={"limit": 500}, json=UI_QUEUE)
        return [item["record"] for item in found.raise_for_status().json()["items"]]

    def submit(self, record_id: str, values: dict) -> httpx.Response:
        body = {"values": {k: {"value": v} for k, v in values.items()}, "status": "submitted"}
        return self.http.post(f"/records/{record_id}/responses", json=body)

    def answer(self, dataset: str, values: dict, external_id: str | None = None) -> str:
        """Submit `values` to the first pending record (or the one with this external id); returns the record id."""
        records = self.queue(self.dataset_id(dataset))
        record = next(r for r in records if external_id is None or r["external_id"] == external_id)
        self.submit(record["id"], values).raise_for_status()
        return record["id"]


def code_as_a_reader(text: str, cues: dict[str, list[str]], attention: float, rng) -> list[str]:
    """A simulated researcher's codes for a story: each code whose cue words the story uses, noticed with
    probability `attention`, and now and then (rate (1 - attention) / 4) a code the story gives no cue for.
    Two readers with different attention disagree as real coders do: mostly on codes at the margin."""
    from codigit.analysis.language import tokens

    words = set(tokens(text))
    codes = []
    for code, words_for_it in cues.items():
        cued = bool(words & set(words_for_it))
        if (cued and rng.random() < attention) or (not cued and rng.random() < (1 - attention) / 4):
            codes.append(code)
    return sorted(codes) or ["none"]
