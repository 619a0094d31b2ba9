"""Author groups with small ones pooled (no group or exported combination under k) and code frequencies by group."""

from __future__ import annotations

import math
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codigit.analysis.groups import FREQUENCY_COLUMNS, SUPPRESSED, author_groups, code_frequencies, export_groups

QUESTIONS = ["gender_identity", "pronouns", "age"]


def _members(groups: dict[str, dict[str, list[str]]]) -> Counter[tuple[str, str]]:
    return Counter((q, g) for q, people in groups.items() for values in people.values() for g in values)


def test_rare_answers_are_pooled_and_a_small_pool_is_dropped() -> None:
    answers = {f"w{i}": {"gender_identity": "woman"} for i in range(5)}
    answers |= {"a1": {"gender_identity": "agender"}, "a2": {"gender_identity": "agender"}}
    answers |= {"n1": {"gender_identity": ["non-binary", "woman"]}, "x": {"gender_identity": "man"}}
    answers |= {"outsider": {"gender_identity": "agender"}}  # not among the people analysed: counts for nothing
    people = [p for p in answers if p != "outsider"] + ["silent"]  # silent answered nothing

    groups = author_groups(answers, ["gender_identity", "pronouns"], people, k=3)
    assert groups["pronouns"] == {}
    # agender (2), non-binary (1), man (1) pool into 4 people; n1 is also a woman (6 women)
    assert groups["gender_identity"]["n1"] == [SUPPRESSED, "woman"]
    assert groups["gender_identity"]["a1"] == [SUPPRESSED]
    assert "silent" not in groups["gender_identity"] and "outsider" not in groups["gender_identity"]
    assert _members(groups) == {("gender_identity", "woman"): 6, ("gender_identity", SUPPRESSED): 4}

    # with k = 5 the pool (4 people) is itself too small: dropped, and a1, a2, x have no group left
    groups = author_groups(answers, ["gender_identity"], people, k=5)
    assert groups["gender_identity"] == {p: ["woman"] for p in [f"w{i}" for i in range(5)] + ["n1"]}


def test_export_pools_rare_combinations_and_says_why() -> None:
    answers = {f"p{i}": {"gender_identity": "woman", "pronouns": "she"} for i in range(5)}
    answers |= {f"q{i}": {"gender_identity": "man", "pronouns": "he"} for i in range(5)}
    answers |= {"r1": {"gender_identity": "woman", "pronouns": "they"}, "r2": {"gender_identity": "woman"}}
    answers |= {f"m{i}": {"gender_identity": "man", "pronouns": ["he", "they"]} for i in range(2)}
    answers |= {f"z{i}": {"gender_identity": g, "pronouns": "she"} for i, g in enumerate(["agender", "genderfluid"])}
    rows, log = export_groups(answers, ["gender_identity", "pronouns"], answers, k=2)
    assert rows["p0"] == {"gender_identity": "woman", "pronouns": "she"}
    assert rows["m0"]["pronouns"] == "he; they"  # multi-label joined, sorted
    # r1 (they, alone) and r2 (no answer) would each be the only one of their combination
    assert rows["r1"] == rows["r2"] == {"gender_identity": "woman", "pronouns": SUPPRESSED}
    assert rows["z0"] == rows["z1"] == {"gender_identity": SUPPRESSED, "pronouns": "she"}
    assert log == [
        "gender_identity: agender, genderfluid pooled into other/suppressed: fewer than 2 gave each",
        "pronouns: (no answer) pooled into other/suppressed for some people: their combination of answers is shared by "
        "fewer than 2",
        "pronouns: they pooled into other/suppressed for some people: their combination of answers is shared by fewer "
        "than 2",
    ]

    rows, log = export_groups(answers, ["gender_identity"], ["p0", "q0"], k=5)
    assert rows == {"p0": {"gender_identity": SUPPRESSED}, "q0": {"gender_identity": SUPPRESSED}}
    assert log[-1] == "all 2 people pooled into other/suppressed: fewer than 5 in all"


ANSWER = st.one_of(
    st.none(),
    st.sampled_from(["a", "b", "c", "d", "prefer_not_to_say"]),
    st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), max_size=3),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_group_or_combination_under_k(data: st.DataObject) -> None:
    roster = [f"p{i}" for i in range(data.draw(st.integers(0, 30), label="roster"))]
    answers = {}
    for person in roster:
        given_answers = {q: data.draw(ANSWER) for q in QUESTIONS}
        answers[person] = {q: v for q, v in given_answers.items() if v is not None}
    people = data.draw(st.sets(st.sampled_from(roster)) if roster else st.just(set()), label="people")
    k = data.draw(st.integers(2, 6), label="k")

    groups = author_groups(answers, QUESTIONS, people, k)
    assert set(groups) == set(QUESTIONS)
    assert all(set(members) <= people for members in groups.values())
    assert all(n >= k for n in _members(groups).values())  # SUPPRESSED included

    rows, log = export_groups(answers, QUESTIONS, people, k)
    assert set(rows) == people
    combinations = Counter(tuple(row[q] for q in QUESTIONS) for row in rows.values())
    if len(people) >= k:
        assert all(n >= k for n in combinations.values())
    else:  # nothing can be shown: everyone pooled, and the log says so
        assert set(combinations) <= {(SUPPRESSED,) * len(QUESTIONS)}
        assert not people or log[-1].endswith(f"fewer than {k} in all")
    for q in QUESTIONS:
        column = Counter(row[q] for row in rows.values())
        assert len(people) < k or all(n >= k for n in column.values())

    per_author = {p: data.draw(st.integers(1, 3)) for p in sorted(people)}
    stories = [(f"{p}-{i}", p, frozenset(data.draw(st.sets(st.sampled_from(["x", "y"])))))
               for p, n in per_author.items() for i in range(n)]  # fmt: skip
    frame = code_frequencies(stories, groups, ["x", "y"], n_boot=20, n_perm=20)
    assert list(frame.columns) == FREQUENCY_COLUMNS
    assert (frame["authors"] >= k).all()


