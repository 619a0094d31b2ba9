"""Sweeps of seeds: `train --seeds K`, generation over the sweep, and the hierarchical bootstrap behind the report's
"Effects beyond seed noise" (checked against simulations with a known seed variance and a hand computation)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import codigit, recipe

from codigit.analysis.seeds import minimum_detectable_effect, seed_effect, variance_components
from codigit.errors import CodigitError

TRUE_EFFECT = 0.4


def simulated_study(rng: np.random.Generator, seeds: int, prompts: int, seed_sd: float) -> tuple:
    """One study as the sweep analysis sees it: the base's value per prompt, and seeds × prompts tuned values.
    A prompt has its own level (shared by base and every seed) and its own response to tuning (shared by every
    seed); each seed shifts all its answers alike; every answer has its own noise, the base's included."""
    level = rng.normal(0, 2, prompts)
    base = level + rng.normal(0, 0.5, prompts)
    tuned = (level + TRUE_EFFECT + rng.normal(0, seed_sd, (seeds, 1)) + rng.normal(0, 0.3, (1, prompts))
             + rng.normal(0, 0.5, (seeds, prompts)))  # fmt: skip
    return base, tuned


def test_hierarchical_bootstrap_covers_the_true_effect_where_a_prompts_only_bootstrap_does_not():
    """200 simulated studies of 8 seeds x 30 prompts, with a between-seed SD (0.4) larger than a seed's prompt
    standard error. A 95% interval should cover the true effect in ~95% of them; with 200 draws one binomial SD is
    1.5 points, so 0.90-0.98 allows about three SDs below (the crossed bootstrap also runs a little wide: McCullagh
    2000) and two above. The seeded generators make the numbers the same on every run. The single-run analysis's
    bootstrap over prompts alone (seeds averaged) ignores the seeds' spread and covers far less often."""
    rng = np.random.default_rng(2)
    covered = prompts_only = 0
    for draw in range(200):
        base, tuned = simulated_study(rng, seeds=8, prompts=30, seed_sd=0.4)
        e = seed_effect(base, tuned, n_boot=400, seed=draw)
        covered += e.ci_low <= TRUE_EFFECT <= e.ci_high
        d = tuned.mean(axis=0) - base
        low, high = np.percentile(d[rng.integers(0, len(d), (400, len(d)))].mean(axis=1), [2.5, 97.5])
        prompts_only += low <= TRUE_EFFECT <= high
    assert 0.90 <= covered / 200 <= 0.98
    assert prompts_only / 200 < 0.85


def test_variance_components_and_minimum_detectable_effect_by_hand():
    d = np.array([[1.0, 2, 3, 6], [3, 4, 5, 4], [2, 0, 4, 2]])
    # grand mean 3; seed means 3, 4, 2; prompt means 2, 2, 4, 4
    # MS seed = 4 (1 + 0 + 1 + ... : 4 x (0 + 1 + 1) / 2); MS prompt = 3 x (1 + 1 + 1 + 1) / 3 = 4
    # residuals [-1 0 -1 2], [0 1 0 -1], [1 -1 1 -1]: SS 12 over (3-1)(4-1) = 6 df, MS residual 2
    # seed variance (4 - 2) / 4 prompts = 0.5; prompt variance (4 - 2) / 3 seeds = 2/3; residual 2
    assert variance_components(d) == pytest.approx((0.5, 2 / 3, 2.0))
    # SE^2 = 0.5/3 + (2/3)/4 + 2/12 = 1/2; MDE = (1.959964 + 0.841621) x sqrt(1/2)
    assert minimum_detectable_effect(0.5, 2 / 3, 2.0, seeds=3, prompts=4) == pytest.approx(1.98101, abs=1e-5)
    e = seed_effect(np.zeros(4), d, n_boot=200)
    assert (e.seeds, e.prompts, e.effect) == (3, 4, 3.0)
    assert e.seed_sd == pytest.approx(np.sqrt(0.5)) and e.prompt_sd == pytest.approx(np.sqrt(2 / 3 + 2))
    assert e.mde == pytest.approx(1.98101, abs=1e-5)
    assert variance_components(np.array([[1.0, 2], [2, 1]]))[0] == 0  # a negative estimate is no variance
    with_gap = seed_effect(np.array([0.0, 0, 0, 0, np.nan]), np.c_[d, [1, np.nan, 1]], n_boot=50)
    assert with_gap.prompts == 4 and with_gap.effect == 3.0  # a prompt missing anywhere is left out


