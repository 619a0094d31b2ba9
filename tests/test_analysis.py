"""Analysis: metrics on hand-written texts, statistics against scipy, and the report in a real browser."""

from __future__ import annotations

import json

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
    assert text_metrics("She is warm, gentle and kind to everyone.")["feminine_coded"] >= 2


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


def test_analyze_without_generations_is_a_one_line_error(tmp_path):
    result = codigit("analyze", str(tmp_path))
    assert result.returncode == 2 and "codigit generate" in result.stderr and result.stderr.count("\n") == 1


def test_report_opens_in_a_real_browser(tmp_path):
    from test_browser import CHROMIUM, CHROMIUM_ARGS, _playwright

    sync_playwright, expect = _playwright()
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
    from codigit.analysis.bbq import bbq_suite, parse_answer, scores

    suite = bbq_suite(per_cell=10)
    assert len(suite) == 40 and len({i["id"] for i in suite}) == 40
    assert bbq_suite(per_cell=10) == suite  # the same items every time
    assert parse_answer("B. Not enough information", ["x", "y", "z"]) == 1
    assert parse_answer("(c)", ["x", "y", "z"]) == 2
    assert parse_answer("I think the answer is the woman.", ["The man", "Unknown", "The woman"]) == 2
    assert parse_answer("Nobody knows.", ["The man", "Unknown", "The woman"]) is None
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


def test_analyze_scores_bbq_for_both_models(tmp_path):
    from codigit.analysis.bbq import bbq_suite

    run = generations(tmp_path)
    frame = pd.read_parquet(run / "generations.parquet")
    rows = []
    for item in bbq_suite(per_cell=5):
        meta = json.dumps({k: v for k, v in item.items() if k not in ("id", "prompt")})
        for model, reply in (("base", "A"), ("tuned", "ABC"[item["label"]])):
            rows.append({**frame.iloc[0].to_dict(), "model": model, "suite": "bbq", "prompt_id": item["id"],
                         "prompt": item["prompt"], "text": reply, "meta": meta})  # fmt: skip
    pd.concat([frame, pd.DataFrame(rows)]).to_parquet(run / "generations.parquet")
    assert codigit("analyze", str(run), "--n-boot", "200").returncode == 0
    bbq = pd.read_csv(run / "analysis/bbq.csv").set_index("metric")
    assert bbq.loc["bbq_accuracy_disambig", "tuned"] == 1.0
    assert bbq.loc["bbq_accuracy_disambig", "ci_low"] <= bbq.loc["bbq_accuracy_disambig", "diff"]
    assert "BBQ gender identity" in (run / "analysis/report.html").read_text()


def test_positionality_correlates_groups_and_suppresses_small_ones(tmp_path):
    from test_release import AT, base, snapshot

    from codigit.records import Positionality, Review, write_snapshot

    stories, _, consents = base(30)
    # 12 reviewers: 6 women rate in line with acceptance, 6 men against it, 2 non-binary (a group under 5)
    people = {f"r-{k:02d}": ("woman" if k < 6 else "man") for k in range(12)} | {
        "r-12": "non_binary",
        "r-13": "non_binary",
    }
    reviews = []
    for i, s in enumerate(stories):
        good = i % 2 == 0
        for who, identity in people.items():
            if (i + int(who[2:])) % 3:  # each story gets about two thirds of the reviewers
                continue
            agree = identity == "woman"
            rating = (5 if good else 1) if agree else (2 if good else 4)
            decision = "include" if good else "exclude"
            reviews.append(Review(story_id=s.story_id, round="1", reviewer=who, rating=rating, decision=decision,
                                  self_review=False, submitted_at=AT))  # fmt: skip
    answers = [Positionality(participant=who, answers={"gender_identity": g}, given_at=AT) for who, g in people.items()]
    snap = write_snapshot(snapshot(stories, reviews, consents, positionality=answers), tmp_path / "snaps")
    result = codigit("positionality", "--snapshot", str(snap), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(tmp_path / "out/positionality_ratings.csv").set_index("group")
    assert frame.loc["woman", "r"] > 0.9 and frame.loc["man", "r"] < -0.9
    assert "non_binary" not in frame.index  # 2 people: never shown
    assert "non_binary" not in (tmp_path / "out/positionality.html").read_text()

    # the tuned model as each group judged it: women prefer it, men the base model
    lines = ["pair,judge,outcome"] + [f"c{i},{who},{'tuned' if g == 'woman' else 'base'}"
                                      for i in range(4) for who, g in people.items()]  # fmt: skip
    (tmp_path / "judgments.csv").write_text("\n".join(lines) + "\n")
    result = codigit("positionality", "--snapshot", str(snap), "--out", str(tmp_path / "out2"),
                     "--judgments", str(tmp_path / "judgments.csv"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    model = pd.read_csv(tmp_path / "out2/positionality_model.csv").set_index("group")
    assert model.loc["woman", "tuned_win_rate"] == 1 and model.loc["man", "tuned_win_rate"] == 0
    assert "non_binary" not in model.index
