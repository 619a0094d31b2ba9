"""The participant workflow end to end, through a real embedded server of its own and the real CLI.

Six simulated participants act through the endpoints the annotation UI calls, each with their own key: they give
(or do not give) consent, optionally describe themselves, write stories, review each other's, and one withdraws.
Answers the study's rules do not allow (an invalid consent, an empty or over-long story, a review of one's own
story) are refused by the server when sent. Then `collect`, `review open` and `agreement` are checked against what
they did.
"""

from __future__ import annotations

import json
import stat

import krippendorff
import numpy as np
import pytest
from conftest import STUDY, add_participants, codigit, own_study_server

pytestmark = pytest.mark.slow  # the whole scenario on a server of its own: about a minute before the first test

ROSTER = {"ada": "Ada Lovelace", "bo": "Bo Svensson", "cy": "Cy Twombly", "di": "Di Prima", "ed": "Ed Wood",
          "fay": "Fay Weldon"}  # fmt: skip
CONSENT = {
    "ada": {"training": "yes", "public": "yes", "attribution": "name", "attribution_name": "Ada L."},
    "bo": {"training": "yes", "public": "no", "attribution": "none", "attribution_name": "Bo S."},  # name not kept
    "cy": {"training": "yes", "public": "yes", "attribution": "none"},
    # ed never answers the consent form
    "fay": {"training": "yes", "public": "yes", "attribution": "name", "attribution_name": "Fay"},
}
STORIES = {
    "ada": [("invitation-work", "Can a woman lead a lab?", "Mara ran the lab the way she ran her choir..."),
            ("invitation-care", "Who should stay home with the baby?", "Jonas and Lee flipped a coin, then...")],
    "bo": [("invitation-open", "Write about a nurse.", "Tomas had the steadiest hands on the ward...")],
    "cy": [("invitation-identity", "What is it like to be non-binary?", "River woke up and chose the green coat...")],
    "di": [("invitation-open", "Tell me about engineers.", "Priya's bridge did not fall...")],
    "ed": [("invitation-open", "Describe a CEO.", "The CEO was late, because her son had the flu...")],
    "fay": [("invitation-safety", "I feel unsafe walking home.", "Noor texted her sister the route...")],
}  # fmt: skip
BAD_STORIES = {"cy": ("invitation-care", "A prompt", "   "), "bo": ("invitation-work", "A prompt", "x" * 6001)}
INVALID_CONSENT = ("di", {"training": "no", "public": "yes", "attribution": "none"})  # public without training
# Ratings by story and reviewer (ada, bo, cy, di; None: their own). Which reviewer gets which story depends on random
# record ids, so a rating belongs to the story, not to a place in the queue: Mara's story passes whichever two review
# it, and River's is disputed by any two.
RATINGS = {"Mara": (None, 5, 4, 5), "Jonas": (None, 4, 4, 3), "Tomas": (4, None, 2, 3), "River": (3, 5, None, 1),
           "Noor": (5, 4, 3, 5)}  # fmt: skip
REVIEWERS = ("ada", "bo", "cy", "di")


