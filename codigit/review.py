"""`codigit review open ROUND`: a review round in the shared workspace, from the stories of a fresh snapshot.

A review record is the story's id, prompt and story, and nothing else: no author, no pseudonym, no metadata.
Argilla's task distribution takes each story out of everyone's queue once it has `per_story` submitted reviews.
Rerunning adds stories written since; a story already in a round comes back only if its text changed since.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from codigit.collect import text_sha
from codigit.errors import CodigitError
from codigit.forms import ensure_dataset, settings, sync_words
from codigit.languages import shared_review_form
from codigit.records import Snapshot
from codigit.study import NAME_PATTERN, FieldSpec, Study

if TYPE_CHECKING:
    import argilla as rg


def open_round(client: rg.Argilla, study: Study, snapshot: Snapshot, round_name: str, per_story: int) -> dict:
    """Create or extend the round; returns counts of what was added and why stories were left out."""
    if not re.match(NAME_PATTERN, round_name):
        raise CodigitError(f"round {round_name!r}: use lowercase letters, digits, '-' or '_' (e.g. 1, spring)")
    if per_story < 1:
        raise CodigitError("--per-story must be at least 1")
    workspace = client.workspaces(study.workspace)
    if workspace is None:
        raise CodigitError(f"workspace {study.workspace!r} does not exist yet: run `codigit init` first")
    name = f"{study.review.dataset_prefix}-{round_name}"
    prefix = study.review.dataset_prefix + "-"

    shown: dict[str, set[str]] = {}  # story id -> texts already shown, in any round
    in_this_round: set[str] = set()
    for listed in workspace.datasets:
        if listed.name.startswith(prefix):
            dataset = client.datasets(listed.name, workspace=workspace)  # with its settings, which the list lacks
            for record in dataset.records(with_responses=False):
                shown.setdefault(record.id, set()).add(text_sha(record.fields["prompt"], record.fields["story"]))
                if dataset.name == name:
                    in_this_round.add(record.id)
            if dataset.name == name and dataset.settings.distribution.min_submitted != per_story:
                raise CodigitError(
                    f"round {round_name} exists with {dataset.settings.distribution.min_submitted} reviews per "
                    f"story; it cannot change now: open a new round"
                )

    consented = {c.participant for c in snapshot.consent}
    invalid = {p.participant for p in snapshot.meta.problems if p.what == "consent"}
    counts = {"added": 0, "already_in_round": 0, "reviewed_before_unchanged": 0, "no_consent_form": 0,
              "invalid_consent": 0}  # fmt: skip
    new = []
    for story in snapshot.stories:
        if story.story_id in in_this_round:
            counts["already_in_round"] += 1
        elif story.author not in consented:
            counts["invalid_consent" if story.author in invalid else "no_consent_form"] += 1
        elif text_sha(story.prompt, story.story) in shown.get(story.story_id, set()):
            counts["reviewed_before_unchanged"] += 1
        else:
            new.append({"id": story.story_id, "prompt": story.prompt, "story": story.story})
    counts["added"] = len(new)
    titles, questions, guidelines = shared_review_form(study)  # in every study language: one form for everyone
    fields = [FieldSpec(name=n, title=t) for n, t in titles.items()]
    dataset, _ = ensure_dataset(client, workspace, name, settings(fields, questions, guidelines, per_story), new)
    sync_words(client, dataset, fields, questions, [])  # a round opened before a change of words or languages
    counts["short_put_back"] = put_back_short(client, dataset, snapshot, per_story)
    counts["dataset"] = f"{study.workspace}/{name}"
    return counts


def put_back_short(client: rg.Argilla, dataset: rg.Dataset, snapshot: Snapshot, per_story: int) -> int:
    """Stories Argilla took out of the queues with fewer than `per_story` reviews that count: it counts every
    submitted review, and a self-review (possible on an external Argilla) or the review of a participant who
    withdrew (before withdrawals removed them) does not count. Deleting those puts the story back in the queues;
    returns how many stories went back."""
    from codigit.participants import responses_in

    authors = {s.story_id: s.author for s in snapshot.stories}
    withdrawn = {w.participant for w in snapshot.withdrawals}
    usernames = {str(u.id): u.username for u in client.users}
    submitted: dict[str, list[dict]] = {}
    for response in responses_in(client, dataset):
        if response["status"] == "submitted":
            submitted.setdefault(response["external_id"], []).append(response)
    put_back = 0
    for story_id, responses in submitted.items():
        uncounted = [r for r in responses if usernames.get(str(r["user_id"])) in (authors.get(story_id), *withdrawn)]
        if uncounted and len(responses) >= per_story > len(responses) - len(uncounted):
            for response in uncounted:
                client.api.http_client.delete(f"/api/v1/responses/{response['id']}").raise_for_status()
            put_back += 1
    return put_back
