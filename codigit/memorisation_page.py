"""RUN/analysis/memorisation_texts.html: the per-text memorisation probe of a corpus run as a page contributors
and organisers can read (one file, plot inline): how often the model hands back each text, verbatim and nearly,
greedy and sampled, with what the numbers mean and where the method comes from. Titles are escaped; no text's
content is on it."""

from __future__ import annotations

import base64
import html
from typing import TYPE_CHECKING

from codigit.analysis.page import REPORT_CSS, figure_png, pyplot

if TYPE_CHECKING:
    from codigit.memorisation_texts import MemorisationTexts

COLUMNS = ("greedy_verbatim", "greedy_near", "sampled_verbatim", "sampled_near")
HEADS = ("verbatim, greedy", "near-verbatim, greedy", "verbatim, sampled", "near-verbatim, sampled")


def rates_plot(m: MemorisationTexts) -> bytes:
    """Near-verbatim share per text, greedy and sampled, highest first: the texts a contributor should look at."""
    probed = sorted((t for t in m.texts if t.rates), key=lambda t: (t.rates.greedy_near, t.rates.sampled_near))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(probed) + 1.2))
    y = range(len(probed))
    ax.barh([i + 0.2 for i in y], [t.rates.greedy_near for t in probed], height=0.4, label="greedy")
    ax.barh([i - 0.2 for i in y], [t.rates.sampled_near for t in probed], height=0.4, label="sampled")
    ax.set_yticks(list(y), [t.title[:40] for t in probed])
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"share of windows repeated near-verbatim (edit similarity ≥ {m.near_threshold})")
    ax.legend(loc="lower right")
    return figure_png(fig)


def render(m: MemorisationTexts) -> str:
    def pct(value: float | None) -> str:
        return "–" if value is None else f"{value:.1%}"

    rows = "".join(
        f"<tr><td>{html.escape(t.title)}</td><td>{html.escape(t.id)}</td><td>{t.tokens:,}</td><td>{t.windows}</td>"
        + "".join(f"<td>{pct(getattr(t.rates, c) if t.rates else None)}</td>" for c in COLUMNS)
        + "</tr>"
        for t in sorted(m.texts, key=lambda t: (-(t.rates.greedy_near if t.rates else -1), t.title))
    )
    mean = "".join(f"<td><b>{pct(getattr(m.mean, c) if m.mean else None)}</b></td>" for c in COLUMNS)
    plot = ""
    if m.mean is not None:
        data = base64.b64encode(rates_plot(m)).decode()
        plot = (f'<figure><img alt="near-verbatim share per text, greedy and sampled" src="data:image/png;base64,'
                f'{data}"><figcaption>Each bar: the share of a text\'s probe windows the model continued '
                f"near-verbatim.</figcaption></figure>")  # fmt: skip
    heads = "".join(f"<th>{h}</th>" for h in HEADS)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Memorisation per contributed text: corpus release {html.escape(m.release_version)}</title>
<style>{REPORT_CSS}</style></head><body>
<h1>How much of each contributed text does the model repeat?</h1>
<p>Corpus release {html.escape(m.release_version)} (dataset hash {html.escape(m.release_hash[:16])}…), the run's
{"LoRA adapter on its base model" if m.weights == "lora" else "own fully trained model"}. Over all probed texts,
each weighing the same: <b>{pct(m.mean.greedy_near if m.mean else None)}</b> of windows came back near-verbatim
with greedy decoding and <b>{pct(m.mean.sampled_near if m.mean else None)}</b> with sampling.</p>
{plot}
<div class="scroll"><table><thead><tr><th>text</th><th>key</th><th>tokens</th><th>windows</th>{heads}</tr></thead>
<tbody>{rows}<tr><td><b>mean</b></td><td></td><td></td><td></td>{mean}</tr></tbody></table></div>
<p class="methods">Method. Up to {m.windows} windows per text, spread evenly over it: the model is given the
{m.prefix_tokens} tokens before a window and generates {m.new_tokens} tokens, once greedily and once sampled
(temperature {m.temperature}, top-p {m.top_p}, one fixed seed per window, run seed {m.seed}). A window is
<b>verbatim</b> when the continuation equals the text's next {m.new_tokens} tokens, extraction with a prefix as
Carlini et al. (2023) define it; it is <b>near-verbatim</b> (verbatim included) when the token-level edit
similarity is at least {m.near_threshold}, after Ippolito et al. (2023), who show that small edits make a copy
escape a verbatim check. A text too short for one window is not probed (–). A low rate here is not a promise:
other prompts, longer generation or other decoding can extract more.</p>
<h2>References</h2><ol class="references">
<li>Carlini, N., Ippolito, D., Jagielski, M., Lee, K., Tramèr, F., &amp; Zhang, C. (2023). Quantifying Memorization
Across Neural Language Models. In <i>International Conference on Learning Representations (ICLR)</i>.
https://arxiv.org/abs/2202.07646</li>
<li>Ippolito, D., Tramèr, F., Nasr, M., Zhang, C., Jagielski, M., Lee, K., Choquette-Choo, C. A., &amp; Carlini, N.
(2023). Preventing Generation of Verbatim Memorization in Language Models Gives a False Sense of Privacy. In
<i>Proceedings of the 16th International Natural Language Generation Conference (INLG)</i>.</li></ol>
</body></html>
"""