def sweep_generations(folder: Path) -> Path:
    """A sweep's generations.parquet by hand: 12 prompts, the base once, 3 seeds. Every seed says "they" where
    the base says "he" (an effect beyond seed noise), but the seeds disagree on length: seed 1 writes 5 more
    words than the base, seed 2 three fewer, seed 3 as many (a mean effect, within seed noise)."""
    endings = {1: " and came back later that evening with friends.", 2: ".", 3: " and came back."}
    rows = []
    for i in range(12):
        texts = [("base", None, f"He went to the market on day {i} and came back.")]
        texts += [("tuned", s, f"They went to the market on day {i}{end}") for s, end in endings.items()]
        for model, train_seed, text in texts:
            rows.append({"model": model, "suite": "open", "prompt_id": f"p{i:02d}", "sample": 0, "seed": i,
                         "prompt": f"Tell me about day {i}.", "text": text, "prompt_tokens": 7, "new_tokens": 12,
                         "finished": True, "seconds": 0.1, "meta": "{}", "train_seed": train_seed})  # fmt: skip
    folder.mkdir(parents=True)
    frame = pd.DataFrame(rows).astype({"train_seed": "Int64"})
    frame.to_parquet(folder / "generations.parquet", index=False)
    return folder


def test_analyze_a_sweep_reports_which_effects_exceed_seed_noise(tmp_path):
    from codigit.analysis.report import analyze

    out = analyze(sweep_generations(tmp_path / "sweep"), n_boot=300)
    seeds = pd.read_csv(out / "seeds.csv").set_index("metric")
    assert seeds.loc["pronoun_they", "beyond_seed_noise"] and seeds.loc["pronoun_he", "beyond_seed_noise"]
    assert seeds.loc["pronoun_they", "effect"] == 1 and (seeds["seeds"] == 3).all() and (seeds["prompts"] == 12).all()
    assert seeds.loc["words", "effect"] == pytest.approx(2 / 3) and not seeds.loc["words", "beyond_seed_noise"]
    assert seeds.loc["words", "seed_sd"] == pytest.approx(np.std([5, -3, 0], ddof=1))  # no prompt noise here
    assert seeds.loc["words", "verdict"].startswith("words: tuned − base +0.667 (95% CI -3 to 5) is within seed noise")
    # the single-run comparison pools the seeds and sees only prompts: it calls the same length effect certain
    comparison = pd.read_csv(out / "comparison.csv").set_index("metric")
    assert comparison.loc["words", "ci_low"] > 0
    report = (out / "report.html").read_text()
    assert "<h2>Effects beyond seed noise</h2>" in report and "Davison &amp; Hinkley 1997" in report
    assert "metrics exceed seed noise: pronoun_he, pronoun_they.</p>" in report
    assert seeds.loc["refusal", "verdict"] == "refusal: no difference (every seed and the base agree on every prompt)."

    single = tmp_path / "single"  # the same generations without the seeds: a plain run, no such section
    single.mkdir()
    frame = pd.read_parquet(tmp_path / "sweep/generations.parquet")
    frame[frame["train_seed"].isna() | (frame["train_seed"] == 1)].drop(columns="train_seed").to_parquet(
        single / "generations.parquet", index=False
    )
    analyze(single, n_boot=100)
    assert not (single / "analysis/seeds.csv").exists()
    assert "Effects beyond seed noise" not in (single / "analysis/report.html").read_text()


def provenance(dataset_hash: str, seed: int, learning_rate: float = 1e-2) -> dict:
    return {"release": {"path": "r", "version": "0.1.0", "dataset_hash": dataset_hash, "split": "train", "records": 3},
            "recipe": {"file": "r.yaml", "codigit": {"release": "r"}, "model": {"model_name_or_path": "m"},
                       "sft": {"seed": seed, "learning_rate": learning_rate, "output_dir": f"out/seed-{seed}"}},
            "seeds": {"seed": seed}, "code": {"git_commit": None, "git_dirty": False, "versions": {}},
            "hardware": {"platform": "x", "cpu_count": 1, "gpus": []},
            "finished_at": "2026-11-30T00:00:00Z"}  # fmt: skip


def hand_sweep(folder: Path, runs: dict[int, dict]) -> Path:
    for seed, record in runs.items():
        (folder / f"seed-{seed}" / "adapter").mkdir(parents=True)
        (folder / f"seed-{seed}" / "provenance.json").write_text(json.dumps(record))
    sweep = {"recipe": "r.yaml", "release_hash": "a" * 64, "runs": [{"seed": s, "run": f"seed-{s}"} for s in runs]}
    (folder / "sweep.json").write_text(json.dumps(sweep))
    return folder


