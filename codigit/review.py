"""`codigit review open ROUND`: a review round in the shared workspace, from the stories of a fresh snapshot (and,
when the study's texts are reviewed, a round of the same name of the texts given through the form).

A review record is the story's id, prompt and story, and nothing else: no author, no pseudonym, no metadata.
Argilla's task distribution takes each story out of everyone's queue once it has `per_story` submitted reviews.
Rerunning adds stories written since; a story already in a round comes back only if its text changed since.
"""

from __future__ import annotations

import argparse
import os
import re
from typing import TYPE_CHECKING

from codigit.cli_types import Parents, at_least
from codigit.errors import CodigitError
from codigit.rules import text_sha

if TYPE_CHECKING:
    import argilla as rg

    from codigit.records import Snapshot
    from codigit.study import Study


def check_round(round_name: str, per_story: int) -> str:
    from codigit.study import NAME_PATTERN

    if not re.match(NAME_PATTERN, round_name):
        raise CodigitError(f"round {round_name!r}: use lowercase letters, digits, '-' or '_' (e.g. 1, spring)")
    if per_story < 1:
        raise CodigitError("--per-story must be at least 1")
    return round_name


def open_round(client: rg.Argilla, study: Study, snapshot: Snapshot, round_name: str, per_story: int) -> dict:
    """Create or extend the round; returns counts of what was added and why stories were left out."""
    from codigit.languages import shared_review_form

    check_round(round_name, per_story)
    stories = {s.story_id: (s.author, {"prompt": s.prompt, "story": s.story}) for s in snapshot.stories}
    return _open(client, study, snapshot, (study.review.dataset_prefix, round_name), per_story, stories,
                 shared_review_form(study))  # fmt: skip


def open_texts_round(client: rg.Argilla, study: Study, snapshot: Snapshot, round_name: str) -> dict:
    """The same round of the texts given through the form (`contributions.review`): the same rules, in a dataset of
    its own (`open_round` has checked the round's name)."""
    from codigit.languages import shared_review_form

    review = study.contributions.review
    texts = {c.contribution_id: (c.author, {"title": c.title, "text": c.text})
             for c in snapshot.contributions if c.source == "form"}  # fmt: skip
    return _open(client, study, snapshot, (review.dataset_prefix, round_name), review.reviews_per_text, texts,
                 shared_review_form(study, texts=True))  # fmt: skip


def _open(client: rg.Argilla, study: Study, snapshot: Snapshot, round_: tuple[str, str], per_item: int,
          items: dict[str, tuple[str, dict[str, str]]], form: tuple) -> dict:  # fmt: skip
    """Add `items` (record id -> (author, fields)) to the round dataset PREFIX-ROUND (`round_`) in the shared
    workspace; those shown with the same text in any round of this kind come back only if their text changed."""
    from codigit.forms import ensure_dataset, settings, sync_words
    from codigit.study import FieldSpec

    workspace = client.workspaces(study.workspace)
    if workspace is None:
        raise CodigitError(f"workspace {study.workspace!r} does not exist yet: run `codigit init` first")
    titles, questions, guidelines = form  # in every study language: one form for everyone
    prefix, name = round_[0] + "-", "-".join(round_)
    shown: dict[str, set[str]] = {}  # record id -> texts already shown, in any round
    in_this_round: set[str] = set()
    for listed in workspace.datasets:
        if listed.name.startswith(prefix):
            dataset = client.datasets(listed.name, workspace=workspace)  # with its settings, which the list lacks
            for record in dataset.records(with_responses=False):
                shown.setdefault(record.id, set()).add(text_sha(*(record.fields[f] for f in titles)))
                if dataset.name == name:
                    in_this_round.add(record.id)
            if dataset.name == name and dataset.settings.distribution.min_submitted != per_item:
                raise CodigitError(
                    f"round {round_[1]} exists with {dataset.settings.distribution.min_submitted} reviews "
                    f"per {'story' if 'story' in titles else 'text'}; it cannot change now: open a new round"
                )

    consented = {c.participant for c in snapshot.consent}
    invalid = {p.participant for p in snapshot.meta.problems if p.what == "consent"}
    counts = {"added": 0, "already_in_round": 0, "reviewed_before_unchanged": 0, "no_consent_form": 0,
              "invalid_consent": 0}  # fmt: skip
    new = []
    for item_id, (author, fields) in items.items():
        if item_id in in_this_round:
            counts["already_in_round"] += 1
        elif author not in consented:
            counts["invalid_consent" if author in invalid else "no_consent_form"] += 1
        elif text_sha(*fields.values()) in shown.get(item_id, set()):
            counts["reviewed_before_unchanged"] += 1
        else:
            new.append({"id": item_id, **fields})
    counts["added"] = len(new)
    fields = [FieldSpec(name=n, title=t) for n, t in titles.items()]
    dataset, _ = ensure_dataset(client, workspace, name, settings(fields, questions, guidelines, per_item), new)
    sync_words(client, dataset, fields, questions, [])  # a round opened before a change of words or languages
    authors = {item_id: author for item_id, (author, _) in items.items()}
    counts["short_put_back"] = put_back_short(client, dataset, authors, snapshot, per_item)
    counts["dataset"] = f"{study.workspace}/{name}"
    return counts