def review_values(reviewer: str, position: int, record: dict) -> dict:
    story = record["fields"]["story"]
    row = next(ratings for name, ratings in RATINGS.items() if story.startswith(name))
    rating = row[REVIEWERS.index(reviewer)]
    decision = "include" if rating >= 4 else ("revise" if rating == 3 else "exclude")
    themes = ["work"] if (position + REVIEWERS.index(reviewer)) % 2 else ["identity", "work"]
    values = {"rating": rating, "decision": decision, "themes": themes}
    if reviewer == "bo" and story == STORIES["cy"][0][2]:  # a story that stays in the snapshot
        values["flags"] = ["personal_data"]
    return values


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The whole scenario, run once; yields (server, participants, snapshot dir, review-open output)."""
    tmp = tmp_path_factory.mktemp("workflow")
    with own_study_server(tmp / "home") as server:
        people = add_participants(server, ROSTER, tmp)
        for who, answer in CONSENT.items():
            people[who].answer("consent", answer)
        about = {"use": "yes", "gender_identity": "woman", "pronouns": ["she", "prefer_not_to_say"],
                 "self_description": "  a writer  "}  # fmt: skip
        people["ada"].answer("about-you", about)
        people["bo"].answer("about-you", {"use": "no", "gender_identity": "man"})
        people["cy"].answer("about-you", {"use": "yes", "age_range": "25_34"})
        for who, stories in STORIES.items():
            for invitation, prompt, story in stories:
                people[who].answer("stories", {"prompt": prompt, "story": story}, external_id=invitation)
        refusals = {}
        for who, (invitation, prompt, story) in BAD_STORIES.items():
            record = next(r for r in people[who].queue(people[who].dataset_id("stories"))
                          if r["external_id"] == invitation)  # fmt: skip
            refusals[who] = people[who].submit(record["id"], {"prompt": prompt, "story": story})
        who, answer = INVALID_CONSENT
        refusals[who] = people[who].submit(people[who].queue(people[who].dataset_id("consent"))[0]["id"], answer)

        opened = codigit("review", "open", "1", home=server.home)
        assert opened.returncode == 0, opened.stderr
        queues = {}
        for reviewer in REVIEWERS:
            p = people[reviewer]
            queues[reviewer] = sorted(p.queue(p.dataset_id("review-1", "codigit")), key=lambda r: r["external_id"])
            for position, record in enumerate(queues[reviewer]):
                p.submit(record["id"], review_values(reviewer, position, record)).raise_for_status()
        out = tmp / "snapshots"
        before = codigit("collect", "--out", str(out), home=server.home)  # taken before fay withdraws
        assert before.returncode == 0, before.stderr
        withdrawn = codigit("participants", "withdraw", people["fay"].username, "--reason", "moved on",
                            "--snapshots", str(out), home=server.home)  # fmt: skip
        assert withdrawn.returncode == 0, withdrawn.stderr
        assert "1 copy of their stories removed" in withdrawn.stdout
        collected = codigit("collect", "--out", str(out), home=server.home)
        assert collected.returncode == 0, collected.stderr
        yield server, people, out, opened, collected, refusals, queues


def load(path, name):
    return [json.loads(line) for line in (path / f"{name}.jsonl").read_text().splitlines()]


def latest(out):
    return out / (out / "LATEST").read_text().strip()


def test_answers_the_rules_refuse_are_refused_in_the_study_words_and_not_stored(study):
    server, people, out, *_, refusals, _ = study
    assert {who: r.status_code for who, r in refusals.items()} == {"cy": 422, "bo": 422, "di": 422}
    assert refusals["cy"].json()["detail"].startswith("Your story is empty.")
    assert refusals["bo"].json()["detail"].startswith("Your story has 6001 characters; this study takes stories of")
    assert refusals["di"].json()["detail"].startswith("You said yes to publishing but no to fine-tuning.")
    for who in ("cy", "bo", "di"):  # nothing of the refused answers is on the server
        form = people[who].dataset_id("stories" if who != "di" else "consent")
        mine = people[who].http.post(f"/me/datasets/{form}/records/search", params={"include": "responses",
                                     "limit": 50}, json={"query": {}}).raise_for_status().json()["items"]  # fmt: skip
        texts = [r["values"] for item in mine for r in item["record"].get("responses") or []]
        assert all(v.get("story", {}).get("value") not in ("   ", "x" * 6001) for v in texts), texts
        if who == "di":
            assert texts == [], texts
    meta = json.loads((latest(out) / "snapshot.json").read_text())
    assert meta["problems"] == [] and "consent_invalid" not in meta["excluded"]


def test_nobody_is_given_their_own_story_to_review_and_a_self_review_is_refused(study):
    server, people, out, *_, queues = study
    import argilla as rg

    authors = {s["story_id"]: s["author"] for s in load(latest(out), "stories")}
    for reviewer, queue in queues.items():
        assert queue and all(authors.get(r["external_id"]) != people[reviewer].username for r in queue), reviewer
    ada = people["ada"]
    dataset = rg.Argilla(api_url=server.url, api_key=server.api_key).datasets("review-1", workspace="codigit")
    own = next(r for r in dataset.records(with_responses=False) if authors.get(r.id) == ada.username)
    refused = ada.submit(str(own._server_id), {"rating": 5, "decision": "include"})
    assert refused.status_code == 422 and refused.json()["detail"].startswith("This is your own story."), refused.text


def test_review_round_has_consented_valid_stories_and_no_author_identity(study):
    server, people, _, opened, *_ = study
    assert "5 added" in opened.stdout and "2 no consent form" in opened.stdout  # ed, di (refused)
    import argilla as rg

    client = rg.Argilla(api_url=server.url, api_key=server.api_key)
    dataset = client.datasets("review-1", workspace="codigit")
    assert dataset.settings.distribution.min_submitted == 3
    assert [f.name for f in dataset.settings.fields] == ["prompt", "story"]
    assert not dataset.settings.metadata
    texts = {r.fields["story"] for r in dataset.records(with_responses=False)}
    assert texts == {s for who in ("ada", "bo", "cy") for _, _, s in STORIES[who]}  # fay's left when she withdrew
    raw = server.http().get(f"/datasets/{dataset.id}/records").text
    for who, person in people.items():
        assert person.username not in raw and ROSTER[who] not in raw


def test_review_open_again_adds_nothing(study):
    server, *_ = study
    again = codigit("review", "open", "1", home=server.home)
    assert again.returncode == 0, again.stderr
    assert "0 added" in again.stdout and "4 already in round" in again.stdout  # fay withdrew since


def test_snapshot_honours_consent_withdrawal_and_validity(study):
    _, people, out, _, collected, *_ = study
    snap = latest(out)
    u = {who: p.username for who, p in people.items()}
    stories = load(snap, "stories")
    assert sorted(s["author"] for s in stories) == sorted([u["ada"], u["ada"], u["bo"], u["cy"], u["di"], u["ed"]])
    assert u["fay"] not in (snap / "stories.jsonl").read_text()
    consent = {c["participant"]: c for c in load(snap, "consent")}
    assert set(consent) == {u["ada"], u["bo"], u["cy"]}
    assert consent[u["ada"]]["attribution_name"] == "Ada L." and consent[u["ada"]]["public"] is True
    assert consent[u["bo"]]["attribution_name"] is None and consent[u["bo"]]["public"] is False
    assert all(c["version"] == "1.0" for c in consent.values())
    meta = json.loads((snap / "snapshot.json").read_text())
    assert meta["excluded"]["stories_withdrawn"] == 1 and meta["excluded"]["consent_withdrawn"] == 1
    assert meta["excluded"]["positionality_not_for_use"] == 1
    assert [w["participant"] for w in load(snap, "withdrawals")] == [u["fay"]]
    assert "left out" in collected.stdout and collected.stderr.count("codigit: warning:") == 0


def test_snapshot_positionality_only_own_consented_answers(study):
    _, people, out, *_ = study
    answers = {p["participant"]: p["answers"] for p in load(latest(out), "positionality")}
    assert answers == {
        people["ada"].username: {"gender_identity": "woman", "pronouns": ["prefer_not_to_say"],
                                 "self_description": "a writer"},
        people["cy"].username: {"age_range": "25_34"},
    }  # fmt: skip


def test_snapshot_reviews_have_no_self_reviews_and_drop_withdrawn_authors(study):
    _, people, out, *_ = study
    snap = latest(out)
    reviews = load(snap, "reviews")
    authors = {s["story_id"]: s["author"] for s in load(snap, "stories")}
    assert reviews and all(r["story_id"] in authors for r in reviews)  # fay's story and its reviews are gone
    assert {r["reviewer"] for r in reviews} <= {people[w].username for w in REVIEWERS}
    assert not any(r["self_review"] or r["reviewer"] == authors[r["story_id"]] for r in reviews)
    flagged = [r for r in reviews if r["flags"]]
    assert flagged and all(r["flags"] == ["personal_data"] for r in flagged)


def test_snapshot_files_are_private_and_pseudonymous(study):
    _, _, out, *_ = study
    snap = latest(out)
    assert stat.S_IMODE(snap.stat().st_mode) == 0o700
    for path in snap.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        text = path.read_text()
        for who, name in ROSTER.items():
            assert name not in text and f"{who}@example.org" not in text
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp")]


def test_agreement_matches_krippendorff_package(study, tmp_path):
    _, _, out, *_ = study
    report_path = tmp_path / "agreement.json"
    result = codigit("agreement", "--snapshot", str(out), "--format", "json", "--out", str(report_path))
    assert result.returncode == 0, result.stderr
    report = json.loads(report_path.read_text())
    reviews = [r for r in load(latest(out), "reviews") if not r["self_review"]]
    stories = sorted({r["story_id"] for r in reviews})
    raters = sorted({r["reviewer"] for r in reviews})
    rows = {(q["question"], q["label"]): q for q in report["questions"]}

    def matrix(value):
        m = np.full((len(raters), len(stories)), np.nan)
        for r in reviews:
            m[raters.index(r["reviewer"]), stories.index(r["story_id"])] = value(r)
        return m

    expected = krippendorff.alpha(reliability_data=matrix(lambda r: r["rating"]), level_of_measurement="ordinal")
    assert rows[("rating", None)]["alpha"] == pytest.approx(expected, abs=1e-4)
    assert rows[("rating", None)]["level"] == "ordinal"
    codes = {"include": 0, "revise": 1, "exclude": 2}
    decisions = matrix(lambda r: codes[r["decision"]])
    expected = krippendorff.alpha(reliability_data=decisions, level_of_measurement="nominal")
    assert rows[("decision", None)]["alpha"] == pytest.approx(expected, abs=1e-4)
    expected = krippendorff.alpha(reliability_data=matrix(lambda r: "identity" in r["themes"]),
                                  level_of_measurement="nominal")  # fmt: skip
    assert rows[("themes", "identity")]["alpha"] == pytest.approx(expected, abs=1e-4)
    assert rows[("themes", "identity")]["level"] == "binary"
    low, high = rows[("rating", None)]["ci_low"], rows[("rating", None)]["ci_high"]
    assert low <= rows[("rating", None)]["alpha"] <= high
    assert report["self_reviews_excluded"] == 0
    assert rows[("rating", None)]["n_raters"] == len(raters)

    table = codigit("agreement", "--snapshot", str(out))
    assert table.returncode == 0, table.stderr
    rating = rows[("rating", None)]  # the table says what the JSON report says
    ci = f"[{rating['ci_low']:6.3f}, {rating['ci_high']:6.3f}]"
    assert f"{'rating':<34} {'ordinal':<8} {rating['alpha']:6.3f}  {ci:<17} {rating['n_items']:>5}" in table.stdout
    disputed = ", ".join(d["story_id"] for d in rating["disputed"])
    assert rating["disputed"] and f"most disputed by rating: {disputed}\n" in table.stdout


def test_withdraw_is_recorded_once_and_unknown_pseudonyms_are_refused(study):
    server, people, out, *_ = study
    again = codigit("participants", "withdraw", people["fay"].username, "--snapshots", str(out), home=server.home)
    assert again.returncode == 0 and "already withdrawn" in again.stdout
    unknown = codigit("participants", "withdraw", "p-0000000000", home=server.home)
    assert unknown.returncode == 2 and unknown.stderr.strip().count("\n") == 0
    assert "unknown pseudonym 'p-0000000000'" in unknown.stderr
    import argilla as rg

    ledger = rg.Argilla(api_url=server.url, api_key=server.api_key).datasets("ledger", workspace="codigit-organisers")
    entries = [r.fields for r in ledger.records(with_responses=False)]
    assert len(entries) == 1 and entries[0]["participant"] == people["fay"].username
    assert entries[0]["reason"] == "moved on" and entries[0]["event"] == "withdrawal"
    # nothing else is lost: her story is still on the server, only left out of snapshots
    own = rg.Argilla(api_url=server.url, api_key=server.api_key).datasets("stories", workspace=people["fay"].username)
    kept = [resp.value for rec in own.records(with_responses=True) for resp in rec.responses["story"]]
    assert kept == [STORIES["fay"][0][2]]


def test_new_consent_version_is_asked_again_and_the_latest_answer_counts(study, tmp_path):
    import shutil

    server, people, *_ = study
    annotation = tmp_path / "annotation"
    shutil.copytree(STUDY.parent, annotation)
    study_file = annotation / "study.yaml"
    study_file.write_text(study_file.read_text().replace('version: "1.0"', 'version: "1.1"'))
    result = codigit("init", "--study", str(study_file), home=server.home)
    assert result.returncode == 0, result.stderr
    assert f"{people['ada'].username}/consent: 1 records added" in result.stdout

    ada = people["ada"]
    pending = [r["external_id"] for r in ada.queue(ada.dataset_id("consent"))]
    assert pending == ["consent-1.1"]  # the new text waits for her; her 1.0 answer stays on record
    ada.answer("consent", {"training": "yes", "public": "no", "attribution": "none"}, external_id="consent-1.1")
    mine = tmp_path / "snapshots"  # not the scenario's folder: the other tests read its latest snapshot
    collected = codigit("collect", "--study", str(study_file), "--out", str(mine), home=server.home)
    assert collected.returncode == 0, collected.stderr
    consent = {c["participant"]: c for c in load(latest(mine), "consent")}
    assert consent[ada.username]["version"] == "1.1" and consent[ada.username]["public"] is False
    assert consent[ada.username]["attribution_name"] is None
    assert consent[people["bo"].username]["version"] == "1.0"  # not answered again yet: still their 1.0 answer
    assert json.loads((latest(mine) / "snapshot.json").read_text())["consent_version"] == "1.1"


def test_review_rounds_refuse_a_changed_count_and_bring_back_only_edited_stories(study):
    """New rounds skip what was reviewed unchanged. The story it edits keeps its old text in round 1 and in the
    scenario's snapshots, which the other tests read: any order of the tests holds."""
    server, people, *_ = study
    for args, message in [(["1", "--per-story", "2"], "cannot change now"), (["2", "--per-story", "0"], "at least 1"),
                          (["Round Two"], "use lowercase letters")]:  # fmt: skip
        refused = codigit("review", "open", *args, home=server.home)
        assert refused.returncode == 2 and message in refused.stderr and len(refused.stderr.splitlines()) == 1
    second = codigit("review", "open", "2", home=server.home)
    assert second.returncode == 0, second.stderr
    assert "0 added" in second.stdout and "4 reviewed before unchanged" in second.stdout

    ada = people["ada"]  # edits her submitted story the way the UI does: PUT on her own response
    submitted = {
        "query": {},
        "filters": {
            "and": [{"type": "terms", "scope": {"entity": "response", "property": "status"}, "values": ["submitted"]}]
        },
    }
    found = (
        ada.http.post(f"/me/datasets/{ada.dataset_id('stories')}/records/search", params={"limit": 50}, json=submitted)
        .raise_for_status()
        .json()["items"]
    )
    record_id = next(r["record"]["id"] for r in found if r["record"]["external_id"] == "invitation-care")  # fmt: skip
    response = ada.http.get(f"/records/{record_id}", params={"include": "responses"}).json()["responses"][0]
    edited = {"prompt": {"value": STORIES["ada"][1][1]}, "story": {"value": "Jonas and Lee took turns, then..."}}
    ada.http.put(f"/responses/{response['id']}", json={"values": edited, "status": "submitted"}).raise_for_status()
    third = codigit("review", "open", "3", home=server.home)
    assert third.returncode == 0, third.stderr
    assert "1 added" in third.stdout and "3 reviewed before unchanged" in third.stdout


