"""The study's rules on the embedded server and the study home's API, through the endpoints the UI and the study
home call, each participant with their own key, on a real server of this module's own.

The browser tests (test_participant_journey.py) do the same as a person would; these check every route and edge.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import STUDY, add_participants, codigit, feedback_study_server, login, start_server

from codigit.study import load_study

pytestmark = pytest.mark.slow  # a server of the module's own with five participants, and one more server

ROSTER = {"ana": "Ana Ortiz", "ben": "Ben Okafor", "cam": "Cam Li", "dee": "Dee Rao", "eli": "Eli Berg"}
CONSENT = {"training": "yes", "public": "yes", "attribution": "none"}
TEXTS = load_study(STUDY).participant_words()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A server whose study lets authors see feedback after a round closes (a copy of the study file), with
    five participants; yields (server, people, study file, snapshots folder)."""
    tmp = tmp_path_factory.mktemp("home-api")
    with feedback_study_server(tmp) as (server, study_file, snapshots):
        yield server, add_participants(server, ROSTER, tmp), study_file, snapshots


def home(person) -> dict:
    return person.http.get("/codigit/home").raise_for_status().json()


def record_id(person, dataset: str, external_id: str | None = None, workspace: str | None = None) -> str:
    """A record of the person's form by its external id, whatever its status (the queue holds only pending ones)."""
    found = person.http.post(
        f"/me/datasets/{person.dataset_id(dataset, workspace)}/records/search",
        params={"limit": 100, "include": "responses"},
        json={"query": {}},
    ).raise_for_status()
    return next(i["record"]["id"] for i in found.json()["items"] if external_id in (None, i["record"]["external_id"]))


def responses(person, record: str) -> list[dict]:
    return person.http.get(f"/records/{record}", params={"include": "responses"}).raise_for_status().json()["responses"]


def test_study_words_are_public_and_carry_no_participant_data(study):
    server, people, *_ = study
    import httpx

    words = httpx.get(f"{server.url}/api/v1/codigit/study").raise_for_status().json()
    assert words["title"] == load_study(STUDY).title and words["limits"] == {"prompt": 1500, "story": 6000}
    assert set(words) == {
        "title",
        "description",
        "contact",
        "texts",
        "limits",
        "language",
        "languages",
        "research_workspace",
    }
    assert httpx.get(f"{server.url}/api/v1/codigit/home").status_code == 401
    assert not any(p.username in json.dumps(words) for p in people.values())


def test_each_step_of_the_home_follows_what_the_participant_does(study):
    _, people, *_ = study
    ana = people["ana"]
    start = home(ana)
    assert start["consent"]["state"] == "none" and start["about"]["state"] == "todo"
    assert start["stories"] == [] and start["withdrawn_at"] is None

    work = record_id(ana, "stories", "invitation-work")
    draft = {"values": {"prompt": {"value": "Who leads?"}, "story": {"value": "Mara led."}}, "status": "draft"}
    ana.http.post(f"/records/{work}/responses", json=draft).raise_for_status()
    assert [(s["invitation"], s["state"]) for s in home(ana)["stories"]] == [("invitation-work", "draft")]

    response = responses(ana, work)[0]
    ana.http.put(f"/responses/{response['id']}", json={**draft, "status": "submitted"}).raise_for_status()
    assert home(ana)["stories"][0]["state"] == "no_consent"  # submitted, but no consent yet

    consent = home(ana)["consent"]
    ana.http.post(f"/records/{consent['record_id']}/responses",
                  json={"values": {k: {"value": v} for k, v in CONSENT.items()}, "status": "submitted"}
                  ).raise_for_status()  # fmt: skip
    after = home(ana)
    assert after["consent"]["state"] == "given" and after["consent"]["values"] == CONSENT
    assert after["consent"]["answered_version"] == "1.0" and after["stories"][0]["state"] == "counts"

    ana.http.put(f"/responses/{response['id']}", json={**draft, "status": "discarded"}).raise_for_status()
    assert home(ana)["stories"][0]["state"] == "discarded"
    ana.answer("about-you", {"use": "no"})
    assert home(ana)["about"]["state"] == "done"
    ben = people["ben"]  # another participant's home holds only their own stories (other tests add to ben's)
    ben.http.post(f"/records/{record_id(ben, 'stories', 'invitation-care')}/responses", json=draft).raise_for_status()
    theirs = home(ben)["stories"]
    assert ("invitation-care", "draft") in [(s["invitation"], s["state"]) for s in theirs]
    assert work not in {s["id"] for s in theirs} and "invitation-work" not in {s["invitation"] for s in theirs}


