"""The positionality page over a coding round: no figure describes a group under k, not even by subtracting
the groups shown from "the rest"; a withdrawal noted after the snapshot leaves every figure; a code no coder
used (alpha undefined) is shown as n/a, not a crash."""

from __future__ import annotations

import pandas as pd
from conftest import REPO, codigit
from release_data import AT, consent, reviews, snapshot, story

from codigit.coding.codebook import keep, load_codebook
from codigit.coding.rounds import CodebookUsed, Coding, Reconciled, RoundInfo
from codigit.home import atomic_write
from codigit.records import Positionality, mirror_withdrawal, write_snapshot

K = 3


def world(tmp, gender: dict[str, str], coded: dict[str, list[str]]):
    """One story per author, their gender answer, and a reconciled coding round with these codes per author."""
    authors = sorted(gender)
    stories = [story(i, a, f"Story {i} by someone, about the lighthouse keeper and her brother.") for i, a in
               enumerate(authors)]  # fmt: skip
    answers = [Positionality(participant=a, answers={"gender_identity": g}, given_at=AT) for a, g in gender.items()]
    snap = write_snapshot(snapshot(stories, [r for s in stories for r in reviews(s)], [consent(a) for a in authors],
                                   positionality=answers), tmp / "snaps")  # fmt: skip
    codebook = load_codebook(REPO / "annotation" / "codebook.yaml")
    folder = tmp / "coding"
    keep(codebook, folder / "codebooks")
    used = CodebookUsed(name=codebook.name, version=codebook.version, sha256=codebook.sha256())
    atomic_write(folder / "1" / "round.json", RoundInfo(round="1", dataset="codigit-researchers/coding-1",
                 codebook=used, coders=["ana", "ben"], opened_at=AT).model_dump_json())  # fmt: skip
    by_author = {s.author: s.story_id for s in stories}
    atomic_write(folder / "1" / "reconciled.jsonl", "".join(
        Reconciled(story_id=by_author[a], codes=codes, how="unanimous", coders=2).model_dump_json() + "\n"
        for a, codes in coded.items()))  # fmt: skip
    atomic_write(folder / "1" / "codings.jsonl", "".join(
        Coding(story_id=by_author[a], coder=c, codes=codes, submitted_at=AT).model_dump_json() + "\n"
        for a, codes in coded.items() for c in ("ana", "ben")))  # fmt: skip
    policy = tmp / "policy.yaml"
    policy.write_text(
        (REPO / "annotation/policy.yaml").read_text().replace("min_group_size: 5", f"min_group_size: {K}")
    )
    return snap, folder, policy, by_author


def run(tmp, snap, folder, policy):
    result = codigit("positionality", "--snapshot", str(snap), "--coding", str(folder), "--policy", str(policy),
                     "--out", str(tmp / "out"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    return pd.read_csv(tmp / "out" / "positionality_codes.csv"), (tmp / "out" / "positionality.html").read_text()


def test_a_dropped_answer_cannot_be_recovered_from_the_rest(tmp_path):
    # three women, three men, one agender person (under k: pooled, and the pool of one is left out); only the
    # agender person's story has the code. With them in "the rest", rest_share minus the groups would expose it.
    gender = {f"w{i}": "woman" for i in range(3)} | {f"m{i}": "man" for i in range(3)} | {"x0": "agender"}
    coded = {a: (["care_work"] if a == "x0" else ["work_and_careers"]) for a in gender}
    snap, folder, policy, _ = world(tmp_path, gender, coded)
    codes, page = run(tmp_path, snap, folder, policy)
    care = codes[codes["code"] == "care_work"].set_index("group")
    assert sorted(care.index) == ["man", "woman"] and (care["authors"] == 3).all()
    assert (care["count"] == 0).all() and (care["rest_share"] == 0).all()  # x0's story is in no figure
    assert "agender" in page and "care_work" in page  # named as pooled out; the code is in the tables, at 0


def test_the_rest_includes_authors_without_an_answer_when_they_are_k_or_more(tmp_path):
    gender = {f"w{i}": "woman" for i in range(3)} | {f"m{i}": "man" for i in range(3)} | {
        f"n{i}": "prefer_not_to_say" for i in range(1)} | {f"q{i}": "agender" for i in range(2)}  # fmt: skip
    coded = {a: (["care_work"] if a[0] in "nq" else []) or ["none"] for a in gender}
    snap, folder, policy, _ = world(tmp_path, gender, coded)
    codes, _ = run(tmp_path, snap, folder, policy)
    care = codes[codes["code"] == "care_work"].set_index("group")
    # n0 (prefer not to say) and q0, q1 (agender) pooled: other/suppressed has 3, so it is shown, and the rest of
    # each group is the two other groups
    assert sorted(care.index) == ["man", "other/suppressed", "woman"]
    assert care.loc["woman", "rest_share"] == 0.5 and care.loc["other/suppressed", "share"] == 1


def test_a_withdrawal_noted_after_the_snapshot_leaves_every_figure_and_alpha_na_is_shown(tmp_path):
    gender = {f"w{i}": "woman" for i in range(4)} | {f"m{i}": "man" for i in range(3)}
    coded = {a: ["work_and_careers"] for a in gender}
    snap, folder, policy, by_author = world(tmp_path, gender, coded)
    mirror_withdrawal(snap.parent, "w3", AT)  # after the snapshot, as `participants withdraw` notes it
    codes, page = run(tmp_path, snap, folder, policy)
    assert codes.set_index("group").loc["woman", "authors"].tolist()[0] == 3
    assert by_author["w3"] not in page and "Story 6 by" not in page
    # both coders chose the same one code everywhere: no variation, so every alpha is undefined, shown as n/a
    alpha_table = page.split("<th>n_items</th>")[1].split("</table>")[0]
    assert alpha_table.count("<td>n/a</td>") == 3 * len(load_codebook(REPO / "annotation/codebook.yaml").codes)
    assert "Krippendorff's alpha per code with 95% confidence intervals" not in page  # no plot of nothing
    assert "6 stories by 6 authors" in page.replace("\n", " ")
