"""Krippendorff's alpha for peer reviews: per question, at the right level of measurement, with a bootstrap CI.

Computed here from the coincidence matrix (Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability") so the
bootstrap can reuse the per-item counts; `tests/test_agreement.py` checks it against the `krippendorff` package and
against the published worked example. Levels: ordinal for ratings, nominal for labels, and for multi-label
questions one binary (nominal) alpha per label, each reviewer saying "chosen" or "not chosen" for every item.

A reviewer's review of their own story is excluded before anything is counted.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from codigit.cli_types import Parents, at_least
from codigit.errors import CodigitError
from codigit.places import Recorded

if TYPE_CHECKING:
    import numpy as np  # imported where it computes: `codigit --help` loads this module for its parser

    from codigit.records import Snapshot

Level = Literal["nominal", "ordinal", "interval"]
N_BOOT = 1000  # bootstrap resamples for the 95% CI
TOP_DISPUTED = 5  # most disputed stories listed per question


@dataclass(frozen=True)
class Rating:
    item: str  # the story (its pseudonymous id)
    rater: str  # the reviewer's pseudonym
    value: Hashable  # a number (rating), a label, or a frozenset of labels (multi-label)
    self_review: bool = False


@dataclass(frozen=True)
class Agreement:
    alpha: float  # nan when undefined: fewer than two pairable values, or no variation at all
    ci_low: float
    ci_high: float
    n_items: int  # items with at least two ratings (pairable)
    n_raters: int
    n_values: int  # pairable values
    disputed: list[tuple[str, float]]  # (item, mean pairwise distance), most disputed first


def _distances(categories: np.ndarray, marginals: np.ndarray, level: Level) -> np.ndarray:
    """Squared distance between every pair of categories (Krippendorff's delta squared)."""
    import numpy as np

    if level == "nominal":
        return 1.0 - np.eye(len(categories))
    if level == "interval":
        values = categories.astype(float)
        return (values[:, None] - values[None, :]) ** 2
    # ordinal: the number of values between two ranks, each end counted half
    cumulative = np.cumsum(marginals)
    below = cumulative - marginals / 2.0
    return (below[:, None] - below[None, :]) ** 2


def _alpha(counts: np.ndarray, delta: np.ndarray) -> float:
    """Alpha from per-item category counts (items × categories) of pairable items."""
    import numpy as np

    m = counts.sum(axis=1)
    coincidences = np.einsum("uc,uk->ck", counts / (m - 1)[:, None], counts) - np.diag(
        (counts / (m - 1)[:, None]).sum(0)
    )
    n_c = coincidences.sum(axis=1)
    n = n_c.sum()
    expected = (np.outer(n_c, n_c) * delta).sum()
    if n <= 1 or expected == 0:
        return math.nan
    return 1.0 - (n - 1) * (coincidences * delta).sum() / expected


def _counts(ratings: list[Rating]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(pairable items, sorted categories, counts items × categories)."""
    import numpy as np

    by_item: dict[str, list[Hashable]] = {}
    for r in ratings:
        by_item.setdefault(r.item, []).append(r.value)
    items = sorted(i for i, values in by_item.items() if len(values) >= 2)
    categories = np.array(sorted({v for i in items for v in by_item[i]}))
    index = {c: k for k, c in enumerate(categories.tolist())}
    counts = np.zeros((len(items), len(categories)))
    for u, item in enumerate(items):
        for v in by_item[item]:
            counts[u, index[v]] += 1
    return items, categories, counts


def agreement(
    ratings: Iterable[Rating], level: Level, n_boot: int = N_BOOT, seed: int = 0, top_disputed: int = TOP_DISPUTED
) -> Agreement:
    """Alpha over (item, rater, value) ratings, with a percentile bootstrap 95% CI that resamples items."""
    import numpy as np

    ratings = [r for r in ratings if not r.self_review and r.value is not None]
    seen: set[tuple[str, str]] = set()
    for r in ratings:
        if (r.item, r.rater) in seen:
            raise ValueError(f"rater {r.rater} rated item {r.item} twice")
        seen.add((r.item, r.rater))
    items, categories, counts = _counts(ratings)
    if len(items) == 0:
        return Agreement(math.nan, math.nan, math.nan, 0, len({r.rater for r in ratings}), 0, [])
    delta = _distances(categories, counts.sum(axis=0), level)
    alpha = _alpha(counts, delta)

    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_boot):
        sample = counts[rng.integers(0, len(items), len(items))]
        if level == "ordinal":  # ranks depend on the sample's own marginals
            value = _alpha(sample, _distances(categories, sample.sum(axis=0), level))
        else:
            value = _alpha(sample, delta)
        if not math.isnan(value):
            boot.append(value)
    low, high = np.percentile(boot, [2.5, 97.5]).tolist() if boot else [math.nan, math.nan]

    m = counts.sum(axis=1)
    within = np.einsum("uc,ck,uk->u", counts, delta, counts) / (m * (m - 1))  # mean distance over ordered pairs
    order = np.argsort(-within, kind="stable")[:top_disputed]
    disputed = [(items[u], float(within[u])) for u in order if within[u] > 0]
    raters = {r.rater for r in ratings if r.item in set(items)}
    return Agreement(float(alpha), low, high, len(items), len(raters), int(m.sum()), disputed)


def multilabel_agreement(ratings: Iterable[Rating], labels: Iterable[str], **kwargs) -> dict[str, Agreement]:
    """One binary alpha per label: each review's answer becomes "chosen" (1) or "not chosen" (0) for that label."""
    ratings = list(ratings)
    return {
        label: agreement(
            [Rating(r.item, r.rater, int(label in r.value), r.self_review) for r in ratings if r.value is not None],
            "nominal",
            **kwargs,
        )
        for label in labels
    }


LEVELS: dict[str, Level] = {"rating": "ordinal", "label": "nominal", "multi_label": "nominal"}


def review_agreement(
    reviews: Iterable, questions: Iterable, n_boot: int = N_BOOT, seed: int = 0, top_disputed: int = TOP_DISPUTED
) -> list[dict]:
    """One row per closed review question (one per label for multi-label ones), as plain data for table and JSON.

    `reviews` are `codigit.records.Review`; `questions` the study's review `QuestionSpec`s (text ones are skipped).
    """
    reviews = list(reviews)
    rows = []
    for q in questions:
        if q.type not in LEVELS:
            continue
        ratings = [Rating(r.story_id, r.reviewer, _hashable(getattr(r, q.name)), r.self_review) for r in reviews]
        if q.type == "multi_label":
            results = multilabel_agreement(ratings, q.options(), n_boot=n_boot, seed=seed, top_disputed=top_disputed)
        else:
            results = {None: agreement(ratings, LEVELS[q.type], n_boot=n_boot, seed=seed, top_disputed=top_disputed)}
        for label, a in results.items():
            rows.append({
                "question": q.name, "label": label, "level": "binary" if label else LEVELS[q.type],
                "alpha": _num(a.alpha), "ci_low": _num(a.ci_low), "ci_high": _num(a.ci_high),
                "n_items": a.n_items, "n_raters": a.n_raters, "n_values": a.n_values,
                "disputed": [{"story_id": item, "disagreement": round(d, 4)} for item, d in a.disputed],
            })  # fmt: skip
    return rows


def _hashable(value):
    return frozenset(value) if isinstance(value, list) else value


def _num(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 4)


def format_table(rows: list[dict]) -> str:
    """The rows as an aligned text table, then the most disputed stories of each single-answer question."""

    def fmt(x: float | None) -> str:
        return "   n/a" if x is None else f"{x:6.3f}"

    lines = [f"{'question':<34} {'level':<8} {'alpha':>6}  {'95% CI':<17} {'items':>5} {'raters':>6}"]
    for r in rows:
        name = r["question"] + (f" = {r['label']}" if r["label"] else "")
        ci = f"[{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]"
        lines.append(f"{name:<34} {r['level']:<8} {fmt(r['alpha'])}  {ci:<17} {r['n_items']:>5} {r['n_raters']:>6}")
    for r in rows:
        if r["label"] is None and r["disputed"]:  # distances are in alpha's own units: JSON has them
            stories = ", ".join(d["story_id"] for d in r["disputed"])
            lines.append(f"most disputed by {r['question']}: {stories}")
    return "\n".join(lines)


def agreement_report(snapshot: Snapshot, questions: Iterable, round_name: str | None = None, n_boot: int = N_BOOT,
                     seed: int = 0, top_disputed: int = TOP_DISPUTED) -> dict:  # fmt: skip
    """What `codigit agreement --format json` writes (and the demo's agreement.json): the counted reviews of one
    round (or all), what was left out of them, and one row per question (`review_agreement`)."""
    from codigit.records import counted_reviews

    every = [r for r in snapshot.reviews if round_name is None or r.round == round_name]
    reviews = counted_reviews(every)
    if not reviews:
        raise CodigitError(f"snapshot {snapshot.meta.snapshot_id} has no reviews" + (
            f" in round {round_name!r}" if round_name else ""))  # fmt: skip
    return {
        "snapshot": snapshot.meta.snapshot_id,
        "round": round_name,
        "reviews": len(reviews),
        "self_reviews_excluded": sum(r.self_review for r in every),
        "reviews_of_an_earlier_text_excluded": sum(not r.current_text and not r.self_review for r in every),
        "n_boot": n_boot,
        "questions": review_agreement(reviews, questions, n_boot, seed, top_disputed),
    }


def run(args: argparse.Namespace) -> None:
    from codigit.home import atomic_write
    from codigit.records import read_snapshot
    from codigit.study import load_study

    study = load_study(args.study)
    report = agreement_report(read_snapshot(args.snapshot), study.review.questions, args.round, args.n_boot,
                              args.seed, args.top)  # fmt: skip
    text = json.dumps(report, indent=2) + "\n" if args.format == "json" else format_table(report["questions"]) + "\n"
    if args.out:
        try:
            atomic_write(args.out, text)
        except OSError as e:
            raise CodigitError(f"{args.out}: cannot write the report ({e.strerror or e})") from None
        print(f"wrote {args.out}")
    else:
        print(text, end="")


def add_parser(sub, parents: Parents) -> None:
    p = sub.add_parser("agreement", parents=[parents.study], help="Krippendorff's alpha of the reviews in a snapshot")
    p.add_argument("--snapshot", type=Path, default=Recorded("snapshots"), help="snapshot (default: the latest)")
    p.add_argument("--round", help="only this review round")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--out", type=Path, help="write the report here instead of printing it")
    p.add_argument("--n-boot", type=at_least(1), default=N_BOOT, help="bootstrap resamples for the 95%% CI")
    p.add_argument("--seed", type=at_least(0), default=0)  # numpy takes no negative seed
    p.add_argument("--top", type=at_least(0), default=TOP_DISPUTED, help="most disputed stories to list per question")
    p.set_defaults(func=run)
