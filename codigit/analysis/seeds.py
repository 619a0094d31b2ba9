"""Effects beyond seed noise: with a sweep of seeds (`codigit train --seeds K`), is tuned − base larger than
what retraining with another seed would change?

The data of one metric is a seeds × prompts table of differences, d[s, p] = tuned_s(p) − base(p), each a mean
over that prompt's samples; the effect is its grand mean. Prompts are *crossed* with seeds, not nested in them:
every seed answers the same prompts, against the one base, so what a prompt contributes (its base answer, how
tuning moves it) is shared by every seed. The hierarchical bootstrap therefore resamples two levels, each with
replacement: the seeds (the top level, the source of between-seed variation), and then one draw of the prompts,
used by every resampled seed (resampling prompts anew within each seed would treat them as nested and shrink the
prompt variance by the number of seeds). Variance components come from the two-way random-effects ANOVA of the
same table, and give the minimum detectable effect.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas

KEYS = ("model", "prompt_id", "sample")  # metric columns are the others
ALPHA, POWER = 0.05, 0.80
COLUMNS = ("metric", "seeds", "prompts", "base_mean", "tuned_mean", "effect", "ci_low", "ci_high", "seed_sd",
           "prompt_sd", "mde", "beyond_seed_noise", "verdict")  # fmt: skip


@dataclass(frozen=True)
class SeedEffect:
    seeds: int
    prompts: int  # answered by the base and every seed (with a value of this metric)
    base_mean: float
    tuned_mean: float  # over seeds and prompts
    effect: float  # tuned - base: the grand mean of d[s, p]
    ci_low: float  # hierarchical bootstrap, 95% percentile interval
    ci_high: float
    seed_sd: float  # between seeds: the SD of a seed's effect around the mean effect, prompt noise removed
    prompt_sd: float  # within a seed: the SD of one prompt's difference (prompt and residual components)
    mde: float  # minimum detectable effect at ALPHA (two-sided) and POWER, for these seeds and prompts


def variance_components(d: np.ndarray) -> tuple[float, float, float]:
    """(seed, prompt, residual) variances of a complete seeds × prompts table, by the two-way random-effects
    ANOVA without replication (expected mean squares; a negative estimate is set to 0)."""
    s, p = d.shape
    grand, by_seed, by_prompt = d.mean(), d.mean(axis=1), d.mean(axis=0)
    ms_seed = p * np.sum((by_seed - grand) ** 2) / (s - 1)
    ms_prompt = s * np.sum((by_prompt - grand) ** 2) / (p - 1)
    residual = d - by_seed[:, None] - by_prompt[None, :] + grand
    ms_residual = np.sum(residual**2) / ((s - 1) * (p - 1))
    return max(0.0, (ms_seed - ms_residual) / p), max(0.0, (ms_prompt - ms_residual) / s), float(ms_residual)


def minimum_detectable_effect(seed_var: float, prompt_var: float, residual_var: float, seeds: int, prompts: int,
                              alpha: float = ALPHA, power: float = POWER) -> float:  # fmt: skip
    """(z_{1-alpha/2} + z_{power}) × the standard error of the grand mean, sqrt(σ²_seed/K + σ²_prompt/P +
    σ²_residual/(K·P)): the true effect a two-sided test at `alpha` finds with probability `power` (Bloom 1995)."""
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    return float(z * np.sqrt(seed_var / seeds + prompt_var / prompts + residual_var / (seeds * prompts)))


def hierarchical_bootstrap(d: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """`n_boot` grand means of d (seeds × prompts), each over a resample of the seeds and one resample of the
    prompts shared by those seeds. A resample is a vector of counts, so each mean is counts' · d · counts."""
    s, p = d.shape
    seed_counts = rng.multinomial(s, np.full(s, 1 / s), size=n_boot)
    prompt_counts = rng.multinomial(p, np.full(p, 1 / p), size=n_boot)
    return ((seed_counts @ d) * prompt_counts).sum(axis=1) / (s * p)