@pytest.mark.parametrize(
    ("values", "rule", "figures"),
    [
        ({"prompt": "A question", "story": "   "}, "story_empty", {}),
        ({"prompt": " \n ", "story": "A story"}, "prompt_empty", {}),
        ({"prompt": "A question", "story": "s" * 6001}, "story_too_long", {"chars": 6001, "limit": 6000}),
        ({"prompt": "q" * 1501, "story": "A story"}, "prompt_too_long", {"chars": 1501, "limit": 1500}),
    ],
)
def test_a_story_collect_would_drop_is_refused_with_the_rule_and_nothing_is_stored(study, values, rule, figures):
    _, people, *_ = study
    cam = people["cam"]
    record = record_id(cam, "stories", "invitation-care")
    refused = cam.submit(record, values)
    assert refused.status_code == 422 and refused.json()["detail"] == TEXTS[f"rules.{rule}"].format(**figures)
    assert responses(cam, record) == []
    item = {"record_id": record, "values": {k: {"value": v} for k, v in values.items()}, "status": "submitted"}
    bulk = cam.http.post("/me/responses/bulk", json={"items": [item]})
    assert bulk.raise_for_status().json()["items"][0]["error"]["detail"] == refused.json()["detail"]
    assert responses(cam, record) == []
    kept = {"values": {k: {"value": v} for k, v in values.items()}, "status": "draft"}
    cam.http.post(f"/records/{record}/responses", json=kept).raise_for_status()  # a draft is kept: it never counts
    saved = responses(cam, record)[0]
    refused = cam.http.put(f"/responses/{saved['id']}", json={**kept, "status": "submitted"})
    assert refused.status_code == 422 and responses(cam, record)[0]["status"] == "draft"
    cam.http.delete(f"/responses/{saved['id']}").raise_for_status()


@pytest.mark.parametrize(
    ("answer", "rule"),
    [
        ({"training": "no", "public": "yes", "attribution": "none"}, "public_without_training"),
        ({"training": "yes", "public": "yes", "attribution": "name"}, "credit_without_name"),
        ({"training": "yes", "public": "yes", "attribution": "name", "attribution_name": "   "}, "credit_without_name"),
        (
            {"training": "yes", "public": "no", "attribution": "name", "attribution_name": "Dee"},
            "credit_without_public",
        ),
    ],
)
def test_an_invalid_consent_is_refused_and_a_valid_one_is_kept(study, answer, rule):
    _, people, *_ = study
    dee = people["dee"]
    consent = home(dee)["consent"]
    body = {"values": {k: {"value": v} for k, v in answer.items()}, "status": "submitted"}
    if consent["response_id"] is None:
        refused = dee.http.post(f"/records/{consent['record_id']}/responses", json=body)
    else:  # a change of a valid consent into an invalid one: refused, the valid one stays
        refused = dee.http.put(f"/responses/{consent['response_id']}", json=body)
    assert refused.status_code == 422 and refused.json()["detail"] == TEXTS[f"rules.{rule}"]
    assert home(dee)["consent"]["state"] == consent["state"]
    if consent["response_id"] is None:
        dee.submit(consent["record_id"], CONSENT).raise_for_status()
    assert home(dee)["consent"]["state"] == "given"


