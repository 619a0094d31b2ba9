"""`codigit analyze RUN`: metrics per generation, paired base-vs-tuned comparison, a plot, a self-contained report.

Writes RUN/analysis/: `metrics.csv` (one row per generation; a BBQ reply has only its 0/1 accuracy),
`comparison.csv` (one row per metric: means, the tuned-minus-base difference with a bootstrap 95% CI, permutation p,
Benjamini-Hochberg adjusted p across all these metrics, BBQ accuracy per item included), `bbq.csv` (BBQ scores with
bootstrap CIs), `diversity.csv` (distinct-1/2 per model), `degeneration.csv` (repetition per answer:
`degeneration.py`), `differences.png` (one panel per scale), and `report.html` (everything above, inline, with
example generations from every suite, and a warning at the top when the tuned model repeats itself). Generations
of a sweep of seeds (`codigit train --seeds`) add `seeds.csv`: each effect against the spread between seeds.
Answers to GenderBench's creative probes (`builtin:gb-creative`) add `creative.csv` and `creative_generations.csv`
(`creative.py`).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from pathlib import Path

from codigit.analysis.metrics import family, metric_frame
from codigit.analysis.page import REPORT_CSS, figure_png, fmt, html_table, pyplot
from codigit.errors import CodigitError
from codigit.home import atomic_write

COLUMNS = ("model", "suite", "prompt_id", "sample", "prompt", "text", "meta")
# `builtin:` suites; the study's own open prompts come first in the report
BUILTIN = ("occupations", "bbq", "gb-creative", "gb-creative-full")
EXAMPLES_PER_SUITE = 4
N_BOOT = 2000  # bootstrap resamples per metric (`codigit analyze --n-boot`)


def analyze(run: Path, n_boot: int = N_BOOT, seed: int = 0, degeneration_rules: Path | None = None,
            on_warning: Callable[[str], None] | None = None) -> Path:  # fmt: skip
    """`on_warning` hears the one-line degeneration warning, if any (the CLI prints it to stderr)."""
    import pandas as pd

    from codigit.analysis import bbq, degeneration
    from codigit.analysis.metrics import distinct_n
    from codigit.analysis.stats import benjamini_hochberg, paired

    run = Path(run)
    try:
        generations = pd.read_parquet(run / "generations.parquet")
    except (OSError, ValueError) as e:
        raise CodigitError(f"{run}: no readable generations.parquet ({e}); run `codigit generate {run}`") from None
    if missing := [c for c in COLUMNS if c not in generations.columns]:
        raise CodigitError(f"{run}/generations.parquet lacks {', '.join(missing)}: write it with `codigit generate`")
    if not {"base", "tuned"} <= set(generations["model"]):
        raise CodigitError(f"{run}/generations.parquet needs both base and tuned generations")
    texts = generations[generations["suite"] != "bbq"].reset_index(drop=True)  # BBQ replies: scored apart, per item
    rules = degeneration.load_rules(degeneration_rules)
    answers = degeneration.answer_frame(texts, rules)  # repetition per answer, row for row beside metric_frame's
    per_text = metric_frame(texts).join(answers[list(degeneration.PAIRED)])
    metrics = pd.concat([f for f in (per_text, bbq.correctness(generations)) if not f.empty])
    names = [c for c in metrics.columns if c not in ("model", "prompt_id", "sample")]
    per_prompt = metrics.groupby(["model", "prompt_id"])[names].mean(numeric_only=True)
    base, tuned = per_prompt.loc["base"], per_prompt.loc["tuned"]
    common = base.index.intersection(tuned.index)
    results = [paired(base.loc[common, m].to_numpy(), tuned.loc[common, m].to_numpy(), n_boot, seed=seed)
               for m in names]  # fmt: skip
    adjusted = benjamini_hochberg([r.p for r in results])
    comparison = pd.DataFrame(
        [{"metric": m, **vars(r), "p_adjusted": a} for m, r, a in zip(names, results, adjusted, strict=True)]
    )
    diversity = pd.DataFrame([  # over the free-text suites: BBQ's one-letter replies would swamp it
        {"model": name, "distinct_1": distinct_n(texts.loc[texts["model"] == name, "text"], 1),
         "distinct_2": distinct_n(texts.loc[texts["model"] == name, "text"], 2)}
        for name in sorted(set(generations["model"]))
    ])  # fmt: skip
    bbq_frame = bbq.compare(generations, n_boot=min(n_boot, 1000), seed=seed)
    out = run / "analysis"
    out.mkdir(exist_ok=True)
    for name, frame in (("metrics", metrics), ("comparison", comparison), ("diversity", diversity), ("bbq", bbq_frame),
                        ("degeneration", answers)):  # fmt: skip
        atomic_write(out / f"{name}.csv", frame.to_csv(index=False))
    warning = degeneration.warning(answers, comparison, diversity, rules)
    if warning and on_warning:
        on_warning(warning)
    repetition = (degeneration.banner(warning), degeneration.section(answers, texts, comparison, diversity, rules,
                                                                     warning))  # fmt: skip
    png = differences_plot(comparison.dropna(subset=["diff"]))
    atomic_write(out / "differences.png", png)
    from codigit.analysis.voices import section

    voices = section(generations, n_boot=min(n_boot, 1000), seed=seed)  # a run trained in several collectives' voices
    for name, frame in (voices[1] if voices else {}).items():
        atomic_write(out / f"{name}.csv", frame.to_csv(index=False))
    from codigit.analysis.creative import section as creative_section

    creative = creative_section(generations, n_boot=min(n_boot, 1000), seed=seed)  # GenderBench's creative probes
    for name, frame in (creative[1] if creative else {}).items():
        atomic_write(out / f"{name}.csv", frame.to_csv(index=False))
    voices_html = (voices[0] if voices else "") + (creative[0] if creative else "")
    from codigit.analysis.seeds import section as seeds_section

    seeds = seeds_section(generations, metrics, n_boot=n_boot, seed=seed)  # a sweep: tuned rows of several seeds
    if seeds:
        atomic_write(out / "seeds.csv", seeds[1].to_csv(index=False))
    atomic_write(out / "report.html", render(run, generations, comparison, diversity, png, bbq_frame,
                                             voices_html, repetition,
                                             seeds=seeds[0] if seeds else ""))  # fmt: skip
    return out


def differences_plot(comparison) -> bytes:
    """One panel per family of metrics, so a difference in words per text never shares an axis with a rate."""
    panels = {}
    for row in comparison.itertuples(index=False):
        panels.setdefault(family(row.metric), []).append(row)
    heights = [len(rows) + 1.5 for rows in panels.values()] or [1]
    fig, axes = pyplot().subplots(len(heights), 1, figsize=(7, 0.4 * sum(heights) + 0.5), squeeze=False,
                                  gridspec_kw={"height_ratios": heights})  # fmt: skip
    for ax, (title, rows) in zip(axes[:, 0], panels.items(), strict=False):
        diff = [r.diff for r in rows]
        xerr = [[r.diff - r.ci_low for r in rows], [r.ci_high - r.diff for r in rows]]
        ax.errorbar(diff, range(len(rows)), xerr=xerr, fmt="o", color="#333", capsize=3)
        ax.axvline(0, color="#999", lw=1)
        ax.set_yticks(range(len(rows)), [r.metric for r in rows])
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_title(f"tuned − base: {title}", fontsize=10, loc="left")
    if not panels:
        axes[0, 0].set_axis_off()
        axes[0, 0].text(0.5, 0.5, "no metric could be paired", ha="center")
    axes[-1, 0].set_xlabel("mean over prompts, 95% bootstrap CI")
    return figure_png(fig)


def examples(generations, per_suite: int = EXAMPLES_PER_SUITE) -> list:
    """(suite, rows of the first sample) for a few prompts of every suite, open prompts first; the prompts are
    spread evenly over each suite's ids so one topic or letter does not fill the page."""
    first = generations[generations["sample"] == 0]
    out = []
    for suite in sorted(set(first["suite"]), key=lambda s: (BUILTIN.index(s) + 1 if s in BUILTIN else 0, s)):
        rows = first[first["suite"] == suite]
        ids = sorted(set(rows["prompt_id"]))
        picked = [ids[k * len(ids) // min(per_suite, len(ids))] for k in range(min(per_suite, len(ids)))]
        out.append((suite, [rows[rows["prompt_id"] == i] for i in picked]))
    return out


def render(run: Path, generations, comparison, diversity, png: bytes, bbq_frame=None, voices: str = "",
           repetition: tuple[str, str] = ("", ""), seeds: str = "") -> str:  # fmt: skip
    """`repetition`: the degeneration warning for the top (or "") and the "Repetition and diversity" section."""

    def table(frame) -> str:  # scrolls sideways on a phone instead of widening the page
        return f"<div class='scroll'>{html_table(frame)}</div>"

    pairs = []
    for suite, groups in examples(generations):
        pairs.append(f"<h3>{html.escape(suite)}</h3>")
        for group in groups:
            texts = {m: g["text"].iloc[0] for m, g in group.groupby("model")}
            prompt_id, prompt = group["prompt_id"].iloc[0], group["prompt"].iloc[0]
            pairs.append(
                f"<section class='pair'><h4>{html.escape(prompt_id)}: {html.escape(prompt)}</h4>"
                f"<div><h5>base</h5><p>{html.escape(texts.get('base', ''))}</p></div>"
                f"<div><h5>tuned</h5><p>{html.escape(texts.get('tuned', ''))}</p></div></section>"
            )
    image = base64.b64encode(png).decode()
    bbq_section = ""
    if bbq_frame is not None and not bbq_frame.empty:
        bbq_section = ("<h2>BBQ gender identity</h2><p>Accuracy and bias scores (Parrish et al. 2022) on ambiguous "
                       "and disambiguated items; 0 = no bias, positive = answers follow the stereotype; "
                       "CI: bootstrap over items. Accuracy is also tested per item above, with the other metrics; "
                       "a bias score is a ratio over all answers, not a mean over items, so it has a CI and no "
                       "paired test.</p>" + table(bbq_frame))  # fmt: skip
    n_prompts = generations["prompt_id"].nunique()
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>codigit report: {html.escape(run.name)}</title>
<style>{REPORT_CSS}</style></head><body>
<h1>Base vs tuned: {html.escape(run.name)}</h1>
{repetition[0]}
<p>{len(generations)} generations over {n_prompts} prompts. Each prompt is one unit: its samples are averaged,
then tuned minus base is compared with a bootstrap 95% CI and a sign-flip permutation test;
p-values are adjusted across metrics with Benjamini-Hochberg. Coded-word metrics are per 100 words. BBQ accuracy
is the share of items answered right (one unit per item).</p>
<h2>Differences</h2>
<img alt="tuned minus base per metric with 95% confidence intervals" src="data:image/png;base64,{image}">
{table(comparison)}
<h2>Diversity</h2>
<p>Distinct n-grams over all of a model's free-text generations (BBQ replies left out): one number per model, so
there is no per-prompt pairing and no test; read it as a description.</p>
{table(diversity)}
{repetition[1]}
{bbq_section}
{voices}
{seeds}
{extra_sections(run)}
<h2>Examples (first sample, side by side, a few from each suite)</h2>
{"".join(pairs)}
</body></html>
"""


def extra_sections(run: Path) -> str:
    """The training log (curves, memorisation during training), the memorisation probe and blind comparisons of
    this run, when they have been run (their own commands)."""
    from codigit.analysis.training import section
    from codigit.handoff import compare_results_of, read_memorisation

    parts = [section(run)]
    if m := read_memorisation(run):
        worst = ", ".join(f"record {w.record}: {w.lcs_with_prefix} words" for w in m.worst)
        parts.append(
            f"<h2>Memorisation</h2><p>{m.records} training stories probed with their prompt and with a "
            f"{m.prefix_words}-word start of the story: {m.extraction_rate:.1%} had a run of "
            f"{m.extract_words} or more words repeated (median longest run after the prefix: "
            f"{m.median_lcs_with_prefix:.0f} words). Longest: {html.escape(worst) or 'none'}.</p>"
        )
    for name, r in compare_results_of(run).items():
        if not r.judgments:
            continue
        parts.append(
            f"<h2>Blind comparison, round {html.escape(name)}</h2><p>{r.judgments} judgments of {r.pairs} pairs by "
            f"{r.judges} participants: tuned preferred {r.tuned}, base {r.base}, ties {r.tie}. Tuned "
            f"win rate {r.tuned_win_rate:.3f} (95% CI {r.ci_low:.3f}–{r.ci_high:.3f}); Krippendorff's "
            f"alpha {fmt(r.alpha)}.</p>"
        )
    return "\n".join(parts)
