"""Whole texts for continued pretraining, through a real server of its own and the real CLI: given through the
participant's own form (the server refuses what the rules do not allow, in the study's words), imported from
files by an organiser (large ones in parts; bad files one line each), collected into the snapshot, and released
as a corpus with its contribution log."""

from __future__ import annotations

import csv
import json
import stat

import pytest
from conftest import REPO, add_participants, codigit, start_server

pytestmark = pytest.mark.slow  # a server of its own: about a minute

STUDY = REPO / "annotation" / "texts-study.yaml"
ROSTER = {"ada": "Ada Example", "bo": "Bo Example", "cy": "Cy Example"}
CONSENT = {"training": "yes", "public": "yes", "attribution": "none"}
WORDS = ("the lighthouse keeper walked along the harbour wall at dusk and counted the boats coming home while the "
         "gulls argued over the nets and the bakery on the corner sold the last of its bread").split()  # fmt: skip


def essay(seed: int, words: int = 120) -> str:
    """A readable English text of `words` words, different for every seed."""
    out = [WORDS[(seed * 7 + i * (seed % 5 + 1)) % len(WORDS)] for i in range(words)]
    return " ".join(out).capitalize() + f". Written on day {seed}."


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("contributions")
    server = start_server(tmp / "home")
    try:
        init = codigit("init", "--study", str(STUDY), home=server.home)
        assert init.returncode == 0, init.stderr
        people = add_participants(server, ROSTER, tmp)
        for who in ("ada", "bo", "cy"):
            people[who].answer("consent", CONSENT)
        given = {"title": "Harbour at dusk", "text": essay(1), "licence": "own_work", "attribution_name": "Ada L.",
                 "keep": "yes"}  # fmt: skip
        people["ada"].answer("texts", given, external_id="text-1")
        refusals = {}
        for slot, values in (("text-2", {**given, "title": "  "}), ("text-3", {**given, "licence": "other_open"})):
            record = next(r for r in people["bo"].queue(people["bo"].dataset_id("texts")) if r["external_id"] == slot)
            refusals[slot] = people["bo"].submit(record["id"], values)
        big = tmp / "novel.md"
        big.write_text("\n\n".join(essay(n, 200) for n in range(1000)), encoding="utf-8")  # ~1.3 MB: three parts
        binary = tmp / "photo.txt"
        binary.write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0")
        latin = tmp / "latin1.txt"
        latin.write_bytes("café au lait".encode("latin-1"))
        cli = {"home": server.home}
        long_one = ("--licence", "own_work", "--keep", "no", "--title", "A long one")
        imports = {
            "big": codigit("contributions", "import", str(big), "--study", str(STUDY), "--contributor",
                           people["bo"].username, *long_one, **cli),
            "again": codigit("contributions", "import", str(big), "--study", str(STUDY), "--contributor",
                             people["bo"].username, *long_one, **cli),
            "binary": codigit("contributions", "import", str(binary), "--study", str(STUDY), "--contributor",
                              people["bo"].username, "--licence", "own_work", "--keep", "no", **cli),
            "latin": codigit("contributions", "import", str(latin), "--study", str(STUDY), "--contributor",
                             people["bo"].username, "--licence", "own_work", "--keep", "no", **cli),
            "unnamed": codigit("contributions", "import", str(big), "--study", str(STUDY), "--contributor",
                               people["bo"].username, "--licence", "other_open", "--keep", "no", **cli),
            "nobody": codigit("contributions", "import", str(big), "--study", str(STUDY), "--contributor",
                              "p-nobody", "--licence", "own_work", "--keep", "no", **cli),
            "no_licence": codigit("contributions", "import", str(big), "--study", str(STUDY), "--contributor",
                                  people["bo"].username, "--keep", "no", **cli),
        }  # fmt: skip
        (tmp / "cy.txt").write_text(essay(3), encoding="utf-8")
        imports["cy"] = codigit("contributions", "import", str(tmp / "cy.txt"), "--study", str(STUDY),
                                "--contributor", people["cy"].username, "--licence", "cc_by_4_0", "--keep", "yes",
                                "--attribution", "Cy", **cli)  # fmt: skip
        withdrawn = codigit("participants", "withdraw", people["cy"].username, "--study", str(STUDY), "--snapshots",
                            str(tmp / "snaps"), "--coding", str(tmp / "coding"), **cli)  # fmt: skip
        assert withdrawn.returncode == 0, withdrawn.stderr
        collected = codigit("collect", "--study", str(STUDY), "--out", str(tmp / "snaps"), **cli)
        assert collected.returncode == 0, collected.stderr
        released = codigit("corpus", "release", "0.1.0", "--snapshot", str(tmp / "snaps"), "--out",
                           str(tmp / "corpus"), "--min-words", "20", "--min-reviews", "0")  # fmt: skip
        # (no review round here: test_text_review reviews texts)
        yield {"server": server, "people": people, "tmp": tmp, "given": given, "refusals": refusals, "big": big,
               "imports": imports, "collected": collected, "released": released}  # fmt: skip
    finally:
        server.stop()


