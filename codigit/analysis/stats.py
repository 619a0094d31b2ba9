"""Paired base-vs-tuned statistics over prompts: mean difference, bootstrap 95% CI, sign-flip permutation test,
Benjamini-Hochberg adjustment across metrics. Each prompt is one unit (its samples averaged first)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Paired:
    n: int
    base_mean: float
    tuned_mean: float
    diff: float  # tuned - base
    ci_low: float
    ci_high: float
    p: float
    p_adjusted: float | None = None


def paired(base: np.ndarray, tuned: np.ndarray, n_boot: int = 2000, n_perm: int = 10000, seed: int = 0) -> Paired:
    base, tuned = np.asarray(base, float), np.asarray(tuned, float)
    keep = ~(np.isnan(base) | np.isnan(tuned))
    base, tuned = base[keep], tuned[keep]
    d = tuned - base
    n = len(d)
    if n == 0:
        return Paired(0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan)
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, n, (n_boot, n))].mean(axis=1)
    low, high = np.percentile(boots, [2.5, 97.5])
    return Paired(n, base.mean(), tuned.mean(), d.mean(), float(low), float(high), sign_flip_p(d, n_perm, rng))


def sign_flip_p(d: np.ndarray, n_perm: int, rng: np.random.Generator) -> float:
    """Two-sided p of the mean difference under exchangeability of base and tuned within each prompt: exact
    over all 2^n sign patterns when that is at most `n_perm`, else Monte Carlo with the observed one counted."""
    observed = abs(d.mean())
    if 2 ** len(d) <= n_perm:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
        stats = np.abs((signs * d).mean(axis=1))
        return float(np.mean(stats >= observed - 1e-12))
    signs = rng.choice((1.0, -1.0), size=(n_perm, len(d)))
    stats = np.abs((signs * d).mean(axis=1))
    return float((1 + np.sum(stats >= observed - 1e-12)) / (1 + n_perm))


def benjamini_hochberg(p: list[float]) -> list[float]:
    """BH-adjusted p-values (nan stays nan), as scipy.stats.false_discovery_control(method="bh")."""
    p_arr = np.asarray(p, float)
    out = np.full_like(p_arr, np.nan)
    ok = ~np.isnan(p_arr)
    values = p_arr[ok]
    m = len(values)
    if m:
        order = np.argsort(values)
        ranked = values[order] * m / np.arange(1, m + 1)
        adjusted = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1)
        result = np.empty(m)
        result[order] = adjusted
        out[ok] = result
    return out.tolist()
