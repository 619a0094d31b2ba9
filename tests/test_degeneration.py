"""Repetition within answers: the measures on hand-counted texts, and the report's warning on a planted loop."""

from __future__ import annotations

import json
import math
import random

import pandas as pd
import pytest
from conftest import REPO, codigit

from codigit.analysis.degeneration import (
    REP,
    distinct,
    load_rules,
    longest_repeat,
    marked,
    measures,
    most_repeats,
    rep_rate,
    tokens,
)

ANGELS = "They were a family of angels, who lived on a mountain in the year 1925."  # the demo's loop


def test_the_demo_loop_measured_exactly():
    words = tokens(" ".join([ANGELS] * 5))
    assert len(words) == 70  # 14 word tokens a sentence: "1925" is no word
    # 67 4-grams; the sentence has 14 distinct ones (its 14 starting points around the loop); the other 53 repeat
    assert rep_rate(words) == pytest.approx(53 / 67)
    # two sentences (28 words) recur once without overlap; three would need 84 words
    assert longest_repeat(words) == (28, 0, 28)
    assert most_repeats(words, 12) == 5 and most_repeats(words, 14) == 5 and most_repeats(words, 15) == 2
    assert distinct(words, 1) == pytest.approx(13 / 70)  # "a" twice in the sentence: 13 distinct words
    assert distinct(words, 2) == pytest.approx(14 / 69)


@pytest.mark.parametrize(
    ("text", "rep", "longest", "d1", "d2"),
    [("", math.nan, 0, math.nan, math.nan),  # empty: no n-grams, nothing repeated
     ("Yes.", math.nan, 0, 1.0, math.nan),
     ("no no no", math.nan, 1, 1 / 3, 1 / 2),  # shorter than 4: no 4-gram; "no no" twice would overlap
     ("The cat sat. The cat sat. The cat", 2 / 5, 3, 3 / 8, 3 / 7),  # 5 4-grams, the first two said again
     ("One two three four five six", 0.0, 0, 1.0, 1.0),
     ("A b A b a B a b", 3 / 5, 4, 2 / 8, 2 / 7)],  # case is ignored: "a b a b" twice, back to back
)  # fmt: skip
def test_measures_on_small_answers(text, rep, longest, d1, d2):
    m = measures(text, span_words=2)
    for name, want in ((REP, rep), ("longest_repeat", longest), ("answer_distinct_1", d1), ("answer_distinct_2", d2)):
        assert m[name] == pytest.approx(want, nan_ok=True), name