def seed_effect(base: np.ndarray, tuned: np.ndarray, n_boot: int = 2000, seed: int = 0) -> SeedEffect:
    """`base`: one value per prompt; `tuned`: seeds × prompts. Prompts missing anywhere (nan) are left out."""
    base, tuned = np.asarray(base, float), np.atleast_2d(np.asarray(tuned, float))
    keep = ~(np.isnan(base) | np.isnan(tuned).any(axis=0))
    base, tuned = base[keep], tuned[:, keep]
    s, p = tuned.shape
    if s < 2 or p < 2:
        nan = float("nan")
        return SeedEffect(s, p, *(float(np.mean(x)) if p else nan for x in (base, tuned)), *[nan] * 6)
    d = tuned - base[None, :]
    boots = hierarchical_bootstrap(d, n_boot, np.random.default_rng(seed))
    low, high = np.percentile(boots, [2.5, 97.5])
    seed_var, prompt_var, residual_var = variance_components(d)
    return SeedEffect(s, p, float(base.mean()), float(tuned.mean()), float(d.mean()), float(low), float(high),
                      float(np.sqrt(seed_var)), float(np.sqrt(prompt_var + residual_var)),
                      minimum_detectable_effect(seed_var, prompt_var, residual_var, s, p))  # fmt: skip


def verdict(metric: str, e: SeedEffect) -> str:
    """One plain sentence: does this metric's effect exceed seed noise?"""
    if e.effect != e.effect or e.ci_low != e.ci_low:
        return f"{metric}: not estimable (fewer than two seeds or two prompts with a value in every run)."
    if e.effect == 0 and e.seed_sd == 0 and e.prompt_sd == 0:
        return f"{metric}: no difference (every seed and the base agree on every prompt)."
    said = f"{metric}: tuned − base {e.effect:+.3g} (95% CI {e.ci_low:.3g} to {e.ci_high:.3g})"
    if e.ci_low > 0 or e.ci_high < 0:
        return f"{said} exceeds seed noise: the interval, with the spread between {e.seeds} seeds in it, excludes 0."
    return (f"{said} is within seed noise: the interval includes 0. With {e.seeds} seeds and {e.prompts} prompts "
            f"the smallest effect detectable with 80% power is ±{e.mde:.3g}.")  # fmt: skip


def seed_table(generations: pandas.DataFrame, metrics: pandas.DataFrame, n_boot: int = 2000,
               seed: int = 0) -> tuple[pandas.DataFrame, pandas.DataFrame] | None:  # fmt: skip
    """(one row per metric as COLUMNS, per-seed effects: metric × seed), or None unless the tuned rows come from
    two or more training seeds. `metrics` is the report's frame: `metric_frame` of the free-text rows, then BBQ
    correctness of the BBQ rows, each row for row."""
    import pandas as pd

    if "train_seed" not in generations.columns:
        return None
    rows = pd.concat([generations[generations["suite"] != "bbq"], generations[generations["suite"] == "bbq"]])
    if len(rows) != len(metrics) or generations.loc[generations["model"] == "tuned", "train_seed"].nunique() < 2:
        return None
    names = [c for c in metrics.columns if c not in KEYS and metrics[c].notna().any()]
    frame = metrics[[*KEYS, *names]].reset_index(drop=True).assign(train_seed=rows["train_seed"].to_numpy())
    base = frame[frame["model"] == "base"].groupby("prompt_id")[names].mean()
    tuned = frame[frame["model"] == "tuned"].groupby(["train_seed", "prompt_id"])[names].mean()
    seeds = sorted(tuned.index.get_level_values("train_seed").unique())
    prompts = base.index.intersection(tuned.index.get_level_values("prompt_id").unique())
    out, by_seed = [], []
    for m in names:
        grid = tuned[m].unstack("prompt_id").reindex(index=seeds, columns=prompts).to_numpy()
        e = seed_effect(base.loc[prompts, m].to_numpy(), grid, n_boot, seed)
        beyond = bool(e.ci_low > 0 or e.ci_high < 0)
        out.append({"metric": m, **vars(e), "beyond_seed_noise": beyond, "verdict": verdict(m, e)})
        values = base.loc[prompts, m].to_numpy()
        keep = ~(np.isnan(values) | np.isnan(grid).any(axis=0))  # the prompts `seed_effect` keeps: effect = their mean
        per_seed = (grid[:, keep] - values[keep]).mean(axis=1) if keep.any() else np.full(len(seeds), np.nan)
        by_seed.append({"metric": m, **{f"seed {s}": float(v) for s, v in zip(seeds, per_seed, strict=False)}})
    return pd.DataFrame(out, columns=list(COLUMNS)), pd.DataFrame(by_seed)