def _planted(associated: bool) -> list[tuple[str, str, frozenset[str]]]:
    # eight authors per group, two or three stories each
    stories = []
    for i in range(16):
        author = f"{'A' if i < 8 else 'B'}{i}"
        for j in range(2 + i % 2):
            coded = (i < 8) if associated else (j == 0)
            stories.append((f"s{i}-{j}", author, frozenset({"x"} if coded else ())))
    return stories


def _ab_groups() -> dict[str, dict[str, list[str]]]:
    return {"gender_identity": {f"{'A' if i < 8 else 'B'}{i}": ["A" if i < 8 else "B"] for i in range(16)}}


def test_a_planted_association_is_found() -> None:
    frame = code_frequencies(_planted(associated=True), _ab_groups(), ["x"], n_perm=2000)
    a = frame[frame["group"] == "A"].iloc[0]
    assert (a["authors"], a["stories"], a["count"]) == (8, 20, 20)
    assert a["share"] == 1 and a["rest_share"] == 0 and a["diff"] == 1
    assert a["ci_low"] <= a["share"] <= a["ci_high"]
    # exact p is 2 / C(16, 8); the Monte Carlo one counts the observed split once
    assert a["p"] < 0.01 and a["p_adjusted"] < 0.01
    b = frame[frame["group"] == "B"].iloc[0]
    assert b["diff"] == -1 and b["ci_low"] <= b["share"] <= b["ci_high"]


def test_no_association_gives_a_large_p() -> None:
    frame = code_frequencies(_planted(associated=False), _ab_groups(), ["x"])
    for row in frame.itertuples():
        assert row.ci_low <= row.share <= row.ci_high
        assert abs(row.diff) < 0.1 and row.p > 0.5


def test_frequencies_edge_cases() -> None:
    assert list(code_frequencies([], {}, ["x"]).columns) == FREQUENCY_COLUMNS
    assert code_frequencies([], {}, ["x"]).empty
    stories = [(f"s{i}", f"p{i}", frozenset({"x"})) for i in range(3)]
    everyone = {"q": {f"p{i}": ["g"] for i in range(4)}}  # p3 wrote nothing analysed here
    frame = code_frequencies(stories, everyone, ["x"], n_perm=10)
    assert len(frame) == 1 and math.isnan(frame["p"][0]) and math.isnan(frame["rest_share"][0])
    assert frame["authors"][0] == 3
    # k counts authors with stories: the group's fourth member wrote none, so with k = 4 nothing is shown
    assert code_frequencies(stories, everyone, ["x"], k=4).empty


def test_frequencies_are_reproducible() -> None:
    first = code_frequencies(_planted(associated=False), _ab_groups(), ["x"], n_boot=200, n_perm=200, seed=3)
    again = code_frequencies(_planted(associated=False), _ab_groups(), ["x"], n_boot=200, n_perm=200, seed=3)
    assert first.equals(again)
    assert first["p"].notna().all() and (first["p_adjusted"] >= first["p"]).all()
    other = code_frequencies(_planted(associated=False), _ab_groups(), ["x"], n_boot=200, n_perm=200, seed=4)
    assert not first[["ci_low", "ci_high"]].equals(other[["ci_low", "ci_high"]])  # the seed is used


def test_the_rest_is_a_group_too_and_is_not_compared_under_k():
    from codigit.analysis.groups import code_frequencies
    from codigit.analysis.language import distinctive

    authors = [f"a{i}" for i in range(6)]
    groups = {"q": {a: (["x"] if a != "a5" else []) for a in authors}}  # a5 has no group: the rest, alone
    stories = [(f"s{i}", a, frozenset({"care"} if i % 2 else set())) for i, a in enumerate(authors)]
    frame = code_frequencies(stories, groups, ["care"], n_boot=50, n_perm=50, k=5)
    assert frame["authors"].tolist() == [5] and frame[["rest_share", "diff", "p"]].isna().all(axis=None)
    assert not frame.empty and code_frequencies(stories, groups, ["care"], n_boot=50, n_perm=50, k=1)["p"].notna().all()
    texts = [(f"s{i}", a, "the lighthouse keeper sang. the lighthouse stood.") for i, a in enumerate(authors)]
    terms, excerpts = distinctive(texts, groups, k=5)
    assert terms.empty and excerpts.empty  # one other author would be a group of one