def put_back_short(client: rg.Argilla, dataset: rg.Dataset, authors: dict[str, str], snapshot: Snapshot,
                   per_story: int) -> int:  # fmt: skip
    """Stories (or texts) Argilla took out of the queues with fewer than `per_story` reviews that count: it counts
    every submitted review, and a self-review (possible on an external Argilla) or the review of a participant who
    withdrew (before withdrawals removed them) does not count. Deleting those puts the story back in the queues;
    returns how many went back. `authors`: record id -> its author."""
    from codigit.forms import responses_in

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


def run_open(args: argparse.Namespace) -> None:
    from codigit.client import argilla_errors, connect
    from codigit.collect import take_snapshot
    from codigit.home import resolve_home
    from codigit.records import counts_line
    from codigit.server.deployed import closed_rounds
    from codigit.study import load_study

    study = load_study(args.study)
    if not os.environ.get("ARGILLA_API_URL") and args.round in closed_rounds(resolve_home(args.home)):
        raise CodigitError(f"review round {args.round} is closed (`review close`): open a new round")
    snapshot = take_snapshot(study, resolve_home(args.home), args.database_url)
    client = connect(args.home)
    per_story = study.review.reviews_per_story if args.per_story is None else args.per_story  # 0 is an error
    texts = study.contributions is not None and study.contributions.review is not None
    if not texts and not study.stories.invitations:
        raise CodigitError("the study asks for no stories and its texts have no `contributions.review`: nothing to "
                           "review")  # fmt: skip
    with argilla_errors():
        opened = [open_round(client, study, snapshot, args.round, per_story)] if study.stories.invitations else []
        if texts:
            opened.append(open_texts_round(client, study, snapshot, check_round(args.round, per_story)))
    for counts in opened:
        print(f"review round {counts.pop('dataset')}: " + counts_line(counts))


def run_close(args: argparse.Namespace) -> None:
    from codigit.client import argilla_errors, study_and_client
    from codigit.home import ensure_writable_home, resolve_home
    from codigit.server.deployed import close_round

    if os.environ.get("ARGILLA_API_URL"):
        raise CodigitError("review close is for the embedded server (`codigit serve`); an external Argilla has no "
                           "closed rounds: delete its review dataset's annotators instead")  # fmt: skip
    study, client = study_and_client(args.study, args.home)
    name = f"{study.review.dataset_prefix}-{args.round}"
    texts = study.contributions.review if study.contributions else None
    with argilla_errors():
        shared = client.workspaces(study.workspace)
        names = [name, *([f"{texts.dataset_prefix}-{args.round}"] if texts else [])]
        if shared is None or not any(client.datasets(n, workspace=shared) for n in names):
            raise CodigitError(f"no review round {args.round!r} (no dataset {study.workspace}/{name})")
    at, new = close_round(ensure_writable_home(resolve_home(args.home)), args.round)
    feedback = "authors now see the anonymous reviews of their stories" if study.review.feedback_to_authors else (
        "authors see no reviews (review.feedback_to_authors is false)")  # fmt: skip
    print(f"review round {args.round} {'closed' if new else 'was already closed'} at {at}: no more reviews are "
          f"taken; {feedback}")  # fmt: skip


def add_parser(sub, parents: Parents) -> None:
    review = sub.add_parser("review", help="peer review rounds")
    rsub = review.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = rsub.add_parser("open", parents=[parents.home, parents.study, parents.database],
                        help="create or extend a review round")  # fmt: skip
    p.add_argument("round", help="a short name for the round, e.g. 1")
    p.add_argument("--per-story", type=at_least(1), help="reviews per story (default: the study's reviews_per_story)")
    p.set_defaults(func=run_open)
    p = rsub.add_parser("close", parents=[parents.home, parents.study],
                        help="close a review round (authors may then see feedback)")  # fmt: skip
    p.add_argument("round", help="the round's name, as given to `review open`")
    p.set_defaults(func=run_close)