def test_a_round_never_shows_authors_their_own_story_and_every_story_gets_its_countable_reviews(study, tmp_path):
    """Every participant writes; a round of 2 reviews per story; one tries to review their own story, one reviews and
    then withdraws from the study home. Each remaining story still reaches 2 reviews that count."""
    server, people, study_file, snapshots = study
    for who in ("ben", "cam", "eli"):
        people[who].answer("consent", CONSENT)
        people[who].answer("stories", {"prompt": f"{who}'s question?", "story": f"{who}'s story."}, "invitation-open")
    opened = codigit("review", "open", "1", "--per-story", "2", "--study", str(study_file), home=server.home)
    assert opened.returncode == 0, opened.stderr
    snapshot = _collect(server, study_file, tmp_path / "s1")
    author = {s["story_id"]: s["author"] for s in snapshot["stories"]}

    def queue(who):
        p = people[who]
        return p.queue(p.dataset_id("review-1", "codigit"))

    for who in ROSTER:
        assert all(author[r["external_id"]] != people[who].username for r in queue(who)), who
    own = next(s for s, a in author.items() if a == people["ben"].username)
    import argilla as rg

    copies = rg.Argilla(api_url=server.url, api_key=server.api_key).datasets("review-1", workspace="codigit")
    own_copy = next(str(r._server_id) for r in copies.records(with_responses=False) if r.id == own)
    refused = people["ben"].submit(own_copy, {"rating": 5, "decision": "include"})
    assert refused.status_code == 422 and refused.json()["detail"] == TEXTS["rules.own_story"]

    for record in queue("eli"):  # eli reviews both stories that are not eli's, then leaves
        people["eli"].submit(record["id"], {"rating": 4, "decision": "include"}).raise_for_status()
    assert home(people["eli"])["rounds"][0]["done"] == 2
    left = people["eli"].http.post("/codigit/withdraw", json={"confirm": True, "reason": "from the home page"})
    assert left.raise_for_status().json()["review_copies_removed"] == 1
    for who in ("ana", "ben", "cam", "dee"):  # eli's reviews no longer use up the stories' slots
        for record in queue(who):
            people[who].submit(record["id"], {"rating": 3, "decision": "revise", "comment": f"from {who}"}
                               ).raise_for_status()  # fmt: skip
    snapshot = _collect(server, study_file, tmp_path / "s2")
    counted: dict[str, int] = {}
    for review in snapshot["reviews"]:
        assert not review["self_review"] and review["reviewer"] != people["eli"].username
        counted[review["story_id"]] = counted.get(review["story_id"], 0) + 1
    remaining = [s for s, a in author.items() if a != people["eli"].username]
    assert counted == {s: 2 for s in remaining}, counted

    # the withdrawal was recorded exactly as `codigit participants withdraw` records it
    ledger = rg.Argilla(api_url=server.url, api_key=server.api_key).datasets("ledger", workspace="codigit-organisers")
    entry = next(r.fields for r in ledger.records(with_responses=False))
    assert {k: entry[k] for k in ("event", "participant", "reason")} == {
        "event": "withdrawal", "participant": people["eli"].username, "reason": "from the home page"}  # fmt: skip
    mirror = [json.loads(line) for line in (snapshots / "ledger" / "withdrawals.jsonl").read_text().splitlines()]
    assert [(m["participant"], m["at"]) for m in mirror] == [(people["eli"].username, entry["at"])]
    again = codigit("participants", "withdraw", people["eli"].username, "--study", str(study_file),
                    "--snapshots", str(snapshots), home=server.home)  # fmt: skip
    assert again.returncode == 0 and "already withdrawn" in again.stdout
    assert home(people["eli"])["withdrawn_at"] == entry["at"]
    assert home(people["eli"])["stories"][0]["state"] == "withdrawn"
    refused = people["eli"].submit(
        record_id(people["eli"], "stories", "invitation-work"), {"prompt": "q", "story": "s"}
    )
    assert refused.status_code == 422 and refused.json()["detail"] == TEXTS["rules.withdrawn"]
    assert snapshot["withdrawals"] == [people["eli"].username]

    # feedback: only after the round is closed, only to the author, never who or which flags, never an organiser's
    ben = people["ben"]
    organiser = {"values": {"rating": {"value": 1}, "decision": {"value": "exclude"}, "comment": {"value": "trial"}},
                 "status": "submitted"}  # fmt: skip
    server.http().post(f"/records/{own_copy}/responses", json=organiser).raise_for_status()
    assert all(s["feedback"] == [] for s in home(ben)["stories"])
    closed = codigit("review", "close", "1", "--study", str(study_file), home=server.home)
    assert closed.returncode == 0 and "authors now see" in closed.stdout, closed.stderr
    feedback = next(s for s in home(ben)["stories"] if s["id"] == own)["feedback"]
    assert len(feedback) == 2 and all(set(f) == {"round", "rating", "decision", "comment"} for f in feedback)
    assert {(f["round"], f["rating"], f["decision"]) for f in feedback} == {("1", 3, "Include after revision")}
    assert {f["comment"] for f in feedback} < {"from ana", "from cam", "from dee"}  # eli's review was withdrawn
    assert all(s["feedback"] == [] for s in home(people["dee"])["stories"])  # dee wrote no story: sees none
    assert home(people["ana"])["rounds"][0]["closed_at"] and home(people["ana"])["rounds"][0]["waiting"] == 0
    late = people["dee"].submit(own_copy, {"rating": 1, "decision": "exclude"})
    assert late.status_code == 422 and late.json()["detail"] == TEXTS["rules.round_closed"]
    reopened = codigit("review", "open", "1", "--study", str(study_file), home=server.home)
    assert reopened.returncode == 2 and "review round 1 is closed" in reopened.stderr
    unknown = codigit("review", "close", "9", "--study", str(study_file), home=server.home)
    assert unknown.returncode == 2 and "no review round '9'" in unknown.stderr


