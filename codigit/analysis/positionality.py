"""`codigit positionality`: whose reviews the accepted dataset agrees with, and what each group wrote.

NLPositionality-style (Santy et al. 2023): for each answer to each positionality question, the reviewers who
gave it form a group; per group, Pearson's r between the group's mean rating of a story and whether the policy
accepts the story on the other reviewers' reviews alone (leave-group-out: with the group's own reviews in, the
acceptance would partly be the group's ratings and r would be inflated), with a p-value, Benjamini-Hochberg across
all groups. Story features (length, pronouns, coded words) are averaged by the author's group. With `--judgments`,
the tuned model's win rate in the blind comparison per group: judges are the units (each judge's share of
"tuned", a tie counting half), bootstrap 95% CI over judges, sign-flip test against 0.5, Benjamini-Hochberg across
groups. Only answers whose owners allowed their use are read (the snapshot keeps no others); any group with fewer
than the policy's `min_group_size` people is left out of every output.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from pathlib import Path

from codigit.analysis.report import figure_png, html_table, pyplot
from codigit.compare import OUTCOME_SCORE
from codigit.errors import CodigitError
from codigit.home import atomic_write


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
    # Without the group, a story may lack the policy's minimum number of reviews; what the others decided counts.
    others_policy = policy.model_copy(update={"min_reviews": 0})
    k = policy.min_group_size
    groups = {g: members for g, members in groups_of(snapshot, study).items() if len(members) >= k}

    rating_rows = []
    for (question, answer), members in sorted(groups.items()):
        ratings, accepted = {}, {}
        for s, rs in by_story.items():
            mine = [r.rating for r in rs if r.reviewer in members]
            others = [r for r in rs if r.reviewer not in members]
            if mine and others:  # a story only the group reviewed has no acceptance apart from the group
                ratings[s] = np.mean(mine)
                accepted[s] = float(judge(others, others_policy).rejected_because is None)
        reviewers = {r.reviewer for r in reviews if r.reviewer in members}
        if len(reviewers) < k or len(ratings) < 3 or len({accepted[s] for s in ratings}) < 2:
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
        if len(writers) < k:
            continue
        values = pd.DataFrame([features[s] for a in writers for s in authors[a]])
        story_rows.append({"question": question, "group": answer, "authors": len(writers), "stories": len(values),
                           **values.mean().round(4).to_dict()})  # fmt: skip
    stories_frame = pd.DataFrame(story_rows)

    model_frame = judged_by_group(judgments, groups, k) if judgments is not None else pd.DataFrame()

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "positionality_ratings.csv", ratings_frame.to_csv(index=False))
    atomic_write(out / "positionality_stories.csv", stories_frame.to_csv(index=False))
    if judgments is not None:
        atomic_write(out / "positionality_model.csv", model_frame.to_csv(index=False))
    png = _plot(ratings_frame, k)
    atomic_write(out / "positionality.png", png)
    atomic_write(out / "positionality.html", _section(ratings_frame, stories_frame, png, k, model_frame))
    return {"groups": len(groups), "rating_rows": len(ratings_frame), "story_rows": len(stories_frame),
            "model_rows": len(model_frame)}  # fmt: skip


def judged_by_group(judgments: Path, groups: dict[tuple[str, str], set[str]], k: int):
    """The tuned model's behaviour as each group judged it in the blind comparison (`compare results` CSV)."""
    import numpy as np
    import pandas as pd

    from codigit.analysis.stats import benjamini_hochberg, paired

    try:
        judged = pd.read_csv(judgments)
    except (OSError, ValueError) as e:
        raise CodigitError(f"{judgments}: not a judgments CSV from `codigit compare results` ({e})") from None
    if missing := {"judge", "outcome"} - set(judged.columns):
        raise CodigitError(f"{judgments}: no {' or '.join(sorted(missing))} column; use the judgments CSV that "
                           "`codigit compare results` writes")  # fmt: skip
    judged["score"] = judged["outcome"].map(OUTCOME_SCORE)
    if bad := sorted(set(judged.loc[judged["score"].isna(), "outcome"].astype(str))):
        raise CodigitError(f"{judgments}: outcome {bad[0]!r} is none of tuned, tie, base")
    rows = []
    for (question, answer), members in sorted(groups.items()):
        theirs = judged[judged["judge"].isin(members)]
        per_judge = theirs.groupby("judge")["score"].mean().to_numpy()
        if len(per_judge) < k:
            continue
        t = paired(np.full(len(per_judge), 0.5), per_judge, seed=0)  # each judge's share against an even split
        rows.append({"question": question, "group": answer, "judges": len(per_judge), "judgments": len(theirs),
                     "tuned_win_rate": t.tuned_mean, "ci_low": 0.5 + t.ci_low, "ci_high": 0.5 + t.ci_high,
                     "p": t.p})  # fmt: skip
    columns = ["question", "group", "judges", "judgments", "tuned_win_rate", "ci_low", "ci_high", "p"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["p_adjusted"] = benjamini_hochberg(frame["p"].tolist())
    return frame


def _plot(frame, k: int) -> bytes:
    fig, ax = pyplot().subplots(figsize=(7, 0.4 * max(len(frame), 2) + 1))
    labels = [f"{q} = {g}" for q, g in zip(frame["question"], frame["group"], strict=True)]
    ax.barh(range(len(frame)), frame["r"].fillna(0), color="#557")
    ax.set_yticks(range(len(frame)), labels)
    ax.axvline(0, color="#999", lw=1)
    ax.set_xlim(-1, 1)
    ax.set_xlabel(f"Pearson r: group's mean rating vs accepted (groups of {k} or more)")
    ax.invert_yaxis()
    return figure_png(fig)


def _section(ratings, stories, png: bytes, k: int, model=None) -> str:
    table = html_table
    image = base64.b64encode(png).decode()
    model_section = ""
    if model is not None and len(model):
        model_section = ("<h3>The tuned model as each group judged it (blind comparison)</h3><p>Win rate: the mean "
                         "over the group's judges of each judge's share of judgments for the tuned model (a tie "
                         "counts half); 95% CI by bootstrap over judges; p: sign-flip test of each judge's share "
                         "against 0.5, adjusted with Benjamini-Hochberg across groups.</p>" + table(model))  # fmt: skip
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Positionality</title></head><body>
<h2>Positionality</h2>
<p>Per group of reviewers (an answer to one positionality question, only from people who allowed its use, and
only groups of {k} or more): Pearson r between the group's mean rating of each story and whether the release
policy accepts it on the other reviewers' reviews (the group's own left out, so that its ratings cannot make the
outcome they are compared with; the minimum number of reviews is not applied to what is left); p adjusted with
Benjamini-Hochberg across groups. Below: features of the stories written by each group's members.</p>
<img alt="correlation per group" src="data:image/png;base64,{image}">
{table(ratings)}
<h3>Stories by author group</h3>
{table(stories)}
{model_section}
</body></html>
"""
