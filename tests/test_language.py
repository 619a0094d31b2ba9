"""Distinctive words by author group: tokens, the Fightin' Words log-odds against hand-computed numbers, the
min-authors rule, and excerpts that carry the term and no ids."""

from __future__ import annotations

import math
import random

import pytest

from codigit.analysis.language import (
    DISTINCTIVE_COLUMNS,
    EXCERPT_CHARS,
    EXCERPT_COLUMNS,
    distinctive,
    excerpt,
    log_odds,
    terms,
    tokens,
)


def test_tokens_keep_inner_apostrophes_and_hyphens() -> None:
    assert tokens("I DON'T know—she’s non-binary, ok?! 'Quoted' 3.5") == [
        "i", "don't", "know", "she's", "non-binary", "ok", "quoted", "3", "5"
    ]  # fmt: skip


def test_bigrams_stop_at_sentence_ends() -> None:
    assert terms("Red sky. Blue sea; green\nland!") == [
        "red", "sky", "red sky", "blue", "sea", "blue sea", "green", "land"
    ]  # fmt: skip
    assert terms("one two three", max_n=1) == ["one", "two", "three"]


def test_log_odds_against_the_formula() -> None:
    group = {"cat": 3, "dog": 1, "unseen": 5}  # "unseen" has no prior count: left out
    rest = {"cat": 1, "dog": 4, "fish": 2}
    prior = {"cat": 4, "dog": 5, "fish": 2, "bird": 9}  # a_0 = 20; n_i = 9, n_j = 7
    scores = log_odds(group, rest, prior)
    assert set(scores) == {"cat", "dog", "fish"}
    cat = math.log((3 + 4) / (9 + 20 - 3 - 4)) - math.log((1 + 4) / (7 + 20 - 1 - 4))
    assert scores["cat"] == pytest.approx((cat, cat / math.sqrt(1 / (3 + 4) + 1 / (1 + 4))))
    fish = math.log((0 + 2) / (9 + 20 - 0 - 2)) - math.log((2 + 2) / (7 + 20 - 2 - 2))
    assert scores["fish"] == pytest.approx((fish, fish / math.sqrt(1 / 2 + 1 / 4)))
    assert scores["fish"][1] < 0 < scores["cat"][1]

    # prior_scale rescales the prior to a_0 = 10: cat's alpha is 4 * 10 / 20 = 2
    scaled = log_odds(group, rest, prior, prior_scale=10)
    cat = math.log((3 + 2) / (9 + 10 - 3 - 2)) - math.log((1 + 2) / (7 + 10 - 1 - 2))
    assert scaled["cat"] == pytest.approx((cat, cat / math.sqrt(1 / 5 + 1 / 3)))


def test_distinctive_on_a_hand_counted_corpus() -> None:
    stories = [("s1", "a1", "Cats purr."), ("s2", "a2", "Cats sleep."), ("s3", "b1", "Dogs bark."),
               ("s4", "b2", "Dogs sleep.")]  # fmt: skip
    groups = {"pets": {"a1": ["cat people"], "a2": ["cat people"], "b1": ["dog people"], "b2": ["dog people"]}}
    # each story has 3 terms (two words, one bigram): n_i = n_j = 6; the prior holds all 12, so a_0 = 12
    frame, quotes = distinctive(stories, groups)
    assert list(frame.columns) == DISTINCTIVE_COLUMNS and list(quotes.columns) == EXCERPT_COLUMNS
    # "purr" and "cats purr" are one author's: left out; "sleep" is even (z = 0): not distinctive
    assert frame[["group", "term"]].values.tolist() == [["cat people", "cats"], ["dog people", "dogs"]]
    cats = frame.iloc[0]
    delta = math.log((2 + 2) / (6 + 12 - 2 - 2)) - math.log((0 + 2) / (6 + 12 - 0 - 2))
    assert (cats["authors"], cats["n"], cats["count_group"], cats["count_rest"]) == (2, 1, 2, 0)
    assert cats["log_odds"] == pytest.approx(delta)
    assert cats["z"] == pytest.approx(delta / math.sqrt(1 / (2 + 2) + 1 / (0 + 2)))

    frame, _ = distinctive(stories, groups, min_authors=1)
    purr = frame[frame["term"] == "purr"].iloc[0]
    delta = math.log((1 + 1) / (6 + 12 - 1 - 1)) - math.log((0 + 1) / (6 + 12 - 0 - 1))
    assert purr["z"] == pytest.approx(delta / math.sqrt(1 / (1 + 1) + 1 / (0 + 1)))
    assert "cats purr" in set(frame["term"]) and "sleep" not in set(frame["term"])