def snapshot_of(tmp):
    snaps = tmp / "snaps"
    return snaps / (snaps / "LATEST").read_text().strip()


def test_the_form_refuses_what_the_rules_do_not_allow_in_the_studys_words(scenario):
    refusals = scenario["refusals"]
    assert refusals["text-2"].status_code == 422 and "needs a title" in refusals["text-2"].json()["detail"]
    assert refusals["text-3"].status_code == 422 and "name the licence" in refusals["text-3"].json()["detail"]


def test_bad_imports_are_one_line_each_and_a_large_file_goes_in_parts(scenario):
    imports = scenario["imports"]
    assert imports["big"].returncode == 0 and "3 parts" in imports["big"].stdout, imports["big"].stderr
    assert imports["again"].returncode == 0 and "already imported" in imports["again"].stdout
    for name, message in (("binary", "a binary file, not text"), ("latin", "not UTF-8 text"),
                          ("unnamed", "needs --licence-name"), ("nobody", "is no participant's pseudonym"),
                          ("no_licence", "--licence")):  # fmt: skip
        result = imports[name]
        assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_the_snapshot_holds_form_and_imported_texts_and_nothing_of_who_withdrew(scenario):
    people, snap = scenario["people"], snapshot_of(scenario["tmp"])
    rows = [json.loads(line) for line in (snap / "contributions.jsonl").read_text().splitlines()]
    by_source = {r["source"]: r for r in rows}
    assert len(rows) == 2 and set(by_source) == {"form", "import"}  # cy withdrew: their import is gone
    form, imported = by_source["form"], by_source["import"]
    assert form["author"] == people["ada"].username and form["text"] == scenario["given"]["text"]
    assert form["attribution_name"] == "Ada L." and form["keep"] is True
    assert imported["text"] == scenario["big"].read_text(encoding="utf-8").strip() and imported["keep"] is False
    meta = json.loads((snap / "snapshot.json").read_text())
    assert meta["counts"]["contributions"] == 2 and meta["excluded"]["contributions_withdrawn"] == 1
    assert stat.S_IMODE((snap / "contributions.jsonl").stat().st_mode) == 0o600


def test_participants_cannot_reach_the_imported_texts(scenario):
    bo = scenario["people"]["bo"]
    spaces = [w["name"] for w in bo.http.get("/me/workspaces").json()["items"]]
    assert "codigit-organisers" not in spaces
    raw = json.dumps(bo.http.get("/me/datasets").json())
    assert "imported-texts" not in raw


def test_the_corpus_release_and_its_log_match_and_name_nobody_by_pseudonym(scenario):
    released, tmp, people = scenario["released"], scenario["tmp"], scenario["people"]
    assert released.returncode == 0, released.stderr
    release = tmp / "corpus" / "0.1.0"
    with (release / "contribution_log.csv").open(newline="") as f:
        log = list(csv.DictReader(f))
    assert sorted((r["title"], r["contributor"], r["included"]) for r in log) == [
        ("A long one", "anonymous", "yes"), ("Harbour at dusk", "Ada L.", "yes")]  # fmt: skip
    verified = codigit("corpus", "verify", str(release))
    assert verified.returncode == 0 and "verified" in verified.stdout, verified.stderr
    everything = b"".join(p.read_bytes() for p in release.rglob("*") if p.is_file())
    for person in people.values():
        assert person.username.encode() not in everything
    record = tmp / "corpus" / "contributors" / "0.1.0.json"  # who is in it: beside the release, organisers only
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    found = codigit("release", "affected", people["bo"].username, "--out", str(tmp / "releases"), "--runs",
                    str(tmp / "runs"), "--corpus", str(tmp / "corpus"))  # fmt: skip
    assert found.returncode == 0 and "release corpus 0.1.0" in found.stdout, found.stdout + found.stderr
    nobody = codigit("release", "affected", people["cy"].username, "--out", str(tmp / "releases"), "--runs",
                     str(tmp / "runs"), "--corpus", str(tmp / "corpus"))  # fmt: skip
    assert "corpus" not in nobody.stdout  # cy withdrew before the release