def test_organisers_do_not_withdraw_through_the_home_and_it_needs_confirmation(study):
    server, people, *_ = study
    assert server.http().post("/codigit/withdraw", json={"confirm": True}).status_code == 403
    assert people["dee"].http.post("/codigit/withdraw", json={"confirm": False}).status_code == 422
    assert home(people["dee"])["withdrawn_at"] is None


def _collect(server, study_file: Path, out: Path) -> dict:
    result = codigit("collect", "--study", str(study_file), "--out", str(out), home=server.home)
    assert result.returncode == 0, result.stderr
    snap = out / (out / "LATEST").read_text().strip()
    read = {p: [json.loads(x) for x in (snap / f"{p}.jsonl").read_text().splitlines()] for p in ("stories", "reviews")}
    read["withdrawals"] = [json.loads(x)["participant"] for x in (snap / "withdrawals.jsonl").read_text().splitlines()]
    return read


def test_a_participant_chooses_their_language_for_the_study_home_and_the_servers_messages(study):
    server, people, study_file, _ = study
    import httpx

    from codigit.languages import localise

    spanish = localise(load_study(study_file), "es")
    public = httpx.get(f"{server.url}/api/v1/codigit/study", params={"lang": "es-MX"}).raise_for_status().json()
    assert public["language"] == "es" and public["title"] == spanish.title and public["texts"] == spanish.texts
    assert public["languages"] == {"en": "English", "es": spanish.name}
    fallback = httpx.get(f"{server.url}/api/v1/codigit/study", params={"lang": "fr"}).raise_for_status().json()
    assert fallback["language"] == "en" and fallback["texts"] == TEXTS

    cam = people["cam"]
    assert cam.http.get("/codigit/home", params={"lang": "es"}).json()["texts"] == spanish.texts  # the browser's
    assert cam.http.post("/codigit/language", json={"language": "xx"}).status_code == 422
    cam.http.post("/codigit/language", json={"language": "es"}).raise_for_status()
    shown = cam.http.get("/codigit/home", params={"lang": "en"}).raise_for_status().json()  # the choice wins
    assert shown["language"] == "es" and shown["texts"] == spanish.texts
    consent = {q["name"]: q for q in shown["consent"]["questions"]}
    assert consent["training"]["title"] == next(q.title for q in spanish.consent_questions if q.name == "training")
    assert consent["training"]["labels"].keys() == {"yes", "no"}  # the values stored stay the study's codes
    refused = cam.submit(record_id(cam, "stories", "invitation-identity"), {"prompt": "q", "story": " "})
    assert refused.status_code == 422 and refused.json()["detail"] == spanish.texts["rules.story_empty"]
    assert home(people["dee"])["language"] == "en"  # one person's choice is theirs alone

    def form_words(person) -> tuple[dict, str]:
        """Question titles of their writing form, and the open invitation's text, as Argilla serves them."""
        form = person.dataset_id("stories")
        titles = {q["name"]: q["title"] for q in person.http.get(f"/datasets/{form}/questions").json()["items"]}
        found = person.http.post(f"/me/datasets/{form}/records/search", params={"limit": 10}, json={"query": {}})
        records = [i["record"] for i in found.json()["items"]]
        return titles, next(r["fields"]["invitation"] for r in records if r["external_id"] == "invitation-open")

    prompt_es = next(q.title for q in spanish.story_questions if q.name == "prompt")
    assert form_words(cam) == ({"prompt": prompt_es, "story": "Tu historia"}, spanish.invitations["invitation-open"])
    assert form_words(people["dee"])[0]["prompt"] == "Your prompt"
    again = codigit("init", "--study", str(study_file), home=server.home)  # keeps each participant's language
    assert again.returncode == 0 and form_words(cam)[0]["prompt"] == prompt_es, again.stderr
    about = cam.http.get(f"/datasets/{cam.dataset_id('about-you')}/questions").json()["items"]
    use = next(q for q in about if q["name"] == "use")
    assert [o["text"] for o in use["settings"]["options"]] == list(
        next(q for q in spanish.about_questions if q.name == "use").labels.values())  # fmt: skip
    cam.http.post("/codigit/language", json={"language": "en"}).raise_for_status()
    assert form_words(cam)[0]["prompt"] == "Your prompt"  # and back


