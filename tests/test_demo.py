"""`codigit demo --quick` through the real CLI: its own server, the simulated workshop, every stage after it, and
what it leaves behind. (`--quick` trains 2 steps and generates 12 tokens; every step is the same code as in the
full demo. The full demo's figures are in benchmarks/results.jsonl, shown in the docs' benchmarks page.)"""

from __future__ import annotations

import csv
import html
import json
import re
import socket
import stat
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, STUDY, codigit

from codigit.analysis.language import tokens
from codigit.study import load_study
from codigit.workshop import load_demo

DEMO = REPO / "annotation" / "demo"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo") / "codigit-demo"
    result = codigit("demo", "--quick", "--dir", str(folder), timeout=1200)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    where = {k: Path(v) for k, v in json.loads((folder / "demo.json").read_text(encoding="utf-8")).items()}
    return folder, result, where


def test_demo_data_is_labelled_synthetic_and_fits_the_study():
    demo = load_demo(DEMO, load_study(STUDY))
    assert len(demo.pairs) >= 40 and len(demo.people) == 12
    for name in ("demo.yaml", "pairs.yaml"):
        assert "SYNTHETIC DEMO DATA" in (DEMO / name).read_text(encoding="utf-8").splitlines()[0]
    assert "SYNTHETIC" in demo.card.title
    consent = [p.consent for p in demo.people.values()]
    assert None in consent and any(c and c["training"] == "no" for c in consent)  # mixed consent
    assert sum(p.withdraws for p in demo.people.values()) == 1
    assert [p.author for p in demo.pairs if "@" in p.story] == ["demo-04"]  # the personal-data gate's one catch


@pytest.mark.slow
def test_every_step_reports_and_the_summary_says_where_things_are(demo):
    folder, result, where = demo
    out = result.stdout
    steps = [line for line in out.splitlines() if line.startswith("[")]
    assert [s.split("]")[0] for s in steps] == [f"[{n}/12" for n in range(1, 13)], steps
    assert out.count("      done in ") == 12
    assert "Traceback" not in result.stderr
    for name in ("home", "snapshot", "release", "run", "report", "agreement", "coding", "positionality"):
        assert where[name].exists() and str(where[name]) in out, name
        assert where[name].is_relative_to(folder), name  # nothing outside the demo's folder
    assert f"codigit serve --home {where['home']}" in out and "participant-logins.csv" in out


@pytest.mark.slow
def test_the_workshop_happened_on_the_server_as_the_demo_data_says(demo):
    _, result, where = demo
    demo_data = load_demo(DEMO, load_study(STUDY))
    snapshot = where["snapshot"]
    meta = json.loads((snapshot / "snapshot.json").read_text(encoding="utf-8"))
    stories = [json.loads(line) for line in (snapshot / "stories.jsonl").read_text(encoding="utf-8").splitlines()]
    reviews = [json.loads(line) for line in (snapshot / "reviews.jsonl").read_text(encoding="utf-8").splitlines()]
    withdrawn = [k for k, p in demo_data.people.items() if p.withdraws]
    written = [p for p in demo_data.pairs if p.author not in withdrawn]
    assert sorted(s["story"] for s in stories) == sorted(p.story for p in written)
    assert meta["excluded"]["stories_withdrawn"] == len(demo_data.pairs) - len(written)
    # The server refused, in the study's words, what the rules do not allow: demo-12's consent (public release
    # without fine-tuning) and demo-06's attempt to review their own story; neither reached the snapshot.
    assert not any(r["self_review"] for r in reviews)
    assert "consent_invalid" not in meta["excluded"]
    assert "refused, as the participant would see it: demo-12's consent: You said yes to publishing" in result.stdout
    assert "demo-06 reviewing their own: This is your own story" in result.stdout
    # reviewers disagree, but not at random
    questions = json.loads(where["agreement"].read_text())["questions"]  # the shape `codigit agreement` writes
    alpha = {r["question"]: r["alpha"] for r in questions if r["label"] is None}
    assert 0.2 < alpha["rating"] < 0.95, alpha


