"""The report's "Training" section, from the run's metrics.jsonl: training and eval loss per step, and the
memorisation of training stories measured at each evaluation (`codigit.train.evaluation`), with the steps where
memorisation rose while the eval loss still fell."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from codigit.analysis.page import figure_png, pyplot


def read_metrics(run: Path) -> tuple[list[dict], list[dict]]:
    """(logged training steps, evaluations) of a run's metrics.jsonl; empty when it has none. A line that does not
    parse (a run killed mid-write) is skipped: the report describes what was logged."""
    path = Path(run) / "metrics.jsonl"
    steps, evaluations = [], []
    if not path.is_file():
        return steps, evaluations
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "loss" in entry:
            steps.append(entry)
        elif "eval_loss" in entry:
            evaluations.append(entry)
    return steps, evaluations


def curves_plot(steps: list[dict], evaluations: list[dict]) -> bytes:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot([s["step"] for s in steps], [s["loss"] for s in steps], color="#888", lw=1, label="training loss")
    if evaluations:
        ax.plot([e["step"] for e in evaluations], [e["eval_loss"] for e in evaluations], "o-", color="#1f4e9c",
                label="eval loss")  # fmt: skip
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    lines, labels = ax.get_legend_handles_labels()
    probed = [e for e in evaluations if "memorisation" in e]
    if probed:
        right = ax.twinx()
        right.plot([e["step"] for e in probed], [e["memorisation"] for e in probed], "s--", color="#b45309",
                   label="memorisation (4-gram share)")  # fmt: skip
        right.set_ylim(-0.02, 1.02)
        right.set_ylabel("memorisation")
        for e in probed:
            if e.get("memorisation_warning"):
                right.annotate("!", (e["step"], e["memorisation"]), xytext=(0, 6), textcoords="offset points",
                               ha="center", color="#b91c1c", fontweight="bold")  # fmt: skip
        more = right.get_legend_handles_labels()
        lines, labels = lines + more[0], labels + more[1]
    ax.legend(lines, labels, fontsize=8, loc="upper right")
    return figure_png(fig)


def section(run: Path) -> str:
    """The section's HTML, or "" for a run without a training log (generations made elsewhere)."""
    steps, evaluations = read_metrics(run)
    if not steps:
        return ""
    image = base64.b64encode(curves_plot(steps, evaluations)).decode()
    warned = [e for e in evaluations if e.get("memorisation_warning")]
    warning = ""
    if warned:
        items = "".join(f"<li>step {e['step']}: memorisation {e['memorisation']:.2f}, eval loss "
                        f"{e['eval_loss']:.3f}</li>" for e in warned)  # fmt: skip
        warning = ("<p class='warning'><strong>Memorisation rose while the eval loss still fell</strong> at these "
                   "evaluations: the model was learning training stories word for word before it stopped "
                   f"generalising. An earlier checkpoint, or early stopping, may serve the community better.</p>"
                   f"<ul>{items}</ul>")  # fmt: skip
    last = evaluations[-1] if evaluations else None
    summary = f"{len(steps)} logged steps up to step {steps[-1]['step']}"
    if last:
        summary += f"; {len(evaluations)} evaluations, the last at step {last['step']} "
        summary += f"(eval loss {last['eval_loss']:.3f}"
        summary += f", memorisation {last['memorisation']:.2f})" if "memorisation" in last else ")"
    return f"""<h2>Training</h2>
<p>{html.escape(summary)}.</p>
{warning}
<img alt="training and eval loss per step, and memorisation of training stories at each evaluation"
 src="data:image/png;base64,{image}">
<p class="methods">Eval loss is computed on the release's held-out split (the recipe's <code>eval_split</code>).
Memorisation (recipe key <code>memorisation_probe</code>): for a fixed sample of training stories, the model is
given the prompt and the story's first tokens and continues greedily for as many tokens; the figure is the mean
share of its token 4-grams found in the story's true continuation (1 = word for word). Memorisation of training
data can peak early in fine-tuning, before the held-out loss is best (Tirumala et al. 2022, <i>Memorization without
overfitting</i>; Carlini et al. 2023, <i>Quantifying memorization across neural language models</i>); an
evaluation where it rose while the eval loss fell is marked "!", as the training log warned.</p>"""
