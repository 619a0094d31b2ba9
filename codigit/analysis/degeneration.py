"""Repetition and diversity within each answer, and the rule that says when the tuned model degenerates.

Measures on an answer's word tokens (`metrics.words`, lower case, as `metrics.distinct_n`): the repeated n-gram
rate (rep-n of Welleck et al. 2019: the share of its n-grams that repeat an earlier one in the same answer), the
longest repeated span (the longest word sequence that occurs twice without overlapping itself), distinct-1/2 of
the answer alone (Li et al. 2016), and how often its most repeated `span_words`-word sequence recurs. The first
four are paired base vs tuned with the other metrics (`report.analyze`); the rule for "degenerates" is data, in
analysis/degeneration.yaml, and is written out in the report's methods paragraph.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from codigit.analysis.metrics import WORD
from codigit.analysis.page import fmt, html_table

REP_N = 4  # Welleck et al. (2019) report rep-4; a 4-gram rarely recurs by chance in one short answer
REP = f"rep_{REP_N}"
PAIRED = (REP, "longest_repeat", "answer_distinct_1", "answer_distinct_2")  # compared per prompt, BH-adjusted
RULES = Path("analysis/degeneration.yaml")  # relative to where codigit runs, like analysis/prompts/ ...
SHIPPED = Path(__file__).resolve().parents[2] / RULES  # ... or the checkout's, so analyze runs from any folder


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Loops(_Strict):
    span_words: int = Field(ge=2)
    times: int = Field(ge=2)
    min_share: float = Field(gt=0, le=1)


class Repetition(_Strict):
    margin: float = Field(ge=0, le=1)
    alpha: float = Field(gt=0, le=1)


class Rules(_Strict):
    """analysis/degeneration.yaml: the tuned model degenerates when either rule holds."""

    loops: Loops
    repetition: Repetition


def load_rules(path: Path | None = None) -> Rules:
    from codigit.specs import load_yaml

    path = path or (RULES if RULES.is_file() else SHIPPED)
    return load_yaml(path, Rules, "the rules for a degenerating model (pass --degeneration)")


def tokens(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


def rep_rate(words: list[str], n: int = REP_N) -> float:
    """The share of the n-grams that repeat an earlier n-gram of the same list; nan when there is none."""
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return 1 - len(set(grams)) / len(grams) if grams else math.nan


def distinct(words: list[str], n: int) -> float:
    """Distinct n-grams over all n-grams of one answer; nan when there is none."""
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else math.nan


def longest_repeat(words: list[str]) -> tuple[int, int, int]:
    """(length, first start, second start) of the longest word sequence that occurs twice without overlap;
    (0, 0, 0) when no word recurs. Two copies `d` words apart match along one diagonal of the word-by-word
    equality matrix, so a run of `r` equal pairs there gives a span of min(r, d) words."""
    import numpy as np

    index: dict[str, int] = {}
    ids = np.array([index.setdefault(w, len(index)) for w in words], dtype=np.int64)
    best, n, d = (0, 0, 0), len(ids), 1
    while d < n - best[0]:  # a span longer than n - d cannot recur d words later
        if d > best[0]:  # min(r, d) cannot beat the best so far
            equal = np.concatenate(([0], (ids[:-d] == ids[d:]).astype(np.int8), [0]))
            edges = np.flatnonzero(np.diff(equal))
            starts, lengths = edges[::2], edges[1::2] - edges[::2]
            k = int(np.argmax(lengths)) if len(lengths) else 0
            if len(lengths) and min(int(lengths[k]), d) > best[0]:
                best = (min(int(lengths[k]), d), int(starts[k]), int(starts[k]) + d)
        d += 1
    return best


def occurrences(words: list[str], span: list[str]) -> list[int]:
    """Where `span` starts in `words`, left to right without overlap."""
    found, n = [], len(span)
    for i in range(len(words) - n + 1):
        if (not found or i >= found[-1] + n) and words[i : i + n] == span:
            found.append(i)
    return found


def most_repeats(words: list[str], length: int) -> int:
    """How many times, without overlap, the most repeated sequence of `length` words occurs (0: none that long)."""
    starts: dict[tuple[str, ...], list[int]] = {}
    for i in range(len(words) - length + 1):
        starts.setdefault(tuple(words[i : i + length]), []).append(i)
    best = 0
    for at in starts.values():
        count, last = 0, -length
        for i in at:  # greedy left to right is the most non-overlapping copies of equal-length spans
            if i >= last + length:
                count, last = count + 1, i
        best = max(best, count)
    return best


def measures(text: str, span_words: int) -> dict[str, float]:
    words = tokens(text)
    return {
        "words": len(words),
        REP: rep_rate(words),
        "longest_repeat": longest_repeat(words)[0],
        "answer_distinct_1": distinct(words, 1),
        "answer_distinct_2": distinct(words, 2),
        "span_repeats": most_repeats(words, span_words),
    }


def answer_frame(texts, rules: Rules):
    """One row per answer (model, suite, prompt_id, sample, the measures, `loops` 0/1), in the rows' order."""
    import pandas as pd

    keys = ("model", "suite", "prompt_id", "sample")
    rows = [
        {**{k: getattr(g, k) for k in keys}, **measures(g.text, rules.loops.span_words)}
        for g in texts.itertuples(index=False)
    ]
    frame = pd.DataFrame(rows, columns=[*keys, *measures("", 2)])
    frame["loops"] = (frame["span_repeats"] >= rules.loops.times).astype(int)
    return frame


