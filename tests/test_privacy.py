"""The embedded server closes Argilla 2.8's read gap: a participant cannot read another participant's writing."""

from __future__ import annotations

import csv

import argilla as rg
import httpx
import pytest
from conftest import STUDY, UI_QUEUE, Server, codigit, login


@pytest.fixture(scope="module")
def participants(study_server: Server, tmp_path_factory) -> dict[str, str]:
    roster = tmp_path_factory.mktemp("roster") / "roster.csv"
    roster.write_text("name,email\nAsha Privacy,asha@example.org\nBo Privacy,bo@example.org\n")
    result = codigit("participants", "add", str(roster), "--study", str(STUDY), home=study_server.home)
    assert result.returncode == 0, result.stderr
    with open(study_server.home / "participant-logins.csv") as f:
        rows = {r["email"]: r for r in csv.DictReader(f)}
    return {
        who: login(study_server, rows[f"{who}@example.org"]["username"], rows[f"{who}@example.org"]["password"])
        for who in ("asha", "bo")
    }


@pytest.fixture(scope="module")
def authoring(study_server: Server) -> rg.Dataset:
    """A dataset in the shared workspace where everyone answers the same record (the shape review rounds have).
    The study keeps private writing in per-participant workspaces; this checks the server's own second line."""
    client = rg.Argilla(api_url=study_server.url, api_key=study_server.api_key)
    settings = rg.Settings(
        fields=[rg.TextField(name="invitation")],
        questions=[rg.TextQuestion(name="prompt"), rg.TextQuestion(name="story")],
        distribution=rg.TaskDistribution(min_submitted=1000),
    )
    dataset = rg.Dataset(name="privacy-shared", workspace="codigit", settings=settings, client=client).create()
    dataset.records.log([{"id": "open", "invitation": "Write a prompt and a story."}])
    return dataset


def test_participant_cannot_read_another_participants_story(study_server, participants, authoring):
    asha, bo = study_server.http(participants["asha"]), study_server.http(participants["bo"])

    # Asha writes through the per-record endpoint, as the UI does.
    record_id = asha.post(f"/me/datasets/{authoring.id}/records/search", json=UI_QUEUE).json()["items"][0]["record"][
        "id"
    ]
    story = {"prompt": {"value": "Asha's private prompt"}, "story": {"value": "Asha's private story"}}
    created = asha.post(f"/records/{record_id}/responses", json={"values": story, "status": "submitted"})
    assert created.status_code == 201, created.text
    response_id = created.json()["id"]

    # The owner (study organiser) reads it back, through the SDK.
    client = rg.Argilla(api_url=study_server.url, api_key=study_server.api_key)
    owner_view = client.datasets("privacy-shared", workspace="codigit")
    stories = [r.value for rec in owner_view.records(with_responses=True) for r in rec.responses["story"]]
    assert "Asha's private story" in stories

    # Bo learns the record id from his own queue, then tries every door.
    bo_queue = bo.post(f"/me/datasets/{authoring.id}/records/search?include=responses", json=UI_QUEUE).json()
    assert [item["record"]["id"] for item in bo_queue["items"]] == [record_id]
    assert bo_queue["items"][0]["record"].get("responses", []) == []

    direct = bo.get(f"/records/{record_id}", params={"include": "responses"})
    assert direct.status_code == 200
    assert direct.json()["responses"] == []
    assert "Asha's private" not in direct.text

    assert bo.get(f"/datasets/{authoring.id}/records", params={"include": "responses"}).status_code == 403
    assert bo.post(f"/datasets/{authoring.id}/records/search", json={"query": {}}).status_code == 403
    assert bo.put(f"/responses/{response_id}", json={"values": story, "status": "submitted"}).status_code == 403
    assert bo.delete(f"/responses/{response_id}").status_code == 403

    # Asha still sees her own answer on the same endpoint.
    own = asha.get(f"/records/{record_id}", params={"include": "responses"}).json()
    assert [r["values"]["story"]["value"] for r in own["responses"]] == ["Asha's private story"]

    # And the owner's direct view is the full one.
    full = study_server.http().get(f"/records/{record_id}", params={"include": "responses"}).json()
    assert response_id in {r["id"] for r in full["responses"]}


def test_participant_cannot_reach_another_participants_own_workspace(study_server, participants):
    """Stories, consent and about-you answers sit in each participant's own workspace: closed to everyone else."""
    from conftest import Participant

    usernames = {}
    for who, key in participants.items():
        usernames[who] = study_server.http(key).get("/me").json()["username"]
    asha = Participant(usernames["asha"], study_server.http(participants["asha"]))
    bo = study_server.http(participants["bo"])
    for form in ("stories", "consent", "about-you"):
        dataset_id = asha.dataset_id(form)
        record_id = asha.answer(form, _valid_answer(form))
        assert bo.get(f"/datasets/{dataset_id}").status_code == 403
        assert bo.post(f"/me/datasets/{dataset_id}/records/search", json=UI_QUEUE).status_code == 403
        assert bo.get(f"/records/{record_id}", params={"include": "responses"}).status_code == 403
    assert usernames["asha"] not in {w["name"] for w in bo.get("/me/workspaces").json()["items"]}
    visible = {d["name"] for d in bo.get("/me/datasets").json()["items"]}
    assert {"stories", "consent", "about-you"} <= visible  # his own three, and only one of each
    assert len([d for d in bo.get("/me/datasets").json()["items"] if d["name"] == "stories"]) == 1