FILLER = "the river morning window bread garden letter quiet road station evening of and with in".split()


def _corpus() -> tuple[list[tuple[str, str, str]], dict[str, dict[str, list[str]]]]:
    rng = random.Random(7)
    stories, groups = [], {"pronouns": {}}
    for i in range(12):
        author = f"author-{i:03d}"
        groups["pronouns"][author] = ["they"] if i < 6 else ["she"]
        for j in range(3):
            words = [rng.choice(FILLER) for _ in range(40)]
            if i < 6:
                words.insert(rng.randrange(40), "lighthouse")  # planted in every "they" story
            if i == 0:
                words[5:5] = ["zeppelin"] * 8  # one author's habit, however frequent
            stories.append((f"story-{i:03d}-{j}", author, " ".join(words[:20]) + ". " + " ".join(words[20:]) + "."))
    return stories, groups


def test_a_planted_word_tops_its_group_and_a_single_authors_word_never_shows() -> None:
    stories, groups = _corpus()
    frame, quotes = distinctive(stories, groups, top=5)
    they = frame[frame["group"] == "they"]
    assert they.iloc[0]["term"] == "lighthouse" and they.iloc[0]["z"] > 0 and they.iloc[0]["authors"] == 6
    assert (frame["z"] > 0).all() and (frame.groupby("group").size() <= 5).all()
    assert not frame["term"].str.contains("zeppelin").any()
    # stopwords alone are never listed, as a word or a pair of them
    assert not frame["term"].isin(["the", "of", "and", "with", "in", "of the", "in the"]).any()

    assert set(quotes["term"]) == set(frame["term"])
    assert (quotes.groupby(["group", "term"]).size() <= 2).all()
    ids = {s for s, _, _ in stories} | set(groups["pronouns"])
    for row in quotes.itertuples():
        assert row.term in " ".join(tokens(row.excerpt))
        assert not any(i in row.excerpt for i in ids) and "story-" not in row.excerpt
    lighthouse = quotes[(quotes["group"] == "they") & (quotes["term"] == "lighthouse")]["excerpt"].tolist()
    assert len(lighthouse) == len(set(lighthouse)) == 2  # from two authors' stories


def test_excerpt_is_the_sentence_cut_around_the_term() -> None:
    long = "Before. " + " ".join(["word"] * 80) + " Non-Binary   folks here " + " ".join(["more"] * 80) + ". After."
    quote = excerpt(long, "non-binary folks")
    assert quote is not None and "Non-Binary folks here" in quote
    assert quote.startswith("…word") and quote.endswith("more…") and len(quote) <= EXCERPT_CHARS + 2
    assert excerpt("Short one. My wife said hi!", "my wife") == "My wife said hi"
    assert excerpt("Ends here. Wife said", "here wife") is None  # a bigram never spans sentences


def test_an_excerpt_does_not_open_with_the_quote_that_closed_the_previous_sentence() -> None:
    from codigit.analysis.language import excerpt

    assert excerpt('She asked "why?" and Yusra laughed, which was not planned.', "laughed") == (
        "and Yusra laughed, which was not planned"
    )
    assert excerpt('"Why?" she asked. "Because," Yusra laughed.', "laughed") == '"Because," Yusra laughed'