@pytest.mark.slow
def test_release_honours_consent_withdrawal_and_the_personal_data_gate(demo):
    _, result, where = demo
    verified = codigit("release", "verify", str(where["release"]))
    assert verified.returncode == 0, verified.stderr
    manifest = json.loads((where["release"] / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["version"] == "0.1.0"
    assert manifest["excluded"]["withdrawn"] == 2 and manifest["excluded"]["no_consent"] == 6
    assert manifest["excluded"]["flagged_personal_data"] == 1
    assert [(d["decision"], d["by"]) for d in manifest["decisions"]] == [("exclude", "codigit demo")]
    logins = {
        r["email"].split("@")[0]: r["username"]
        for r in csv.DictReader((where["home"] / "participant-logins.csv").open())
    }
    assert logins["demo-11"] not in manifest["pseudonyms"]  # withdrew
    assert not {logins["demo-09"], logins["demo-10"], logins["demo-12"]} & set(manifest["pseudonyms"])  # no consent
    card = (where["release"] / "README.md").read_text(encoding="utf-8")
    assert "SYNTHETIC" in card
    public = pd.read_parquet(where["release"] / "public" / "data")
    train = pd.concat([pd.read_parquet(p) for p in (where["release"] / "data").glob("*.parquet")])
    assert 0 < len(public) < len(train)  # demo-06 and demo-08 consented to training only
    assert "r.okafor@example.com" not in " ".join(train["response"])


@pytest.mark.slow
def test_the_run_trained_on_that_release_and_the_report_compares_base_and_tuned(demo):
    _, _, where = demo
    provenance = json.loads((where["run"] / "provenance.json").read_text(encoding="utf-8"))
    manifest = json.loads((where["release"] / "manifest.json").read_text(encoding="utf-8"))
    assert provenance["release"]["dataset_hash"] == manifest["dataset_hash"] and provenance["finished_at"]
    generations = pd.read_parquet(where["run"] / "generations.parquet")
    assert set(generations["model"]) == {"base", "tuned"}
    assert (generations.groupby("model").size() == 31).all()  # every open prompt, once per model
    report = where["report"].read_text(encoding="utf-8")
    assert f"<h1>Base vs tuned: {html.escape(where['run'].name)}</h1>" in report
    assert f"<p>{len(generations)} generations over 31 prompts." in report
    # the examples show, beside each prompt, what the tuned model itself answered to it (first sample)
    first = generations[generations["sample"] == 0]
    tuned = first[first["model"] == "tuned"].set_index("prompt_id")["text"]
    pairs = re.findall(r"<section class='pair'><h4>(.*?): .*?<h5>tuned</h5><p>(.*?)</p></div></section>", report, re.S)
    assert pairs and all(text == html.escape(tuned[html.unescape(prompt_id)]) for prompt_id, text in pairs), pairs
    probe = json.loads((where["run"] / "analysis" / "memorisation.json").read_text(encoding="utf-8"))
    memorisation = f"<h2>Memorisation</h2><p>{probe['records']} training stories probed with their prompt and with a "
    memorisation += f"{probe['prefix_words']}-word start of the story: {probe['extraction_rate']:.1%} had a run of"
    assert probe["records"] > 0 and memorisation in report  # the demo ran the probe; the report says what it found
    assert where["positionality"].is_file()


@pytest.mark.slow
def test_secrets_stay_private_and_out_of_the_server_log(demo):
    _, _, where = demo
    home = where["home"]
    for private in ("credentials.json", "participant-logins.csv", "pseudonym.key"):
        assert stat.S_IMODE((home / private).stat().st_mode) == 0o600, private
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    log = where["server log"].read_text(encoding="utf-8")
    secrets = [r["password"] for r in csv.DictReader((home / "participant-logins.csv").open())]
    secrets += [json.loads((home / "credentials.json").read_text())[k] for k in ("password", "api_key")]
    assert len(secrets) == 14 and not [s for s in secrets if s in log]


@pytest.mark.slow
def test_the_demo_server_is_stopped_afterwards(demo):
    _, _, where = demo
    url = json.loads((where["home"] / "server.json").read_text())["url"]
    host, port = url.removeprefix("http://").split(":")
    assert host == "127.0.0.1"
    with socket.socket() as s:
        assert s.connect_ex((host, int(port))) != 0


@pytest.mark.slow
def test_a_second_demo_into_the_same_folder_is_refused_and_changes_nothing(demo):
    folder, _, _ = demo
    before = sorted((p, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file())
    again = codigit("demo", "--quick", "--dir", str(folder))
    assert again.returncode == 2 and again.stderr.count("\n") == 1
    assert "already exists and is not empty" in again.stderr
    assert sorted((p, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()) == before


@pytest.mark.slow
def test_researchers_coded_the_stories_and_the_page_reads_them_by_group(demo):
    _, result, where = demo
    snapshot = where["snapshot"]
    consented = {json.loads(line)["participant"] for line in (snapshot / "consent.jsonl").read_text().splitlines()}
    stories = [json.loads(line) for line in (snapshot / "stories.jsonl").read_text().splitlines()]
    expected = {s["story_id"] for s in stories if s["author"] in consented}
    round_ = where["coding"] / "1"
    reconciled = [json.loads(line) for line in (round_ / "reconciled.jsonl").read_text().splitlines()]
    assert {r["story_id"] for r in reconciled} == expected  # every consented story, and no other
    agreement = json.loads((round_ / "agreement.json").read_text())
    assert agreement["coders"] == ["demo-coder-a", "demo-coder-b"] and agreement["disputed"]
    alphas = [r["alpha"] for r in agreement["codes"] if r["alpha"] is not None]
    assert len(alphas) >= 5 and 0 < sorted(alphas)[len(alphas) // 2] < 1  # coders agree, but not perfectly
    how = json.loads((round_ / "reconciliation.json").read_text())["how"]
    assert how.get("adjudicator") == len(agreement["disputed"]) and "unresolved" not in how
    assert "disputed stories went to the adjudicator" in result.stdout
    page = where["positionality"].read_text(encoding="utf-8")
    for heading in ("Coding and agreement", "Codes by group", "Distinctive language by group", "References"):
        assert heading in page, heading
    k = load_demo(DEMO, load_study(STUDY)).min_group_size
    codes = pd.read_csv(where["positionality"].parent / "positionality_codes.csv")
    assert len(codes) and (codes["authors"] >= k).all() and codes["p"].notna().any()  # groups of k or more only
    terms = pd.read_csv(where["positionality"].parent / "positionality_language.csv")
    excerpts = pd.read_csv(where["positionality"].parent / "positionality_excerpts.csv")
    assert len(terms) and (terms["authors"] >= k).all() and len(excerpts)
    for term, quote in zip(excerpts["term"], excerpts["excerpt"], strict=True):  # the term, in context
        assert f" {term} " in f" {' '.join(tokens(quote))} ", (term, quote)
    assert not any(s["story_id"] in page or s["author"] in page for s in stories)  # no ids on the page