def _valid_answer(form: str) -> dict:
    return {
        "stories": {"prompt": "Asha's prompt", "story": "Asha's story"},
        "consent": {"training": "yes", "public": "no", "attribution": "none"},
        "about-you": {"use": "yes", "gender_identity": "woman"},
    }[form]


def test_annotator_key_is_refused_on_owner_endpoints(study_server, participants):
    bo = study_server.http(participants["bo"])
    assert bo.get("/users").status_code == 403
    assert bo.post("/workspaces", json={"name": "bo-workspace"}).status_code == 403


def test_ui_does_not_make_participants_browsers_contact_google(server):
    """The bundled UI imports Google Fonts from its stylesheet; the embedded server serves it without them."""
    import re

    page = httpx.get(f"{server.url}/", timeout=30, follow_redirects=True).text
    stylesheets = re.findall(r'href="([^"]+\.css)"', page)
    assert stylesheets
    for href in stylesheets:
        css = httpx.get(f"{server.url}{href}" if href.startswith("/") else f"{server.url}/{href}", timeout=30)
        assert css.status_code == 200 and "fonts.googleapis.com" not in css.text


@pytest.mark.slow
def test_ui_edits_reach_every_text_field_renderer(tmp_path):
    """Every chunk of the bundled UI that renders a text field gets the text-only version (the browser test shows
    one page of it); a UI without that code is refused, not served unsafe."""
    import json
    import re
    import shutil
    from pathlib import Path

    import argilla_server
    import yaml

    from codigit.server.ui import WORDS, patch_ui

    bundled = Path(argilla_server.__file__).parent / "static"
    ui = tmp_path / "statics"
    shutil.copytree(bundled, ui)
    scripts = [p.read_bytes() for p in ui.rglob("*.js")]
    text_fields = sum(js.count(b".isHTML?") for js in scripts)  # each text field chooses between its renderers
    chats = sum(js.count(b'staticClass:"chat__bubble"') for js in scripts)
    pages = len(list(ui.rglob("*.html")))
    focus_views = sum(b"useFocusAnnotationViewModel" in js for js in scripts)  # each: Submit and Discard move on
    counts = patch_ui(ui)
    assert counts == {"text fields": text_fields, "chat messages": chats, "font imports": counts["font imports"],
                      "move on only when saved": 2 * focus_views, "words": len(yaml.safe_load(WORDS.read_text())),
                      "pages with codigit's script": pages}  # fmt: skip
    assert text_fields > 0 and chats > 0 and counts["font imports"] > 0 and focus_views > 0 and pages > 0, counts
    edited = b"".join(p.read_bytes() for p in ui.rglob("*.js"))
    assert b'record.isModified||e.$emit("on-submit-responses")' in edited
    for entry in yaml.safe_load(WORDS.read_text()):
        assert f"{entry['key']}:{json.dumps(entry['codigit'], ensure_ascii=False)}".encode() in edited
    unsafe = re.compile(rb'isHTML\?[\w$]+\("Sandbox"|domProps:\{innerHTML:[\w$]+\._s\([\w$]+\.fieldText\)\}\}\)')
    assert not [p.name for p in ui.rglob("*.js") if unsafe.search(p.read_bytes())]
    with pytest.raises(RuntimeError, match="argilla-server 2.8.0"):
        patch_ui(ui)  # nothing left to edit: as a different UI would look


@pytest.fixture(scope="module")
def with_metadata(study_server: Server, participants) -> rg.Dataset:
    """A dataset whose records carry metadata, one property hidden from annotators, in the study workspace."""
    client = rg.Argilla(api_url=study_server.url, api_key=study_server.api_key)
    settings = rg.Settings(
        fields=[rg.TextField(name="text")],
        questions=[rg.TextQuestion(name="note")],
        metadata=[
            rg.TermsMetadataProperty(name="theme", visible_for_annotators=True),
            rg.TermsMetadataProperty(name="author", visible_for_annotators=False),
        ],
        distribution=rg.TaskDistribution(min_submitted=10),
    )
    dataset = rg.Dataset(name="privacy-metadata", workspace="codigit", settings=settings, client=client).create()
    dataset.records.log(
        [{"id": f"m{i}", "text": f"story {i}", "theme": "care", "author": "p-secret"} for i in range(3)]
    )
    return dataset


def test_hidden_metadata_stays_hidden(study_server, participants, with_metadata):
    bo = study_server.http(participants["bo"])
    found = bo.post(f"/me/datasets/{with_metadata.id}/records/search", json=UI_QUEUE).json()["items"]
    assert len(found) == 3
    assert all(item["record"]["metadata"] == {"theme": "care"} for item in found)
    direct = bo.get(f"/records/{found[0]['record']['id']}")
    assert direct.status_code == 200, direct.text
    assert direct.json()["metadata"] == {"theme": "care"}
    owner = study_server.http().get(f"/records/{found[0]['record']['id']}").json()
    assert owner["metadata"] == {"theme": "care", "author": "p-secret"}


def test_annotator_search_does_not_write(study_server, participants, with_metadata):
    """Searching must not take SQLite's write lock: while another writer holds it, the search still answers."""
    import sqlite3

    holder = sqlite3.connect(study_server.home / "argilla.db", timeout=1, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # a long write elsewhere
    try:
        bo = study_server.http(participants["bo"])
        answer = bo.post(f"/me/datasets/{with_metadata.id}/records/search?include=responses", json=UI_QUEUE, timeout=20)
        assert answer.status_code == 200, answer.text
    finally:
        holder.execute("ROLLBACK")
        holder.close()