METHODS = """<p class="methods">Each metric's effect is the mean over seeds and prompts of tuned(seed) − base
for each prompt (a prompt's samples averaged first). Its 95% interval is a percentile interval of a hierarchical
bootstrap (Efron &amp; Tibshirani 1993; Davison &amp; Hinkley 1997, §3.8) that resamples, with replacement, the
seeds and then the prompts; one draw of prompts serves every resampled seed, because prompts are crossed with
seeds (every seed answers the same prompts, against the same base), not nested in them. For crossed designs no
resampling scheme is exact (McCullagh 2000): this one is slightly conservative when prompt noise dominates, and
with few seeds it is too narrow when seeds dominate (in simulation, about 83% coverage with 3 seeds); use 5 or
more. The between-seed and within-seed (prompt) SDs come from the two-way random-effects ANOVA of the same
seeds × prompts table; the minimum detectable effect is (z<sub>0.975</sub> + z<sub>0.80</sub>) ×
&radic;(σ²<sub>seed</sub>/K + σ²<sub>prompt</sub>/P + σ²<sub>residual</sub>/(K·P)), for K seeds and P prompts,
at α = 0.05 two-sided and 80% power (Bloom 1995). Fine-tuning results vary with the seed alone (Dodge et al.
2020; Bouthillier et al. 2021): an effect that exceeds seed noise is one whose interval, which includes that
variation, excludes 0. The intervals are per metric, not adjusted for testing many metrics.</p>
<ol class="references">
<li>Efron, B. &amp; Tibshirani, R. J. (1993). <i>An Introduction to the Bootstrap</i>. Chapman &amp; Hall.</li>
<li>Davison, A. C. &amp; Hinkley, D. V. (1997). <i>Bootstrap Methods and their Application</i>, §3.8.
Cambridge University Press.</li>
<li>McCullagh, P. (2000). Resampling and exchangeable arrays. <i>Bernoulli</i> 6(2), 285–301.</li>
<li>Bloom, H. S. (1995). Minimum detectable effects: a simple way to report the statistical power of experimental
designs. <i>Evaluation Review</i> 19(5), 547–556.</li>
<li>Dodge, J., Ilharco, G., Schwartz, R., Farhadi, A., Hajishirzi, H. &amp; Smith, N. (2020). Fine-tuning
pretrained language models: weight initializations, data orders, and early stopping. arXiv:2002.06305.</li>
<li>Bouthillier, X. et al. (2021). Accounting for variance in machine learning benchmarks. <i>Proceedings of
MLSys</i> 3.</li>
</ol>"""


def section(generations: pandas.DataFrame, metrics: pandas.DataFrame, n_boot: int = 2000,
            seed: int = 0) -> tuple[str, pandas.DataFrame] | None:  # fmt: skip
    """(the report's "Effects beyond seed noise" section, the seeds.csv table), or None for a single run."""
    from codigit.analysis.page import html_table

    tables = seed_table(generations, metrics, n_boot, seed)
    if tables is None:
        return None
    table, by_seed = tables
    beyond = table[table["beyond_seed_noise"]]
    summary = (f"{len(beyond)} of {len(table)} metrics exceed seed noise: {', '.join(beyond['metric'])}."
               if len(beyond) else f"None of the {len(table)} metrics exceeds seed noise.")  # fmt: skip
    sentences = "".join(f"<li>{html.escape(v)}</li>" for v in table["verdict"])
    n_seeds = int(table["seeds"].max())
    return (
        f"<h2>Effects beyond seed noise</h2><p>The tuned model was trained with {n_seeds} seeds of the same recipe "
        f"and release. {html.escape(summary)}</p><ul>{sentences}</ul>{METHODS}"
        f"<div class='scroll'>{html_table(table.drop(columns=['verdict']))}</div>"
        f"<h3>Effect of each seed (tuned − base, mean over prompts)</h3>"
        f"<div class='scroll'>{html_table(by_seed)}</div>",
        table,
    )