def _model(answers, name: str):
    return answers[answers["model"] == name]


def rules_hold(answers, comparison, rules: Rules) -> tuple[bool, bool]:
    """Whether (a) the tuned model loops and (b) its repeated n-gram rate is up, by the rules' thresholds."""
    base, tuned = _model(answers, "base"), _model(answers, "tuned")
    if tuned.empty:
        return False, False
    share = tuned["loops"].mean()
    looping = share >= rules.loops.min_share and (base.empty or share > base["loops"].mean())
    row = comparison.set_index("metric").loc[REP] if REP in set(comparison["metric"]) else None
    repeating = (
        row is not None and row["diff"] >= rules.repetition.margin and row["p_adjusted"] < rules.repetition.alpha
    )
    return bool(looping), bool(repeating)


def warning(answers, comparison, diversity, rules: Rules) -> str:
    """One plain sentence naming the figures when the tuned model degenerates by either rule; "" when not."""
    if not any(rules_hold(answers, comparison, rules)):
        return ""
    base, tuned, loops = _model(answers, "base"), _model(answers, "tuned"), rules.loops
    parts = [f"{tuned['loops'].sum()} of {len(tuned)} answers say a span of {loops.span_words}+ words "
             f"{loops.times} or more times (base model: {base['loops'].sum()} of {len(base)})"]  # fmt: skip
    if REP in set(comparison["metric"]):
        row = comparison.set_index("metric").loc[REP]
        parts.append(f"repeated {REP_N}-gram rate {row['tuned_mean']:.2f} vs {row['base_mean']:.2f} for the base "
                     f"model (adjusted p {fmt(float(row['p_adjusted'])) or 'n/a'})")  # fmt: skip
    d2 = diversity.set_index("model")["distinct_2"]
    if {"base", "tuned"} <= set(d2.index):
        parts.append(f"distinct-2 over all answers {d2['tuned']:.2f} vs {d2['base']:.2f}")
    return "The tuned model repeats itself: " + "; ".join(parts) + "."


def marked(text: str, length: int, start: int) -> str:
    """The text escaped, every non-overlapping copy of the `length`-word span at word `start` in <mark>."""
    found = list(WORD.finditer(text))
    words = [m.group().lower() for m in found]
    out, at = [], 0
    for i in occurrences(words, words[start : start + length]) if length else []:
        first, last = found[i].start(), found[i + length - 1].end()
        out += [html.escape(text[at:first]), f"<mark>{html.escape(text[first:last])}</mark>"]
        at = last
    return "".join(out) + html.escape(text[at:])


def per_model(answers, diversity):
    """Per model: answers, looping answers, mean measures per answer, distinct-1/2 over all its answers."""
    table = answers.groupby("model").agg(
        answers=("words", "size"), looping=("loops", "sum"), **{f"mean {m}": (m, "mean") for m in PAIRED},
        max_longest_repeat=("longest_repeat", "max"))  # fmt: skip
    overall = diversity.set_index("model").rename(columns=lambda c: f"{c} (all answers)")
    return table.join(overall).reset_index()


