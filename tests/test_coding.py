"""Coding rounds end to end, through a real embedded server of its own and the real CLI: researchers code the
consented stories with the codebook, agreement is measured, codes are reconciled (majority, then an adjudicator),
a participant withdraws, and the round is exported for qualitative tools."""

from __future__ import annotations

import csv
import json
import stat

import krippendorff
import numpy as np
import pytest
from conftest import REPO, add_participants, codigit, login, own_study_server

from codigit.simulate import Participant

pytestmark = pytest.mark.slow  # a server of its own and a whole scenario: about a minute before the first test

RESEARCH = "codigit-researchers"
ROSTER = {w: w.capitalize() + " Example" for w in ("ada", "bo", "cy", "di", "ed", "fay", "gil", "hal")}
GENDER = {"ada": "woman", "bo": "woman", "cy": "woman", "di": "man", "fay": "man", "gil": "non_binary"}
NO_CONSENT = "ed"  # writes a story, never consents
WITHDRAWS = "gil"  # consents, codes are given, then withdraws
CODES = ["care_work", "stereotype_challenged", "work_and_careers", "identity_affirmed"]


def story_of(who: str) -> str:
    return f"{who.capitalize()}'s story: the night nurse, Tomas, sang to the ward while the rain came down."


def codes_for(coder: str, who: str) -> list[str]:
    """ana and ben agree on every story but bo's and di's (so a few codes are disputed, and ties happen); the
    story's author is read from its text, so the disputes do not depend on the order of random record ids."""
    n = sorted(ROSTER).index(who)
    base = [CODES[n % len(CODES)]] + (["care_work"] if n % 3 == 0 else [])
    if coder == "ben-r" and who in ("bo", "di"):
        return ["none"] if who == "di" else [*base, "identity_affirmed"]
    return sorted(set(base))


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("coding")
    policy = tmp / "policy.yaml"  # k = 3 so that the groups of eight people can show
    policy.write_text((REPO / "annotation/policy.yaml").read_text().replace("min_group_size: 5", "min_group_size: 3"))
    folder = tmp / "coding"
    with own_study_server(tmp / "home") as server:
        people = add_participants(server, ROSTER, tmp)
        for who, p in people.items():
            if who != NO_CONSENT:
                p.answer("consent", {"training": "yes", "public": "yes", "attribution": "none"})
            if who in GENDER:
                p.answer("about-you", {"use": "yes", "gender_identity": GENDER[who], "age_range": "25_34"})
            p.answer("stories", {"prompt": f"A prompt by {who}", "story": story_of(who)}, external_id="invitation-open")
        refused = codigit("coding", "open", "1", "--coders", f"ana-r,{people['ada'].username}", "--coding",
                          str(folder), home=server.home)  # fmt: skip
        bad_name = codigit("coding", "open", "Pilot", "--coders", "zed-r,yan-r", "--coding", str(folder),
                           home=server.home)  # fmt: skip
        opened = codigit("coding", "open", "1", "--coders", "ana-r,ben-r", "--coding", str(folder), home=server.home)
        assert opened.returncode == 0, opened.stderr
        with (server.home / "researcher-logins.csv").open(newline="") as f:
            logins = {r["username"]: r["password"] for r in csv.DictReader(f)}
        coders = {
            name: Participant(name, server.http(login(server, name, logins[name]))) for name in ("ana-r", "ben-r")
        }
        for name, coder in coders.items():
            queue = sorted(coder.queue(coder.dataset_id("coding-1", RESEARCH)), key=lambda r: r["external_id"])
            for record in queue:
                who = record["fields"]["story"].split("'")[0].lower()  # "Bo's story: …"
                values = {"codes": codes_for(name, who)} | ({"memo": "hard one"} if who == "bo" else {})
                coder.submit(record["id"], values).raise_for_status()
        agreement = codigit("coding", "agreement", "1", "--coding", str(folder), "--n-boot", "200", home=server.home)
        codings_then = (folder / "1" / "codings.jsonl").read_text()  # what agreement read (a withdrawal edits it)
        majority = codigit("coding", "reconcile", "1", "--coding", str(folder), home=server.home)
        asked = codigit("coding", "reconcile", "1", "--coding", str(folder), "--adjudicator", "cleo-r",
                        home=server.home)  # fmt: skip
        with (server.home / "researcher-logins.csv").open(newline="") as f:
            cleo_password = {r["username"]: r["password"] for r in csv.DictReader(f)}["cleo-r"]
        cleo = Participant("cleo-r", server.http(login(server, "cleo-r", cleo_password)))
        adjudication = cleo.queue(cleo.dataset_id("coding-1-adjudication", RESEARCH))
        coded = server.http().get(f"/datasets/{cleo.dataset_id('coding-1', RESEARCH)}/records").json()["items"]
        not_a_coder = cleo.submit(coded[0]["id"], {"codes": ["none"]})  # straight to the route, as any client can
        for record in adjudication:
            cleo.submit(record["id"], {"codes": ["work_and_careers"]}).raise_for_status()
        adjudicated = codigit("coding", "reconcile", "1", "--coding", str(folder), "--adjudicator", "cleo-r",
                              home=server.home)  # fmt: skip
        before = codigit("coding", "export", "1", "--coding", str(folder), "--policy", str(policy), home=server.home)
        assert before.returncode == 0, before.stderr
        withdrawn = codigit("participants", "withdraw", people[WITHDRAWS].username, "--snapshots",
                            str(tmp / "snapshots"), "--coding", str(folder), home=server.home)  # fmt: skip
        assert withdrawn.returncode == 0, withdrawn.stderr
        exported = codigit("coding", "export", "1", "--coding", str(folder), "--policy", str(policy), "--out",
                           str(tmp / "export"), home=server.home)  # fmt: skip
        (tmp / "notes").mkdir()
        (tmp / "notes" / "mine.txt").write_text("a researcher's own notes")
        onto_notes = codigit("coding", "export", "1", "--coding", str(folder), "--policy", str(policy), "--out",
                             str(tmp / "notes"), home=server.home)  # fmt: skip
        yield {"server": server, "people": people, "coders": coders, "cleo": cleo, "folder": folder, "tmp": tmp,
               "refused": refused, "bad_name": bad_name, "not_a_coder": not_a_coder, "onto_notes": onto_notes,
               "opened": opened, "codings_then": codings_then, "agreement": agreement, "majority": majority,
               "asked": asked, "adjudication": adjudication, "adjudicated": adjudicated, "withdrawn": withdrawn,
               "exported": exported}  # fmt: skip


