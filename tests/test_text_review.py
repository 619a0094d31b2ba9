"""Peer review of contributed texts, through a real server of its own and the real CLI, as stories are reviewed:
`review open` puts the texts given through the form (never an imported file) in a round of their own; nobody is
given, or may review, their own text; the study home counts the round; the snapshot keeps the reviews; the corpus
release takes only texts the community's reviews let in; a reviewer who withdraws loses their reviews but not the
flags they raised, and their own text leaves the round."""

from __future__ import annotations

import json

import pytest
from conftest import REPO, add_participants, codigit, start_server
from test_contributions import essay

pytestmark = pytest.mark.slow  # a server of its own: about a minute

STUDY = REPO / "annotation" / "texts-study.yaml"
ROSTER = {"ada": "Ada Example", "bo": "Bo Example", "cy": "Cy Example", "di": "Di Example"}
CONSENT = {"training": "yes", "public": "yes", "attribution": "none"}
TITLES = {"ada": "Harbour at dusk", "bo": "Borrowed pages", "cy": "Cy's garden", "di": "Di's walk"}
# reviewer -> {author of the text: (decision, flags)}; cy leaves after reviewing, and only their flag stays
REVIEWS = {
    "ada": {"bo": ("include", []), "cy": ("include", []), "di": ("include", [])},
    "bo": {"ada": ("include", []), "di": ("exclude", [])},
    "cy": {"bo": ("include", ["not_theirs"]), "ada": ("include", [])},
    "di": {"ada": ("include", []), "bo": ("include", [])},
}


def release(tmp, version: str, *extra: str, **cli):
    return codigit("corpus", "release", version, "--snapshot", str(tmp / "snaps"), "--out", str(tmp / "corpus"),
                   "--min-words", "20", *extra, **cli)  # fmt: skip


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("text-review")
    server = start_server(tmp / "home")
    cli = {"home": server.home}
    try:
        assert codigit("init", "--study", str(STUDY), **cli).returncode == 0
        people = add_participants(server, ROSTER, tmp)
        for n, (who, title) in enumerate(TITLES.items(), start=1):
            people[who].answer("consent", CONSENT)
            values = {"title": title, "text": essay(n), "licence": "own_work", "keep": "yes"}
            people[who].answer("texts", values, external_id="text-1")
        (tmp / "imported.txt").write_text(essay(9), encoding="utf-8")
        imported = codigit("contributions", "import", str(tmp / "imported.txt"), "--contributor",
                           people["di"].username, "--licence", "own_work", "--keep", "yes", **cli)  # fmt: skip
        assert imported.returncode == 0, imported.stderr
        opened = codigit("review", "open", "1", **cli)
        assert opened.returncode == 0, opened.stderr
        queues = {who: p.queue(p.dataset_id("texts-review-1", "codigit")) for who, p in people.items()}
        home_before = {
            who: p.http.get("/codigit/home").raise_for_status().json()["rounds"] for who, p in people.items()
        }
        for reviewer, p in people.items():  # from the queues as each found them (a text leaves them at 2 reviews)
            by_title = {r["fields"]["title"]: r for r in queues[reviewer]}
            for author, (decision, flags) in REVIEWS[reviewer].items():
                values = {"decision": decision, **({"flags": flags} if flags else {})}
                p.submit(by_title[TITLES[author]]["id"], values).raise_for_status()
        assert codigit("collect", "--out", str(tmp / "snaps"), **cli).returncode == 0
        first = release(tmp, "0.1.0", **cli)
        unreviewed = release(tmp, "0.3.0", "--min-reviews", "0", **cli)
        withdrawn = codigit("participants", "withdraw", people["cy"].username, "--snapshots", str(tmp / "snaps"),
                            **cli)  # fmt: skip
        assert withdrawn.returncode == 0, withdrawn.stderr
        assert codigit("collect", "--out", str(tmp / "snaps"), **cli).returncode == 0
        yield {"server": server, "people": people, "tmp": tmp, "opened": opened, "home": home_before,
               "queues": {who: {r["fields"]["title"] for r in queue} for who, queue in queues.items()},
               "first": first, "unreviewed": unreviewed, "withdrawn": withdrawn,
               "second": release(tmp, "0.2.0", **cli)}  # fmt: skip
    finally:
        server.stop()


def snapshots(tmp) -> list[dict]:
    """Each snapshot's text reviews and contributions, oldest first."""
    out = []
    for snap in sorted(p for p in (tmp / "snaps").iterdir() if (p / "snapshot.json").exists()):
        parts = {n: [json.loads(line) for line in (snap / f"{n}.jsonl").read_text().splitlines()]
                 for n in ("text_reviews", "contributions")}  # fmt: skip
        out.append(parts)
    return out


def rows(tmp, version: str) -> dict[str, dict]:
    log = (tmp / "corpus" / version / "contribution_log.jsonl").read_text().splitlines()
    return {r["title"]: r for r in map(json.loads, log)}


def test_review_open_puts_the_form_texts_in_a_round_of_their_own_and_nobody_gets_their_own(scenario):
    opened, queues = scenario["opened"], scenario["queues"]
    assert "review round codigit/texts-review-1: 4 added" in opened.stdout, opened.stdout
    assert "review round codigit/review-1: 0 added" in opened.stdout  # the stories' round, empty here
    for who, titles in queues.items():
        assert titles == set(TITLES.values()) - {TITLES[who]}, who  # no imported text, never their own


