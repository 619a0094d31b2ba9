"""`codigit positionality`: how participants' positionality shows in the stories they wrote and in their reviews.

Stories (consented authors only) are read by author group: for each positionality question, the authors who gave
an answer form a group; an answer fewer than the policy's `min_group_size` (k) authors gave is pooled into
"other/suppressed", and that pool is left out too if it has fewer than k (`analysis.groups`). Per group: the codes
of the latest reconciled coding round (`codigit coding`), with cluster-bootstrap CIs and permutation tests over
authors; distinctive words and phrases (`analysis.language`, log-odds with an informative Dirichlet prior) with
excerpts; and text features. The page (`analysis.positionality_page`) says how each number was computed.

Reviewers, NLPositionality-style (Santy et al. 2023): for each answer to each positionality question, the reviewers who
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

from collections import defaultdict
from pathlib import Path

from codigit.compare import OUTCOME_SCORE
from codigit.errors import CodigitError
from codigit.home import atomic_write


def without(snapshot, withdrawn: set[str]):
    """The snapshot without anything of people who withdrew after it was taken (the withdrawals noted beside the
    snapshots, as releases honour them)."""
    if not withdrawn:
        return snapshot
    keep = {"stories": [s for s in snapshot.stories if s.author not in withdrawn],
            "reviews": [r for r in snapshot.reviews if r.reviewer not in withdrawn],
            "consent": [c for c in snapshot.consent if c.participant not in withdrawn],
            "positionality": [p for p in snapshot.positionality if p.participant not in withdrawn]}  # fmt: skip
    gone = {s.story_id for s in snapshot.stories if s.author in withdrawn}
    keep["reviews"] = [r for r in keep["reviews"] if r.story_id not in gone]
    return snapshot.model_copy(update=keep)


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


def positionality(snapshot, study, policy, out: Path, judgments: Path | None = None, coding_folder: Path | None = None,
                  coding_round: str | None = None) -> dict:  # fmt: skip
    import numpy as np
    import pandas as pd
    from scipy import stats

    from codigit.analysis.groups import FREQUENCY_COLUMNS, author_groups, code_frequencies
    from codigit.analysis.language import distinctive
    from codigit.analysis.metrics import text_metrics
    from codigit.analysis.positionality_page import render
    from codigit.analysis.stats import benjamini_hochberg
    from codigit.coding.export import group_questions
    from codigit.coding.rounds import consented_stories
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

    # the stories read from here on: consented authors only (a snapshot holds no withdrawn participant's)
    stories = list(consented_stories(snapshot).values())
    answers = {p.participant: p.answers for p in snapshot.positionality}
    suppressed: list[str] = []
    authors = {s.author for s in stories}
    by_author = author_groups(answers, group_questions(study), authors, k, suppressed)
    # A group is compared with everyone else who wrote. Those without a usable answer (or whose answer was pooled
    # out) belong to the rest only when they are k or more: else subtracting the groups shown from the rest would
    # describe them, and with them a left-out answer.
    compared = {}
    for question, members in by_author.items():
        without = authors - set(members)
        compared[question] = {**members, **{a: [] for a in (without if len(without) >= k else ())}}

    features = {s.story_id: text_metrics(s.story) for s in stories}
    story_rows = []
    for question, members in by_author.items():
        for group in sorted({g for gs in members.values() for g in gs}):
            writers = [a for a, gs in members.items() if group in gs]
            values = pd.DataFrame([features[s.story_id] for s in stories if s.author in writers])
            story_rows.append({"question": question, "group": group, "authors": len(writers),
                               "stories": len(values), **values.mean().round(4).to_dict()})  # fmt: skip
    stories_frame = pd.DataFrame(story_rows)

    coding, codes_frame = None, pd.DataFrame(columns=FREQUENCY_COLUMNS)
    if coding_round is not None:
        coding, reconciled, names = read_coding(coding_folder, coding_round, {s.story_id for s in stories})
        coded = [(s.story_id, s.author, frozenset(reconciled[s.story_id])) for s in stories if s.story_id in reconciled]
        codes_frame = code_frequencies(coded, compared, names, k=k)
        coding["stories"] = len(coded)
    terms, excerpts = distinctive([(s.story_id, s.author, s.story) for s in stories], compared, k=k)

    model_frame = judged_by_group(judgments, groups, k) if judgments is not None else pd.DataFrame()

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tables = {"ratings": ratings_frame, "stories": stories_frame, "codes": codes_frame, "language": terms,
              "excerpts": excerpts, **({"model": model_frame} if judgments is not None else {})}  # fmt: skip
    for name, frame in tables.items():
        atomic_write(out / f"positionality_{name}.csv", frame.to_csv(index=False))
    summary = {"snapshot": snapshot.meta.snapshot_id, "authors": len({s.author for s in stories}),
               "stories": len(stories), "people_with_positionality": len(answers),
               "questions": group_questions(study),
               "excluded": {"stories of people without a valid consent": len(snapshot.stories) - len(stories),
                            "stories of people who withdrew": snapshot.meta.excluded.get("stories_withdrawn", 0),
                            "about-you answers their owners did not allow to be used":
                                snapshot.meta.excluded.get("positionality_not_for_use", 0)}}  # fmt: skip
    page = render(k, summary, ratings_frame, stories_frame, codes_frame, terms, excerpts,
                  model_frame if judgments is not None else None, coding, suppressed)  # fmt: skip
    atomic_write(out / "positionality.html", page)
    return {"groups": len(groups), "rating_rows": len(ratings_frame), "story_rows": len(stories_frame),
            "code_rows": len(codes_frame), "term_rows": len(terms), "model_rows": len(model_frame)}  # fmt: skip


def read_coding(folder: Path, round_name: str, stories: set[str]) -> tuple[dict, dict[str, list[str]], list[str]]:
    """(what the page says about the round, story id -> reconciled codes, the codebook's code names), over the
    `stories` that may be read now: a story whose author withdrew since the round leaves every figure."""
    from collections import Counter

    from codigit.agreement import N_BOOT
    from codigit.coding.codebook import NONE
    from codigit.coding.export import read_reconciled
    from codigit.coding.reconcile import agreement_rows, kept_codebook
    from codigit.coding.rounds import Coding, read_lines, read_round, round_dir

    info = read_round(folder, round_name)
    codebook = kept_codebook(folder, info)
    kept = [r for r in read_reconciled(folder, round_name) if r.story_id in stories]
    path = round_dir(folder, round_name) / "codings.jsonl"
    codings = [c for c in read_lines(path, Coding, "a round's codings") if c.story_id in stories and
               c.coder in info.coders] if path.exists() else []  # fmt: skip
    alpha = [{"code": r["label"], "alpha": r["alpha"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
              "n_items": r["n_items"]} for r in agreement_rows(codings, codebook, N_BOOT, 0)
             if r["label"] != NONE] if codings else []  # fmt: skip
    coding = {"round": round_name, "codebook_version": codebook.version, "coders": len(info.coders),
              "alpha": alpha, "reconciled": dict(Counter(r.how for r in kept))}  # fmt: skip
    return coding, {r.story_id: [c for c in r.codes if c != NONE] for r in kept}, codebook.names


def latest_reconciled(folder: Path) -> str | None:
    """The round reconciled most recently in `folder`, if any."""
    done = sorted(Path(folder).glob("*/reconciled.jsonl"), key=lambda p: p.stat().st_mtime)
    return done[-1].parent.name if done else None


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
