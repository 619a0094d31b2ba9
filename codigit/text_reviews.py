"""Reviews of contributed texts in a snapshot, read as the stories' reviews are (`codigit.snapshot`): a withdrawn
reviewer's review no longer counts but their flags on the text as it still is do, and a text changed since a
round showed it is marked so that the review is not counted for the new text."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from pydantic import ValidationError

from codigit.records import Contribution, Problem, TextReview
from codigit.rules import clean_text, text_sha


def text_reviews_from_rows(
    raw: list[tuple], contributions: list[Contribution], withdrawn: set[str], kept: list[tuple[str, Any]]
) -> tuple[list[Contribution], list[TextReview], list[Problem], dict[str, int]]:
    """`raw`: (round, contribution id, record fields, reviewer, answers, time) of every submitted text review;
    `kept`: (withdrawn reviewer, KeptFlags) from the ledger. Returns the contributions with the flags of withdrawn
    reviewers counted on them, the reviews, the problems found and counts of what was left out."""
    by_id = {c.contribution_id: c for c in contributions}
    flagged_by: defaultdict[str, defaultdict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for reviewer, k in kept:
        c = by_id.get(k.story_id)
        if reviewer in withdrawn and c and reviewer != c.author and k.text_sha == text_sha(c.title, c.text):
            flagged_by[c.contribution_id][reviewer].update(k.flags)
    reviews, problems, excluded = [], [], Counter()
    for round_, cid, fields, reviewer, answers, at in sorted(raw, key=lambda r: (r[0], r[1], r[3])):
        c = by_id.get(cid)
        current = c is not None and (fields.get("title"), fields.get("text")) == (c.title, c.text)
        if reviewer in withdrawn:
            excluded["text_reviews_by_withdrawn"] += 1
            if current and reviewer != c.author:  # not yet deleted: its flags count, the review does not
                flagged_by[cid][reviewer].update(answers.get("flags") or [])
        elif c is None:
            excluded["text_reviews_of_excluded_texts"] += 1
        else:
            try:
                reviews.append(TextReview(
                    contribution_id=cid, round=round_, reviewer=reviewer, decision=answers.get("decision"),
                    flags=sorted(answers.get("flags") or []), comment=clean_text(answers.get("comment")),
                    self_review=reviewer == c.author, current_text=current, submitted_at=at,
                ))  # fmt: skip
            except ValidationError as e:  # a server whose text review form differs from the study's
                message = f"unusable text review ({e.errors()[0]['loc'][0]}: {e.errors()[0]['msg']})"
                problems.append(Problem(participant=reviewer, what="review", id=cid, message=message))
                excluded["text_reviews_invalid"] += 1
    flagged = [
        c.model_copy(update={"withdrawn_flags": dict(sorted(Counter(
            f for flags in flagged_by[c.contribution_id].values() for f in flags).items()))})
        if c.contribution_id in flagged_by else c
        for c in contributions
    ]  # fmt: skip
    return flagged, reviews, problems, dict(excluded)