def test_a_review_of_ones_own_text_is_refused_in_the_studys_words(scenario):
    import argilla as rg

    server, people = scenario["server"], scenario["people"]
    dataset = rg.Argilla(api_url=server.url, api_key=server.api_key).datasets("texts-review-1", workspace="codigit")
    own = next(r for r in dataset.records(with_responses=False) if r.fields["title"] == TITLES["di"])
    refused = people["di"].submit(str(own._server_id), {"decision": "include"})
    assert refused.status_code == 422 and refused.json()["detail"].startswith("This is your own text."), refused.text


def test_the_study_home_counts_the_texts_round(scenario):
    rounds = scenario["home"]["ada"]
    texts = next(r for r in rounds if r["texts"])
    assert texts["round"] == "1" and texts["done"] == 0 and texts["waiting"] == 3 and texts["closed_at"] is None
    assert [r["texts"] for r in rounds].count(False) == 1  # the stories' round is listed apart


def test_the_snapshot_keeps_each_review_and_no_self_review(scenario):
    people, first = scenario["people"], snapshots(scenario["tmp"])[0]
    names = {p.username: who for who, p in people.items()}
    titles = {c["contribution_id"]: c["title"] for c in first["contributions"]}
    got = {(names[r["reviewer"]], titles[r["contribution_id"]], r["decision"], tuple(r["flags"]))
           for r in first["text_reviews"]}  # fmt: skip
    want = {(who, TITLES[author], d, tuple(f)) for who, given in REVIEWS.items() for author, (d, f) in given.items()}
    assert got == want and not any(r["self_review"] for r in first["text_reviews"])


def test_the_corpus_takes_only_what_the_reviews_let_in(scenario):
    first, tmp = scenario["first"], scenario["tmp"]
    assert first.returncode == 0, first.stderr
    log = rows(tmp, "0.1.0")
    assert log[TITLES["ada"]]["included"] == "yes"  # three includes
    assert (log[TITLES["bo"]]["reason"], log[TITLES["bo"]]["detail"]) == (
        "rejected",
        "flagged not_theirs by a reviewer",
    )
    assert log[TITLES["cy"]]["reason"] == "not_reviewed" and log[TITLES["cy"]]["detail"] == "1 reviews, 2 needed"
    assert (log[TITLES["di"]]["reason"], log[TITLES["di"]]["detail"]) == ("rejected", "1 of 2 reviews say include")
    imported = [r for title, r in log.items() if title not in TITLES.values()]
    assert len(imported) == 1 and imported[0]["included"] == "yes"  # an imported file needs no review
    manifest = json.loads((tmp / "corpus" / "0.1.0" / "manifest.json").read_text())
    assert manifest["settings"]["min_reviews"] == 2  # the study's reviews_per_text, recorded
    assert manifest["excluded"]["rejected"] == 2 and manifest["excluded"]["not_reviewed"] == 1
    card = (tmp / "corpus" / "0.1.0" / "README.md").read_text()
    assert "| not reviewed | fewer than 2 reviews by other participants" in card
    assert scenario["unreviewed"].returncode == 0, scenario["unreviewed"].stderr
    without = rows(tmp, "0.3.0")  # --min-reviews 0: one review is enough, but the reviews there still count
    assert [without[t]["included"] for t in TITLES.values()] == ["yes", "no", "yes", "no"]


def test_a_withdrawn_reviewers_flag_still_stops_a_text_and_their_text_leaves_the_round(scenario):
    import argilla as rg

    server, people, tmp = scenario["server"], scenario["people"], scenario["tmp"]
    assert scenario["withdrawn"].returncode == 0
    later = snapshots(tmp)[-1]
    cy = people["cy"].username
    assert not any(r["reviewer"] == cy for r in later["text_reviews"])  # their reviews are gone
    bo_text = next(c for c in later["contributions"] if c["title"] == TITLES["bo"])
    assert bo_text["withdrawn_flags"] == {"not_theirs": 1}  # the flag stays, as an anonymous count
    assert scenario["second"].returncode == 0, scenario["second"].stderr
    log = rows(tmp, "0.2.0")
    assert log[TITLES["bo"]]["reason"] == "rejected" and TITLES["cy"] not in log
    assert log[TITLES["ada"]]["included"] == "yes"  # bo's and di's reviews still make two
    assert log[TITLES["bo"]]["detail"] == "flagged not_theirs by a reviewer"  # ada's and di's includes do not undo it
    dataset = rg.Argilla(api_url=server.url, api_key=server.api_key).datasets("texts-review-1", workspace="codigit")
    assert TITLES["cy"] not in {r.fields["title"] for r in dataset.records(with_responses=False)}
    responses = [u for r in dataset.records(with_responses=True) for u in r.responses["decision"]]
    assert str(next(u.id for u in rg.Argilla(api_url=server.url, api_key=server.api_key).users
                    if u.username == cy)) not in {str(r.user_id) for r in responses}  # fmt: skip
