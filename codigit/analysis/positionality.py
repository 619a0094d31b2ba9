"""`codigit positionality`: whose reviews the accepted dataset agrees with, and what each group wrote.

NLPositionality-style (Santy et al. 2023): for each answer to each positionality question, the reviewers who
gave it form a group; per group, Pearson's r between the group's mean rating of a story and whether the policy
accepted the story, with a p-value, Benjamini-Hochberg across all groups. Story features (length, pronouns,
coded words) are averaged by the author's group. Only answers whose owners allowed their use are read (the
snapshot keeps no others); any group with fewer than K people is left out of every output.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from pathlib import Path

from codigit.analysis.report import figure_png, html_table, pyplot
from codigit.errors import CodigitError
from codigit.home import atomic_write

K = 5


def groups_of(snapshot, study) -> dict[tuple[str, str], set[str]]:
    """(question, answer) -> participants, for label and multi-label questions."""
    out: dict[tuple[str, str], set[str]] = defaultdict(set)
    kinds = {q.name: q for q in study.positionality.questions if q.type in ("label", "multi_label")}
    for p in snapshot.positionality:
        for name, value in p.answers.items():
            if name in kinds:
                for v in value if isinstance(value, list) else [value]:
                    out[(name, v)].add(p.participant)
    return out


def positionality(snapshot, study, policy, out: Path, judgments: Path | None = None) -> dict:
    import numpy as np
    import pandas as pd
    from scipy import stats

    from codigit.analysis.metrics import text_metrics
    from codigit.analysis.stats import benjamini_hochberg
    from codigit.records import counted_reviews
    from codigit.release.policy import judge

    if not snapshot.positionality:
        raise CodigitError("the snapshot has no positionality answers that may be used")
    reviews = counted_reviews(snapshot.reviews)
    by_story: dict[str, list] = defaultdict(list)
    for r in reviews:
        by_story[r.story_id].append(r)
    accepted = {s: float(judge(rs, policy).rejected_because is None) for s, rs in by_story.items()}
    groups = {g: members for g, members in groups_of(snapshot, study).items() if len(members) >= K}

    rating_rows = []
    for (question, answer), members in sorted(groups.items()):
        ratings = {s: np.mean([r.rating for r in rs if r.reviewer in members]) for s, rs in by_story.items()
                   if any(r.reviewer in members for r in rs)}  # fmt: skip
        reviewers = {r.reviewer for r in reviews if r.reviewer in members}
        if len(reviewers) < K or len(ratings) < 3 or len({accepted[s] for s in ratings}) < 2:
            continue  # too few of them reviewed, or nothing to correlate with
        x = np.array([ratings[s] for s in ratings])
        y = np.array([accepted[s] for s in ratings])
        r, p = stats.pearsonr(x, y) if x.std() > 0 else (np.nan, np.nan)
        rating_rows.append({"question": question, "group": answer, "reviewers": len(reviewers),
                            "stories": len(ratings), "r": r, "p": p})  # fmt: skip
    ratings_frame = pd.DataFrame(rating_rows, columns=["question", "group", "reviewers", "stories", "r", "p"])
    ratings_frame["p_adjusted"] = benjamini_hochberg(ratings_frame["p"].tolist()) if len(ratings_frame) else []

    features = {s.story_id: text_metrics(s.story) for s in snapshot.stories}
    authors = defaultdict(list)
    for s in snapshot.stories:
        authors[s.author].append(s.story_id)
    story_rows = []
    for (question, answer), members in sorted(groups.items()):
        writers = [a for a in members if a in authors]
        if len(writers) < K:
            continue
        values = pd.DataFrame([features[s] for a in writers for s in authors[a]])
        story_rows.append({"question": question, "group": answer, "authors": len(writers), "stories": len(values),
                           **values.mean().round(4).to_dict()})  # fmt: skip
    stories_frame = pd.DataFrame(story_rows)

    model_rows = []  # the tuned model's behaviour, as each group judged it in the blind comparison
    if judgments is not None:
        try:
            judged = pd.read_csv(judgments)
        except (OSError, ValueError) as e:
            raise CodigitError(f"{judgments}: not a judgments CSV from `codigit compare results` ({e})") from None
        score = judged["outcome"].map({"tuned": 1.0, "tie": 0.5, "base": 0.0})
        rng = np.random.default_rng(0)
        for (question, answer), members in sorted(groups.items()):
            mine = score[judged["judge"].isin(members)].to_numpy()
            if judged.loc[judged["judge"].isin(members), "judge"].nunique() < K:
                continue
            boots = mine[rng.integers(0, len(mine), (2000, len(mine)))].mean(axis=1)
            model_rows.append({"question": question, "group": answer, "judgments": len(mine),
                               "tuned_win_rate": mine.mean(), "ci_low": np.percentile(boots, 2.5),
                               "ci_high": np.percentile(boots, 97.5)})  # fmt: skip
    model_frame = pd.DataFrame(model_rows)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "positionality_ratings.csv", ratings_frame.to_csv(index=False))
    atomic_write(out / "positionality_stories.csv", stories_frame.to_csv(index=False))
    if judgments is not None:
        atomic_write(out / "positionality_model.csv", model_frame.to_csv(index=False))
    png = _plot(ratings_frame)
    atomic_write(out / "positionality.png", png)
    atomic_write(out / "positionality.html", _section(ratings_frame, stories_frame, png, model_frame))
    return {"groups": len(groups), "rating_rows": len(ratings_frame), "story_rows": len(stories_frame),
            "model_rows": len(model_frame)}  # fmt: skip


def _plot(frame) -> bytes:
    fig, ax = pyplot().subplots(figsize=(7, 0.4 * max(len(frame), 2) + 1))
    labels = [f"{q} = {g}" for q, g in zip(frame["question"], frame["group"], strict=True)]
    ax.barh(range(len(frame)), frame["r"].fillna(0), color="#557")
    ax.set_yticks(range(len(frame)), labels)
    ax.axvline(0, color="#999", lw=1)
    ax.set_xlim(-1, 1)
    ax.set_xlabel("Pearson r: group's mean rating vs accepted (groups of 5 or more)")
    ax.invert_yaxis()
    return figure_png(fig)


def _section(ratings, stories, png: bytes, model=None) -> str:
    table = html_table
    image = base64.b64encode(png).decode()
    model_section = ""
    if model is not None and len(model):
        model_section = "<h3>The tuned model as each group judged it (blind comparison)</h3>" + table(model)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Positionality</title></head><body>
<h2>Positionality</h2>
<p>Per group of reviewers (an answer to one positionality question, only from people who allowed its use, and
only groups of {K} or more): Pearson r between the group's mean rating of each story and whether the release
policy accepts it; p adjusted with Benjamini-Hochberg across groups. Below: features of the stories written by
each group's members.</p>
<img alt="correlation per group" src="data:image/png;base64,{image}">
{table(ratings)}
<h3>Stories by author group</h3>
{table(stories)}
{model_section}
</body></html>
"""