def owner_client(server):
    import argilla as rg

    return rg.Argilla(api_url=server.url, api_key=server.api_key)


def test_a_coding_round_holds_consented_stories_without_authors_or_positionality(scenario):
    server, people = scenario["server"], scenario["people"]
    assert "7 consented stories" in scenario["opened"].stdout, scenario["opened"].stdout
    dataset = owner_client(server).datasets("coding-1", workspace=RESEARCH)
    assert [f.name for f in dataset.settings.fields] == ["prompt", "story"] and not dataset.settings.metadata
    assert dataset.settings.distribution.min_submitted == 2
    texts = {r.fields["story"] for r in dataset.records(with_responses=False)}
    # ed never consented; gil's story left the round when gil withdrew
    assert texts == {story_of(w) for w in ROSTER if w not in (NO_CONSENT, WITHDRAWS)}
    raw = server.http().get(f"/datasets/{dataset.id}/records").text + json.dumps(server.http().get(
        f"/datasets/{dataset.id}").json()) + str(dataset.settings.guidelines)  # fmt: skip
    for who, person in people.items():
        assert person.username not in raw and ROSTER[who] not in raw
    for value in ("non_binary", "25_34", "gender_identity", "Gender identity", "age_range"):
        assert value not in raw  # positionality never reaches the researchers' dataset


def test_coders_are_researchers_only(scenario):
    server, people, coders = scenario["server"], scenario["people"], scenario["coders"]
    refused = scenario["refused"]
    assert refused.returncode == 2 and "coders are researchers only" in refused.stderr
    assert refused.stderr.count("\n") == 1
    assert stat.S_IMODE((server.home / "researcher-logins.csv").stat().st_mode) == 0o600
    for coder in coders.values():  # in the research workspace and nowhere else
        spaces = [w["name"] for w in coder.http.get("/me/workspaces").json()["items"]]
        assert spaces == [RESEARCH]
    for person in people.values():
        spaces = [w["name"] for w in person.http.get("/me/workspaces").json()["items"]]
        assert RESEARCH not in spaces
    bad = scenario["bad_name"]  # checked before any account was made
    assert bad.returncode == 2 and "round 'Pilot'" in bad.stderr and bad.stderr.count("\n") == 1
    assert not {"zed-r", "yan-r"} & {u["username"] for u in server.http().get("/users").json()["items"]}
    init = codigit("init", home=server.home)
    assert init.returncode == 0 and f"researcher(s) code stories in {RESEARCH}" in init.stdout, init.stderr


def test_each_coder_reads_only_their_own_codes(scenario):
    ana = scenario["coders"]["ana-r"]
    ana_id = ana.http.get("/me").json()["id"]
    queue = ana.http.post(f"/me/datasets/{ana.dataset_id('coding-1', RESEARCH)}/records/search",
                          params={"include": "responses", "limit": 50}, json={"query": {}}).json()["items"]  # fmt: skip
    assert queue
    for item in queue:
        record = ana.http.get(f"/records/{item['record']['id']}", params={"include": "responses"}).json()
        assert {r["user_id"] for r in record.get("responses") or []} <= {ana_id}


def test_agreement_per_code_matches_the_krippendorff_package(scenario):
    assert scenario["agreement"].returncode == 0, scenario["agreement"].stderr
    report = json.loads((scenario["folder"] / "1" / "agreement.json").read_text())
    codings = [json.loads(line) for line in scenario["codings_then"].splitlines()]
    stories = sorted({c["story_id"] for c in codings})
    assert report["stories_coded"] == len(stories) == 7 and report["coders"] == ["ana-r", "ben-r"]
    checked = 0
    for row in report["codes"]:
        matrix = np.full((2, len(stories)), np.nan)
        for c in codings:
            matrix[["ana-r", "ben-r"].index(c["coder"]), stories.index(c["story_id"])] = row["label"] in c["codes"]
        if len(np.unique(matrix)) < 2:
            assert row["alpha"] is None
            continue
        expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
        assert row["alpha"] == pytest.approx(expected, abs=1e-4)
        checked += 1
    assert checked >= 3
    assert len(report["disputed"]) == 2 and "2 of 7 coded stories disputed" in scenario["agreement"].stdout