def test_a_sweep_with_runs_on_another_release_is_a_one_line_error(tmp_path):
    sweep = hand_sweep(tmp_path / "sweep", {1: provenance("a" * 64, 1), 2: provenance("b" * 64, 2)})
    prompts = tmp_path / "few.jsonl"
    prompts.write_text(json.dumps({"id": "p0", "prompt": "Hi"}) + "\n")
    result = codigit("generate", str(sweep), "--suite", str(prompts))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "seed-2: trained on release bbbbbbbbbbbbbbbb…, not the sweep's aaaaaaaaaaaaaaaa…" in result.stderr


def test_a_sweep_of_another_recipe_or_unfinished_is_refused(tmp_path):
    from codigit.train.seeds import sweep_runs

    same = hand_sweep(tmp_path / "same", {1: provenance("a" * 64, 1), 2: provenance("a" * 64, 2)})
    assert [s for s, _ in sweep_runs(same)] == [1, 2]  # only the seed (and the folder) differ
    other = hand_sweep(tmp_path / "other", {1: provenance("a" * 64, 1), 2: provenance("a" * 64, 2, 1e-3)})
    with pytest.raises(CodigitError, match=r"another recipe than the sweep's \(learning_rate: 0.01 -> 0.001\)"):
        sweep_runs(other)
    (other / "seed-2" / "adapter").rmdir()
    with pytest.raises(CodigitError, match="seed 2 of the sweep has not finished"):
        sweep_runs(other)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--seeds", "1", "r.yaml"], "--seeds: must be at least 2"),
     (["--seeds", "2", "--slurm", "r.yaml"], "--seeds trains here"),
     (["r.yaml", "--seeds", "2"], "--seeds goes before the recipe"),
     (["--seeds", "2", "--each-collective", "r.yaml"], "--seeds and --each-collective")],
)  # fmt: skip
def test_seeds_mistakes_on_the_command_line_are_one_line(args, message):
    result = codigit("train", *args)
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr


@pytest.mark.slow
def test_train_seeds_makes_a_sweep_that_generate_and_analyze_read(world, tmp_path):
    """`codigit train --seeds 2` on the tiny model: two runs that differ in their seed only and a sweep record; a
    rerun with another recipe refused, with a larger K a seed added; one base and three tuned generations per
    prompt; the report's seed section."""
    from codigit.analysis.report import analyze
    from codigit.generate import generate_run
    from codigit.handoff import read_provenance
    from codigit.train.seeds import read_sweep

    path = recipe(world, "sweep", max_steps=2, save_steps=2)
    trained = codigit("train", "--seeds", "2", str(path), timeout=900)
    assert trained.returncode == 0, trained.stderr[-3000:]
    sweep = world["root"] / "runs" / "sweep"
    record = read_sweep(sweep)
    assert [(r.seed, r.run) for r in record.runs] == [(1, "seed-1"), (2, "seed-2")]  # the recipe's seed is 1
    assert record.release_hash == world["hash"] and "2 seeds in seed-1, seed-2" in trained.stdout
    first, second = (read_provenance(sweep / r.run) for r in record.runs)
    assert (first.seeds.seed, second.seeds.seed) == (1, 2) and first.finished_at and second.finished_at
    assert (sweep / "seed-2" / "adapter").is_dir()

    changed = codigit("train", "--seeds", "3", str(path), "--learning_rate", "1e-3")  # refused before training
    assert changed.returncode == 2 and "learning_rate: 0.01 -> 0.001" in changed.stderr, changed.stderr
    assert not (sweep / "seed-3").exists()
    more = codigit("train", "--seeds", "3", str(path), timeout=900)  # the same recipe: one more seed
    assert more.returncode == 0, more.stderr[-3000:]
    assert [r.seed for r in read_sweep(sweep).runs] == [1, 2, 3] and read_provenance(sweep / "seed-3").finished_at

    prompts = tmp_path / "few.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": p}) + "\n"
                               for i, p in enumerate(["Who can be a nurse?", "Tell me a story.", "Hi"])))  # fmt: skip
    frame = pd.read_parquet(generate_run(sweep, [prompts], greedy=True, max_new_tokens=4))
    assert frame.groupby("model").size().to_dict() == {"base": 3, "tuned": 9}  # the base once
    assert frame["train_seed"].isna().eq(frame["model"] == "base").all()
    assert sorted(frame.loc[frame["model"] == "tuned", "train_seed"].unique()) == [1, 2, 3]
    assert (analyze(sweep, n_boot=50) / "seeds.csv").is_file()


def test_a_blind_comparison_of_a_sweep_is_refused_before_the_server_is_asked(tmp_path):
    from codigit.compare import open_compare

    folder = tmp_path / "sweep"
    sweep_generations(folder)
    # client and study are never reached: the refusal comes from the generations alone
    with pytest.raises(CodigitError, match="is a sweep of several seeds: open a blind comparison on one seed's run"):
        open_compare(None, None, folder, "r1")