def test_a_study_that_no_longer_loads_refuses_answers_instead_of_dropping_its_rules(tmp_path):
    """The server applies the copy of the study that `init` deployed; if that cannot be loaded when the server
    starts (here: damaged by hand), participants' answers are refused, not stored without the rules."""
    server = start_server(tmp_path / "home")
    try:
        assert codigit("init", "--study", str(STUDY), home=server.home).returncode == 0
        person = add_participants(server, {"fay": "Fay Ng"}, tmp_path)["fay"]
        record = record_id(person, "stories", "invitation-open")
    finally:
        server.stop()
    deployed = Path(json.loads((tmp_path / "home" / "study.json").read_text())["study"])
    assert deployed.parent.parent == tmp_path / "home" / "studies"  # a copy in the home, not the working file
    deployed.write_text(deployed.read_text().replace("title:", "titel:", 1))
    server = start_server(tmp_path / "home", port=server.port)
    try:
        with server.http(login(server, person.username, _password(tmp_path, person.username))) as http:
            refused = http.post(f"/records/{record}/responses", json={"values": {"prompt": {"value": "q"},
                                "story": {"value": "s"}}, "status": "submitted"})  # fmt: skip
            assert refused.status_code == 422 and "nothing was saved" in refused.json()["detail"]
            assert http.get("/codigit/home").status_code == 503
        assert "no longer loads" in server.log.read_text()
    finally:
        server.stop()


def _password(tmp: Path, username: str) -> str:
    import csv

    with (tmp / "logins.csv").open(newline="", encoding="utf-8") as f:
        return next(r["password"] for r in csv.DictReader(f) if r["username"] == username)