def test_reconcile_takes_the_majority_then_the_adjudicators_answer(scenario):
    majority = scenario["majority"]
    assert majority.returncode == 0, majority.stderr
    assert "unanimous 5" in majority.stdout and "unresolved 2" in majority.stdout, majority.stdout
    assert scenario["asked"].returncode == 0 and "2 disputed stories wait for cleo-r" in scenario["asked"].stdout
    assert len(scenario["adjudication"]) == 2  # only the disputed stories, with the coders' answers beside them
    assert all("Coder 1" in r["fields"]["answers"] for r in scenario["adjudication"])
    assert "hard one" in "".join(r["fields"]["answers"] for r in scenario["adjudication"])
    assert "adjudicator 2" in scenario["adjudicated"].stdout, scenario["adjudicated"].stdout
    assert "new researcher accounts cleo-r" in scenario["asked"].stdout  # an adjudicator's account is announced
    refused = scenario["not_a_coder"]  # the adjudicator is not a coder of the round: the server refuses
    assert refused.status_code == 422 and "not one of this coding round's coders" in refused.text, refused.text
    rows = [json.loads(line) for line in (scenario["folder"] / "1" / "reconciled.jsonl").read_text().splitlines()]
    decided = [r for r in rows if r["how"] == "adjudicator"]
    assert len(decided) == 2 and all(r["codes"] == ["work_and_careers"] and r["adjudicator"] == "cleo-r"
                                     for r in decided)  # fmt: skip
    summary = json.loads((scenario["folder"] / "1" / "reconciliation.json").read_text())
    assert summary["how"] == {"adjudicator": 2, "unanimous": 5} and summary["codebook"]["version"] == "2"


def test_a_withdrawal_takes_the_story_out_of_every_coding_dataset_and_file(scenario):
    withdrawn = scenario["withdrawn"].stdout
    assert "1 copy of their stories removed from review and coding rounds" in withdrawn
    assert "its export held their stories and was deleted" in withdrawn, withdrawn
    assert not (scenario["folder"] / "1" / "export").exists()
    for name in ("codings.jsonl", "reconciled.jsonl"):
        lines = (scenario["folder"] / "1" / name).read_text().splitlines()
        assert len(lines) >= 6 and story_of(WITHDRAWS) not in "".join(lines)
    left = {json.loads(line)["story_id"] for line in (scenario["folder"] / "1" / "reconciled.jsonl").read_text()
            .splitlines()}  # fmt: skip
    assert len(left) == 6  # 7 coded, less gil's
    client = owner_client(scenario["server"])
    for name in ("coding-1", "coding-1-adjudication"):
        texts = {r.fields["story"] for r in client.datasets(name, workspace=RESEARCH).records(with_responses=False)}
        assert story_of(WITHDRAWS) not in texts


def test_the_export_is_pseudonymous_k_anonymous_and_explained(scenario):
    import pandas as pd

    exported, out, people = scenario["exported"], scenario["tmp"] / "export", scenario["people"]
    assert exported.returncode == 0, exported.stderr
    assert sorted(p.name for p in out.iterdir()) == ["DATA_STATEMENT.md", "stories.csv", "stories.parquet"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in out.iterdir())
    frame = pd.read_parquet(out / "stories.parquet")
    assert frame.equals(pd.read_csv(out / "stories.csv", keep_default_na=False).astype(frame.dtypes.to_dict()))
    assert set(frame["story"]) == {story_of(w) for w in ROSTER if w not in (NO_CONSENT, WITHDRAWS)}
    everything = (out / "stories.csv").read_text() + (out / "DATA_STATEMENT.md").read_text()
    for who, person in people.items():
        assert person.username not in everything and ROSTER[who] not in everything
    groups = frame[[c for c in frame.columns if c.startswith("group_")]]
    combos = groups.groupby(list(groups.columns)).size()
    assert (combos >= 3).all(), combos  # every combination of group columns covers k = 3 authors or more
    assert "non_binary" not in everything and "other/suppressed" in set(frame["group_gender_identity"])
    assert frame["code_work_and_careers"].sum() >= 2 and set(frame["how"]) <= {"unanimous", "adjudicator"}
    statement = (out / "DATA_STATEMENT.md").read_text()
    assert "k = 3" in statement and "stereotypes" in statement and "none and are left out" in statement
    onto_notes = scenario["onto_notes"]  # an export never replaces a folder that holds something else
    assert onto_notes.returncode == 2 and "is not an earlier export" in onto_notes.stderr
    assert (scenario["tmp"] / "notes" / "mine.txt").read_text() == "a researcher's own notes"