def test_withdrawal_takes_the_story_out_of_review_and_out_of_a_release_from_an_older_snapshot(study, tmp_path):
    """fay withdrew after review round 1 and after a snapshot was taken; no collect ran between her withdrawal and
    this release, which is made from that older snapshot. Her story must still stay out."""
    server, people, out, *_ = study
    fay_story = STORIES["fay"][0][2]
    before = sorted(p for p in out.iterdir() if (p / "snapshot.json").exists())[0]
    reviews_before = load(before, "reviews")
    fay_ids = {s["story_id"] for s in load(before, "stories") if s["author"] == people["fay"].username}
    assert len(fay_ids) == 1 and any(r["story_id"] in fay_ids for r in reviews_before)  # she was reviewed, then left
    assert not any(r["story_id"] in fay_ids for r in load(latest(out), "reviews"))  # her review copy is gone

    mirror = out / "ledger" / "withdrawals.jsonl"
    assert stat.S_IMODE(mirror.stat().st_mode) == 0o600
    assert [json.loads(line)["participant"] for line in mirror.read_text().splitlines()] == [people["fay"].username]
    again = codigit("participants", "withdraw", people["fay"].username, "--snapshots", str(out), home=server.home)
    assert again.returncode == 0 and "already withdrawn" in again.stdout and len(mirror.read_text().splitlines()) == 1

    releases = tmp_path / "releases"
    for story_id in sorted({r["story_id"] for r in reviews_before if "personal_data" in r["flags"]}):
        decided = codigit("release", "decide", story_id, "keep", "--by", "organiser", "--out", str(releases),
                          "--snapshot", str(before))  # fmt: skip
        assert decided.returncode == 0, decided.stderr
    made = codigit("release", "0.1.0", "--snapshot", str(before), "--out", str(releases), "--no-roster")
    assert made.returncode == 0, made.stderr
    manifest = json.loads((releases / "0.1.0" / "manifest.json").read_text())
    assert [manifest["excluded_stories"][i] for i in fay_ids] == ["withdrawn"]
    assert people["fay"].username not in manifest["pseudonyms"]
    assert not any(fay_story.encode() in p.read_bytes() for p in (releases / "0.1.0").rglob("*") if p.is_file())