def section(answers, texts, comparison, diversity, rules: Rules, warning_text: str) -> str:
    """The report's "Repetition and diversity" section: methods, figures per model, paired differences, the
    tuned answer with the longest repeated span."""
    if answers.empty:
        return ""
    loops, rep = rules.loops, rules.repetition
    methods = (
        f"<p class='methods'>Per answer, on its words (lower case): the repeated {REP_N}-gram rate <code>{REP}"
        f"</code> (the share of the answer's {REP_N}-grams that repeat an earlier one in it; rep-n of Welleck et al. "
        "2019), the longest repeated span <code>longest_repeat</code> (the most words in a row the answer says twice, "
        "the copies not overlapping) and distinct-1/2 of the answer alone (distinct n-grams over all its n-grams, Li "
        "et al. 2016). Each is compared base vs tuned per prompt with the metrics above (bootstrap CI, permutation "
        "test, Benjamini–Hochberg). Greedy and low-temperature decoding makes language models loop (Holtzman et al. "
        "2020), and fine-tuning on a small set can do the same. The report warns that the tuned model degenerates "
        f"when (a) {loops.min_share:.0%} or more of its answers say one span of {loops.span_words} or more words "
        f"{loops.times} or more times, and more of them than of the base model's, or (b) its mean {REP} exceeds "
        f"the base model's by {rep.margin} or more with adjusted p &lt; {rep.alpha}. The thresholds are data "
        "(analysis/degeneration.yaml, each with its reason); per-answer figures are in degeneration.csv.</p>"
    )
    paired = comparison[comparison["metric"].isin(PAIRED)]
    tuned = answers[answers["model"] == "tuned"]  # answers has texts' rows in order, numbered 0, 1, ...
    example = "<p>No tuned answers.</p>"
    if not tuned.empty:
        at = tuned["longest_repeat"].idxmax()
        worst, text = tuned.loc[at], str(texts["text"].iloc[at])
        words = tokens(text)
        length, start, _ = longest_repeat(words)
        times = len(occurrences(words, words[start : start + length]))
        where = f"{html.escape(str(worst['suite']))}, {html.escape(str(worst['prompt_id']))}, sample {worst['sample']}"
        example = (
            f"<h3>The tuned answer with the longest repeated span</h3><p>{where}: a span of {length} words, said "
            f"{times} times (marked); its most repeated span of {rules.loops.span_words} words occurs "
            f"{worst['span_repeats']} times.</p><p style='white-space: pre-wrap'>{marked(text, length, start)}</p>"
            if length
            else "<p>No tuned answer says any word twice.</p>"
        )
    references = (
        "<ol class='references'><li>Holtzman, A., Buys, J., Du, L., Forbes, M., &amp; Choi, Y. (2020). The curious "
        "case of neural text degeneration. ICLR.</li><li>Welleck, S., Kulikov, I., Roller, S., Dinan, E., Cho, K., "
        "&amp; Weston, J. (2019). Neural text generation with unlikelihood training. arXiv:1908.04319 (ICLR 2020)."
        "</li><li>Li, J., Galley, M., Brockett, C., Gao, J., &amp; Dolan, B. (2016). A diversity-promoting "
        "objective function for neural conversation models. NAACL-HLT.</li></ol>"
    )
    held = [
        f"({k}) holds" if h else f"({k}) does not hold"
        for k, h in zip("ab", rules_hold(answers, comparison, rules), strict=True)
    ]
    verdict = (f"<p><strong>{html.escape(warning_text)}</strong> Rule {held[0]}; rule {held[1]}.</p>"
               if warning_text else f"<p>By these rules the tuned model does not degenerate: rule {held[0]}; rule "
               f"{held[1]}.</p>")  # fmt: skip
    return (
        f"<h2 id='repetition'>Repetition and diversity</h2>{methods}{verdict}<h3>Per model (free-text answers)</h3>"
        f"<div class='scroll'>{html_table(per_model(answers, diversity))}</div>"
        f"<h3>Paired comparison (tuned − base, per prompt)</h3><div class='scroll'>{html_table(paired)}</div>"
        f"{example}{references}"
    )


def banner(warning_text: str) -> str:
    """The warning at the top of the report, or nothing."""
    if not warning_text:
        return ""
    return (
        "<p role='note' style='background:#fdecea;border-left:4px solid #b3261e;padding:0.5rem 0.8rem'>"
        f"<strong>Warning:</strong> {html.escape(warning_text)} See <a href='#repetition'>Repetition and "
        "diversity</a>.</p>"
    )
