"""The voices of the collectives: a run trained with one token per collective answers every prompt once per
collective; how do those voices differ, metric by metric, and can their words tell them apart at all?

`per_collective` compares every pair of collectives on the report's text metrics, paired over the prompts both
answered (the prompt is the unit, as in the base-vs-tuned comparison). `distinctiveness` asks whether a simple
classifier tells the voices apart on prompts it never saw, against the same classifier with the labels shuffled
within each prompt. `section` puts both into the analysis report.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas

KEYS = ("model", "prompt_id", "sample")  # metric_frame's columns that are not metrics
N_PERM = 200  # label shuffles for the baseline: the smallest p it can give is 1/201
PLOTTED = ("pronoun_he", "pronoun_she", "pronoun_they", "masculine_coded", "feminine_coded", "agency", "communion",
           "words")  # fmt: skip


@dataclass(frozen=True)
class Distinctiveness:
    accuracy: float  # share of texts whose voice the classifier named right, each held out with its whole prompt
    chance: float  # 1 / number of collectives
    baseline_mean: float  # mean accuracy with labels shuffled within each prompt
    baseline_p95: float
    p: float  # (1 + shuffles at least as accurate) / (1 + shuffles)
    n: int  # texts


def _collective(meta) -> str | None:
    found = json.loads(meta).get("collective") if isinstance(meta, str) and meta else None
    return str(found) if found not in (None, "") else None


def voices(generations: pandas.DataFrame) -> pandas.DataFrame | None:
    """The tuned rows that carry a collective (column `collective` added); None with fewer than two collectives,
    where there is nothing to compare."""
    tuned = generations[generations["model"] == "tuned"]
    collective = tuned["meta"].map(_collective)
    rows = tuned[collective.notna()].assign(collective=collective[collective.notna()])
    return rows.reset_index(drop=True) if rows["collective"].nunique() >= 2 else None


def per_collective(
    voice_rows: pandas.DataFrame, metrics: pandas.DataFrame | None = None, n_boot: int = 2000, seed: int = 0
) -> tuple[pandas.DataFrame, pandas.DataFrame]:
    """(means, pairs). `metrics` is `metrics.metric_frame(voice_rows)`, row for row (computed when None). Each
    prompt is one unit: a collective's samples for it are averaged first, so `means` are means over prompts and a
    pair is compared over the prompts both collectives answered (tuned rows of one run: the same prompts, so the
    pairing removes what the prompt alone decides). BH adjusts across every pair x metric test."""
    import pandas as pd

    from codigit.analysis.metrics import metric_frame
    from codigit.analysis.stats import benjamini_hochberg, paired

    metrics = metric_frame(voice_rows) if metrics is None else metrics.reset_index(drop=True)
    names = [c for c in metrics.columns if c not in KEYS and metrics[c].notna().any()]  # no all-nan "tests"
    frame = metrics[names].assign(collective=voice_rows["collective"].to_numpy(), prompt_id=metrics["prompt_id"])
    per_prompt = frame.groupby(["collective", "prompt_id"])[names].mean()
    collectives = sorted(set(frame["collective"]))
    means = per_prompt.groupby(level="collective")[names].mean().reindex(collectives)
    means.insert(0, "texts", frame.groupby("collective").size().reindex(collectives))
    means.insert(0, "prompts", per_prompt.groupby(level="collective").size().reindex(collectives))
    rows = []
    for i, a in enumerate(collectives):
        for b in collectives[i + 1 :]:
            x, y = per_prompt.loc[a], per_prompt.loc[b]
            common = x.index.intersection(y.index)
            for m in names:  # paired(base=b, tuned=a): diff and its CI are a - b
                r = paired(y.loc[common, m].to_numpy(), x.loc[common, m].to_numpy(), n_boot, seed=seed)
                rows.append({"collective_a": a, "collective_b": b, "metric": m, "n": r.n, "mean_a": r.tuned_mean,
                             "mean_b": r.base_mean, "diff": r.diff, "ci_low": r.ci_low, "ci_high": r.ci_high,
                             "p": r.p})  # fmt: skip
    pairs = pd.DataFrame(rows, columns=["collective_a", "collective_b", "metric", "n", "mean_a", "mean_b", "diff",
                                        "ci_low", "ci_high", "p"])  # fmt: skip
    pairs["p_adjusted"] = benjamini_hochberg(pairs["p"].tolist())
    return means.rename_axis("collective").reset_index(), pairs


def _unit_gram(texts: Sequence[str]) -> np.ndarray:
    """Cosine similarities between the texts' bags of words (lowercased word tokens, counts scaled to unit length,
    so a voice is told by which words it uses, not by how much it writes)."""
    from scipy import sparse

    from codigit.analysis.metrics import words

    vocabulary: dict[str, int] = {}
    rows, cols = [], []
    for i, text in enumerate(texts):
        for w in words(text):
            rows.append(i)
            cols.append(vocabulary.setdefault(w.lower(), len(vocabulary)))
    counts = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(texts), len(vocabulary)))
    norms = np.sqrt(np.asarray(counts.multiply(counts).sum(axis=1))).ravel()
    unit = sparse.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)) @ counts
    return (unit @ unit.T).toarray()


def _held_out_accuracy(gram: np.ndarray, labels: np.ndarray, k: int, folds: list[np.ndarray]) -> float:
    """Nearest centroid by cosine, leave one prompt out. A class's centroid is the sum of its training texts' unit
    vectors, so every dot product with it is a sum of entries of `gram`: one Gram matrix serves all folds and all
    shuffles. Words seen only in the held-out prompt have no weight in any centroid, and the held-out text's own
    length scales all its scores alike, so this equals building the vocabulary from the training fold alone."""
    onehot = np.eye(k)[labels]
    dots = gram @ onehot  # text x class: dot products with the centroids of all texts, held-out ones included
    square = onehot.T @ dots  # class x class; its diagonal: squared centroid norms over all texts
    right = 0
    for test in folds:
        own = gram[np.ix_(test, test)] @ onehot[test]  # what the held-out texts add to the centroids
        dot = dots[test] - own
        y = onehot[test]
        norm2 = np.diag(square) - 2 * np.einsum("tc,tc->c", y, dots[test]) + np.einsum("tc,tc->c", y, own)
        norm = np.sqrt(np.clip(norm2, 0, None))
        score = np.where(norm > 1e-12, dot / np.where(norm > 1e-12, norm, 1), -np.inf)  # no training text: no vote
        right += int(np.sum(score.argmax(axis=1) == labels[test]))  # ties go to the first collective, by name
    return right / len(labels)


def distinctiveness(
    texts: list[str], labels: list[str], prompts: list[str], n_perm: int = N_PERM, seed: int = 0
) -> Distinctiveness:
    """How often a bag-of-words nearest-centroid classifier names the collective of a text from a prompt it never
    saw (leave one prompt out, so it must recognise the voice, not the prompt), against the same classifier with
    labels shuffled within each prompt (each prompt keeps its set of voices, so prompt effects stay in the
    baseline). Nearest centroid rather than naive Bayes: no smoothing constant to choose, and each score is a
    cosine a reader can check by hand. Deterministic for a seed."""
    classes = sorted(set(labels))
    y = np.array([classes.index(label) for label in labels])
    groups = np.unique(np.asarray(prompts), return_inverse=True)[1]
    k = len(classes)
    if len(set(prompts)) < 2 or k < 2:
        return Distinctiveness(np.nan, 1 / max(k, 1), np.nan, np.nan, np.nan, len(texts))
    gram = _unit_gram(texts)
    folds = [np.flatnonzero(groups == g) for g in range(groups.max() + 1)]
    observed = _held_out_accuracy(gram, y, k, folds)
    rng = np.random.default_rng(seed)
    in_group_order = np.lexsort((np.arange(len(y)), groups))
    baseline = np.empty(n_perm)
    for i in range(n_perm):  # both orders list the rows prompt by prompt, so each label stays within its prompt
        shuffled = np.empty_like(y)
        shuffled[in_group_order] = y[np.lexsort((rng.random(len(y)), groups))]
        baseline[i] = _held_out_accuracy(gram, shuffled, k, folds)
    p = (1 + np.sum(baseline >= observed - 1e-12)) / (1 + n_perm)
    return Distinctiveness(observed, 1 / k, float(baseline.mean()), float(np.percentile(baseline, 95)), float(p),
                           len(texts))  # fmt: skip


def means_plot(means: pandas.DataFrame) -> bytes:
    """Per-collective means of a few metrics, one panel per unit (the same families as the report's plot)."""
    from codigit.analysis.metrics import family
    from codigit.analysis.page import figure_png, pyplot

    panels: dict[str, list[str]] = {}
    for m in (m for m in PLOTTED if m in means.columns):
        panels.setdefault(family(m), []).append(m)
    heights = [len(ms) + 1 for ms in panels.values()]
    fig, axes = pyplot().subplots(len(heights), 1, figsize=(7, 0.45 * sum(heights) + 1), squeeze=False,
                                  gridspec_kw={"height_ratios": heights})  # fmt: skip
    markers = "osD^vP*Xhp"
    for ax, (title, ms) in zip(axes[:, 0], panels.items(), strict=True):
        for j, row in enumerate(means.itertuples(index=False)):
            offset = (j - (len(means) - 1) / 2) * 0.12  # side by side, so equal means stay visible
            ax.plot([getattr(row, m) for m in ms], [i + offset for i in range(len(ms))], markers[j % len(markers)],
                    label=str(row.collective).replace("$", r"\$"), alpha=0.85)  # fmt: skip
        ax.set_yticks(range(len(ms)), ms)
        ax.set_ylim(len(ms) - 0.5, -0.5)
        ax.set_title(f"mean over prompts: {title}", fontsize=10, loc="left")
    axes[0, 0].legend(fontsize=8, loc="best")
    return figure_png(fig)


def _pct(x: float) -> str:
    return f"{x:.0%}"


def section(
    run_generations: pandas.DataFrame, n_boot: int, seed: int, n_perm: int = N_PERM
) -> tuple[str, dict[str, pandas.DataFrame]] | None:
    """The report's "Voices of the collectives" section and its tables to write as CSV (name -> frame), or None
    when the run has no two collectives' voices."""
    import base64

    import pandas as pd

    from codigit.analysis.page import html_table

    rows = voices(run_generations)
    if rows is not None:  # BBQ replies are letters: no voice to hear in them
        rows = rows[rows["suite"] != "bbq"].reset_index(drop=True)
    if rows is None or rows["collective"].nunique() < 2:
        return None
    means, pairs = per_collective(rows, n_boot=n_boot, seed=seed)
    d = distinctiveness(rows["text"].tolist(), rows["collective"].tolist(), rows["prompt_id"].tolist(), n_perm, seed)
    names = ", ".join(html.escape(c) for c in means["collective"])
    if d.accuracy == d.accuracy:
        verdict = (f"A classifier tells the voices apart in {_pct(d.accuracy)} of held-out answers (chance with "
                   f"{len(means)} voices: {_pct(d.chance)}); shuffled labels give {_pct(d.baseline_mean)} (95th "
                   f"percentile {_pct(d.baseline_p95)}), p = {d.p:.3g}.")  # fmt: skip
    else:
        verdict = "Too few prompts to hold one out: no classifier was trained."
    image = base64.b64encode(means_plot(means)).decode()
    n_tests = len(pairs)
    body = f"""<h2>Voices of the collectives</h2>
<p>{len(rows)} tuned answers to {rows["prompt_id"].nunique()} prompts in the voices of {names}.</p>
<p class="methods">Each collective answered the same prompts, conditioned on its own token. Metrics are those of the
comparison above, computed per answer; each prompt is one unit (a collective's samples averaged first). Every pair of
collectives is compared over the prompts both answered: the mean difference (a − b) with a bootstrap 95% CI and a
sign-flip permutation p, Benjamini-Hochberg adjusted across all {n_tests} pair × metric tests. Distinctiveness: each
answer becomes a bag of lowercased words scaled to unit length; it is assigned the collective whose centroid (over the
answers to the other prompts) is nearest by cosine. Every prompt is held out in turn with all its answers, so the
classifier must recognise a voice, not a prompt. The baseline repeats this {n_perm} times with the collectives
shuffled within each prompt; p = (1 + shuffles at least as accurate) / (1 + {n_perm}). Telling voices apart says
their words differ, not how: the table and the plot say which measured differences there are.</p>
<p>{verdict}</p>
<figure><img alt="mean per collective of pronouns, coded words and length" src="data:image/png;base64,{image}">
<figcaption>Means over prompts per collective; the tests are in the table below.</figcaption></figure>
<h3>Means per collective</h3>
<div class="scroll">{html_table(means)}</div>
<h3>Pairwise comparisons (smallest adjusted p first)</h3>
<div class="scroll">{html_table(pairs.sort_values(["p_adjusted", "p"], kind="stable"))}</div>
"""
    summary = pd.DataFrame([{"collectives": len(means), "prompts": rows["prompt_id"].nunique(), **vars(d),
                             "n_perm": n_perm}])  # fmt: skip
    return body, {"voices-means": means, "voices-pairs": pairs, "voices-distinctiveness": summary}