def test_longest_repeat_matches_a_brute_force_search():
    def brute(words):
        n = len(words)
        return max([L for L in range(1, n // 2 + 1) for i in range(n - L) for j in range(i + L, n - L + 1)
                    if words[i : i + L] == words[j : j + L]] or [0])  # fmt: skip

    rng = random.Random(7)
    for _ in range(60):
        words = [rng.choice("abc") for _ in range(rng.randint(0, 30))]
        length, first, second = longest_repeat(words)
        assert length == brute(words)
        assert second >= first + length and words[first : first + length] == words[second : second + length]


def test_the_repeated_span_is_marked_and_the_rest_escaped():
    text = "<i>Hi there</i>, hi THERE & hi there."
    assert marked(text, 2, 1) == (
        "&lt;i&gt;<mark>Hi there</mark>&lt;/i&gt;, <mark>hi THERE</mark> &amp; <mark>hi there</mark>."
    )
    assert marked("<b>", 0, 0) == "&lt;b&gt;"


def test_the_shipped_rules_load_and_a_bad_one_is_one_line(tmp_path):
    rules = load_rules(REPO / "analysis/degeneration.yaml")
    assert rules.loops.times >= 2 and 0 < rules.loops.min_share <= 1 and 0 < rules.repetition.alpha <= 1
    bad = tmp_path / "rules.yaml"
    bad.write_text("loops: {span_words: 12, times: 3, min_share: 0.05}\nrepetition: {margin: 0.05, alpah: 0.05}\n")
    from codigit.errors import CodigitError

    with pytest.raises(CodigitError, match=r"rules.yaml: repetition.alpah: unknown key"):
        load_rules(bad)


HEALTHY = ("{name} walked to the river at dawn. The water was cold and bright, and a heron stood in the reeds. "
           "{name} counted the stones on the bank, then went home to write about prompt {i}.")  # fmt: skip


def run_with(tmp_path, tuned_text) -> object:
    """20 prompts, 2 samples each: the base model always healthy, the tuned one as `tuned_text(i, sample)`."""
    rows = []
    for i in range(20):
        for sample in range(2):
            name = ("Ana", "Bo", "Cy", "Di")[(i + sample) % 4]
            for model, text in (("base", HEALTHY.format(name=name, i=i)), ("tuned", tuned_text(i, sample))):
                rows.append({"model": model, "suite": "open", "prompt_id": f"p{i:02d}", "sample": sample,
                             "prompt": f"Write about prompt {i}.", "text": text, "meta": json.dumps({})})  # fmt: skip
    run = tmp_path / "run"
    run.mkdir()
    pd.DataFrame(rows).to_parquet(run / "generations.parquet")
    return run


def test_a_planted_loop_is_warned_about(tmp_path):
    from codigit.analysis.report import analyze

    def tuned(i, sample):  # every fourth prompt's answers loop, the rest are healthy with a <tag> in them
        if i % 4 == 0:
            return f"Prompt {i}. " + " ".join([ANGELS] * 5)
        return HEALTHY.format(name="<Ed>", i=i)

    heard = []
    out = analyze(run_with(tmp_path, tuned), n_boot=200, on_warning=heard.append)
    (warning,) = heard
    assert warning.startswith("The tuned model repeats itself: 10 of 40 answers say a span of 12+ words 3 or more")
    assert "(base model: 0 of 40)" in warning and "repeated 4-gram rate 0.19 vs 0.00" in warning
    report = (out / "report.html").read_text()
    top = report.index("<h2>")
    assert "<strong>Warning:</strong> The tuned model repeats itself" in report[:top]  # above every section
    assert "<h2 id='repetition'>Repetition and diversity</h2>" in report and "Rule (a) holds" in report
    assert (
        "a span of 28 words, said 2 times (marked); its most repeated span of 12 words occurs 5 times" in report
        and "<mark>They were a family" in report
    )
    assert "Welleck" in report and "Holtzman" in report and "Li, J." in report
    answers = pd.read_csv(out / "degeneration.csv")
    assert list(answers.columns) == ["model", "suite", "prompt_id", "sample", "words", REP, "longest_repeat",
                                     "answer_distinct_1", "answer_distinct_2", "span_repeats", "loops"]  # fmt: skip
    assert len(answers) == 80 and answers["loops"].sum() == 10
    loop = answers[(answers.model == "tuned") & (answers.prompt_id == "p00")].iloc[0]
    assert (loop["longest_repeat"], loop["span_repeats"]) == (28, 5)
    comparison = pd.read_csv(out / "comparison.csv").set_index("metric")
    row = comparison.loc[REP]  # paired and adjusted with the other metrics
    assert row["n"] == 20 and row["diff"] == pytest.approx(
        5 * (53 / 68) / 20
    )  # "prompt" + 70 words: 68 4-grams, 15 distinct


# sung at the start and again at the end: two repeated 4-grams of 42, rep-4 0.048 in every answer, an echo
ECHO = ("Row, row, row your boat, sang {name} on the way to the river. The morning was grey and the ferry was late, "
        "so they sat on the wall and watched the gulls. When the ferry came, {name} was still singing: row, row, row "
        "your boat.")  # fmt: skip


def test_healthy_answers_are_not_warned_about(tmp_path):
    from codigit.analysis.report import analyze

    heard = []
    out = analyze(run_with(tmp_path, lambda i, s: ECHO.format(name="Ed")), n_boot=200, on_warning=heard.append)
    assert heard == []
    report = (out / "report.html").read_text()
    assert "Warning:" not in report and "the tuned model does not degenerate" in report
    assert "Repetition and diversity" in report


def test_the_repetition_rule_alone_warns(tmp_path):
    from codigit.analysis.report import analyze

    rules = tmp_path / "rules.yaml"  # (a) never holds: not every answer loops
    rules.write_text("loops: {span_words: 12, times: 3, min_share: 1}\nrepetition: {margin: 0.1, alpha: 0.05}\n")
    heard = []
    run = run_with(tmp_path, lambda i, s: " ".join([ANGELS] * 5) if i % 2 else HEALTHY.format(name="Ed", i=i))
    out = analyze(run, n_boot=200, degeneration_rules=rules, on_warning=heard.append)
    # 10 of 20 prompts differ, all by 53/67: an exact sign-flip p would be 2/1024 (Monte Carlo here, 2^20 patterns)
    assert heard and "20 of 40 answers" in heard[0] and "repeated 4-gram rate 0.40 vs 0.00" in heard[0]
    assert "Rule (a) does not hold; rule (b) holds." in (out / "report.html").read_text()


@pytest.mark.slow
def test_the_cli_warns_on_stderr_and_reads_other_rules(tmp_path):
    run = run_with(tmp_path, lambda i, s: " ".join([ANGELS] * 5) if i % 2 else HEALTHY.format(name="Ed", i=i))
    result = codigit("analyze", str(run), "--n-boot", "100")
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("warning: The tuned model repeats itself: 20 of 40 answers")
    assert result.stderr.count("\n") == 1
    lax = tmp_path / "lax.yaml"  # loops only when half the answers loop, and a rise of 0.9 in rep-4
    lax.write_text("loops: {span_words: 12, times: 3, min_share: 0.6}\nrepetition: {margin: 0.9, alpha: 0.05}\n")
    result = codigit("analyze", str(run), "--n-boot", "100", "--degeneration", str(lax))
    assert result.returncode == 0 and "warning" not in result.stderr
    missing = codigit("analyze", str(run), "--degeneration", str(tmp_path / "none.yaml"))
    assert missing.returncode == 2 and "none.yaml" in missing.stderr and missing.stderr.count("\n") == 1
