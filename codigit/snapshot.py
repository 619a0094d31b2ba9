"""Typed, pseudonymous snapshot records from the rows `codigit collect` reads out of Argilla's database.

Pure (rows in, a `Snapshot` out), so it is tested and benchmarked without a server. Only submitted answers count;
in a participant's own workspace only their own answers count; everything of a withdrawn participant is left out
(and counted), except the flags they raised as a reviewer: those stay, as anonymous counts on each story, for the
release's gates.
"""

from __future__ import annotations

import gc
import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from codigit import __version__
from codigit.collectives import from_ledger as collectives_from
from codigit.contributions import IMPORT_DATASET, from_rows
from codigit.records import (
    Consent,
    Positionality,
    Problem,
    Review,
    Snapshot,
    SnapshotMeta,
    Story,
    Withdrawal,
    utc_now,
)
from codigit.rules import clean_text as _text
from codigit.rules import consent_rule, credit_name, story_rule, text_sha
from codigit.study import PREFER_NOT, Study
from codigit.text_reviews import text_reviews_from_rows

if TYPE_CHECKING:
    import argilla as rg


def _json(value: Any) -> dict:
    return json.loads(value) if isinstance(value, str | bytes) else (value or {})


def _json_once(value: Any, seen: dict) -> dict:
    """`_json`, once per text: a review round's record comes in one row for each reviewer who answered it."""
    if not isinstance(value, str):
        return _json(value)
    if (parsed := seen.get(value)) is None:
        parsed = seen[value] = _json(value)
    return parsed


def _time(value: Any) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # argilla stores naive UTC
    value = value.astimezone(UTC)
    if value.year < 1000:  # isoformat would pad the year; for all others it writes what strftime does, faster
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.isoformat(timespec="microseconds")[:-6] + "Z"


def _answers(values: Any) -> dict[str, Any]:
    return {k: v.get("value") for k, v in _json(values).items() if isinstance(v, dict)}


KEPT_FLAGS = "kept_flags"  # the ledger event that keeps a withdrawing reviewer's flags


class KeptFlags(BaseModel):
    """One review's flags, kept in the ledger when its reviewer withdraws (their review itself is deleted)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    story_id: str
    text_sha: str  # of the text they flagged: a flag on an earlier version does not stop the current one
    flags: list[str]


def kept_flags(datasets: Iterable[rg.Dataset], user: rg.User) -> list[dict]:
    """Ledger records keeping the flags `user` raised in these review rounds; `participants.withdraw` logs them
    before it deletes that person's reviews, so a story they flagged as harmful or holding personal data is
    still stopped after they leave. Only flags are kept, never a rating, decision, theme or comment. The
    record ids are stable, so withdrawing again (to finish an interrupted withdrawal) overwrites, never adds.

    The ledger's fields cannot change once created (Argilla), so the flags travel as JSON in its `reason`."""
    out = []
    for dataset in datasets:
        for record in dataset.records(with_responses=True):
            for response in record.responses["flags"]:
                status = str(getattr(response.status, "value", response.status))
                if str(response.user_id) != str(user.id) or status != "submitted" or not response.value:
                    continue
                texts = ("prompt", "story") if "prompt" in record.fields else ("title", "text")  # a story, a text
                sha = text_sha(*(record.fields[name] for name in texts))
                kept = KeptFlags(story_id=str(record.id), text_sha=sha, flags=sorted(response.value))
                out.append({
                    "id": f"flags-{user.username}-{dataset.name}-{record.id}", "event": KEPT_FLAGS,
                    "participant": user.username, "at": utc_now(), "reason": kept.model_dump_json(),
                })  # fmt: skip
    return out


@contextmanager
def paused_gc() -> Iterator[None]:
    """Python's cyclic garbage collector off while a stage makes hundreds of thousands of records that all stay
    alive: it would walk them again and again (40% of a 100,000-story collect) and find nothing to free."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@paused_gc()
def build_snapshot(rows: Iterable[tuple], study: Study, source: str, snapshot_id: str | None = None) -> Snapshot:
    """Typed, pseudonymous records from raw rows (workspace, dataset, record id, external id, fields, username,
    role, values, time): pure, so it is tested and benchmarked without a server."""
    prefix = study.review.dataset_prefix + "-"
    stories_raw, consent_raw, about_raw, review_raw, ledger = [], defaultdict(list), {}, [], []
    texts_raw, imported = [], []
    texts = study.contributions.dataset if study.contributions else None
    texts_review = study.contributions.review if study.contributions else None
    texts_prefix, text_review_raw = texts_review.dataset_prefix + "-" if texts_review else None, []
    seen: dict[str, dict] = {}
    for workspace, dataset, record_id, external_id, fields, user, role, values, at in rows:
        if workspace == study.organiser_workspace and dataset == study.ledger_dataset:
            ledger.append(_json(fields))
        elif workspace == study.organiser_workspace and dataset == IMPORT_DATASET:
            imported.append(_json(fields))
        elif workspace == study.workspace and dataset.startswith(prefix):
            if role == "annotator":  # an organiser trying the form is not a reviewer
                review_raw.append((dataset[len(prefix) :], external_id, _json_once(fields, seen), user,
                                   _answers(values), at))  # fmt: skip
        elif workspace == study.workspace and texts_prefix and dataset.startswith(texts_prefix):
            if role == "annotator":
                text_review_raw.append((dataset[len(texts_prefix) :], external_id, _json_once(fields, seen), user,
                                        _answers(values), _time(at)))  # fmt: skip
        elif user is None or user != workspace:
            continue  # unanswered, or answered by someone else (an organiser trying the form) in their workspace
        elif dataset == study.stories.dataset:
            story_id = str(uuid.UUID(str(record_id)))
            stories_raw.append((story_id, user, external_id, _answers(values), _time(at)))
        elif dataset == study.consent.dataset:
            consent_raw[user].append((_time(at), external_id, _answers(values)))
        elif dataset == study.positionality.dataset:
            about_raw[user] = (_time(at), _answers(values))
        elif dataset == texts:
            texts_raw.append((str(uuid.UUID(str(record_id))), user, external_id, _answers(values), _time(at)))

    withdrawn = {}
    for entry in ledger:
        if entry.get("event") == "withdrawal" and entry.get("participant"):
            withdrawn.setdefault(entry["participant"], entry.get("at", ""))
    excluded: Counter[str] = Counter()
    problems: list[Problem] = []
    kept: list[tuple[str, KeptFlags]] = []  # (withdrawn reviewer, the flags of one of their reviews)
    for entry in ledger:
        if entry.get("event") == KEPT_FLAGS:
            try:
                kept.append((entry["participant"], KeptFlags.model_validate_json(entry["reason"])))
            except (KeyError, ValidationError):  # a safety signal must not vanish in silence
                message = "unreadable kept flags in the ledger; check that reviewer's flags by hand"
                problems.append(Problem(participant=str(entry.get("participant")), what="review", id="ledger",
                                        message=message))  # fmt: skip

    collective = collectives_from(ledger)
    stories = []
    for story_id, author, invitation, answers, at in sorted(stories_raw):
        if author in withdrawn:
            excluded["stories_withdrawn"] += 1
            continue
        prompt, story = _text(answers.get("prompt")), _text(answers.get("story"))
        if broken := story_rule(prompt, story, study.stories):
            problems.append(Problem(participant=author, what="story", id=story_id, message=broken.organiser_message()))
            excluded["stories_invalid"] += 1
            continue
        stories.append(Story(story_id=story_id, author=author, invitation=invitation, prompt=prompt, story=story,
                             submitted_at=at, collective=collective.get(author)))  # fmt: skip

    consent = []
    for participant, answers in sorted(consent_raw.items()):
        if participant in withdrawn:
            excluded["consent_withdrawn"] += 1
            continue
        at, record, values = max(answers)  # the latest answer, of whichever version they last answered
        try:
            consent.append(_consent(participant, record.removeprefix("consent-"), values, at, study))
        except ValueError as e:
            problems.append(Problem(participant=participant, what="consent", id=record, message=str(e)))
            excluded["consent_invalid"] += 1

    positionality = []
    for participant, (at, answers) in sorted(about_raw.items()):
        if participant in withdrawn:
            excluded["positionality_withdrawn"] += 1
        elif answers.get("use") != "yes":
            excluded["positionality_not_for_use"] += 1
        else:
            positionality.append(
                Positionality(participant=participant, answers=_positionality(answers, study), given_at=at)
            )

    by_id = {s.story_id: s for s in stories}
    changed: set[str] = set()
    reviews = []
    flagged_by: defaultdict[str, defaultdict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for reviewer, k in kept:  # the flags of reviewers who withdrew, on the text they saw if it is still current
        story = by_id.get(k.story_id)
        if (
            reviewer in withdrawn
            and story
            and reviewer != story.author
            and k.text_sha == text_sha(story.prompt, story.story)
        ):
            flagged_by[k.story_id][reviewer].update(k.flags)
    for round_, story_id, fields, reviewer, answers, at in sorted(review_raw, key=lambda r: (r[0], r[1], r[3])):
        story = by_id.get(story_id)
        if reviewer in withdrawn:
            excluded["reviews_by_withdrawn"] += 1
            current = story and (fields.get("prompt"), fields.get("story")) == (story.prompt, story.story)
            if current and reviewer != story.author:  # a review not yet deleted: its flags count, it does not
                flagged_by[story_id][reviewer].update(answers.get("flags") or [])
        elif story is None:
            excluded["reviews_of_excluded_stories"] += 1
        else:
            current = (fields.get("prompt"), fields.get("story")) == (story.prompt, story.story)
            if not current:
                changed.add(story_id)
            try:
                reviews.append(Review(
                    story_id=story_id, round=round_, reviewer=reviewer, rating=answers.get("rating"),
                    decision=answers.get("decision"), themes=sorted(answers.get("themes") or []),
                    flags=sorted(answers.get("flags") or []), comment=_text(answers.get("comment")),
                    self_review=reviewer == story.author, current_text=current, submitted_at=_time(at),
                ))  # fmt: skip
            except ValidationError as e:  # a server whose review form differs from the study's
                message = f"unusable review ({e.errors()[0]['loc'][0]}: {e.errors()[0]['msg']})"
                problems.append(Problem(participant=reviewer, what="review", id=story_id, message=message))
                excluded["reviews_invalid"] += 1
    stories = [  # most stories keep the defaults: no copy for them
        s.model_copy(
            update={"changed_after_review": s.story_id in changed, "withdrawn_flags": _count(flagged_by[s.story_id])}
        )
        if s.story_id in changed or s.story_id in flagged_by
        else s
        for s in stories
    ]

    contributions, broken, left_out = from_rows(texts_raw, imported, set(withdrawn), study)
    contributions, text_reviews, broken_reviews, left_out_reviews = text_reviews_from_rows(
        text_review_raw, contributions, set(withdrawn), kept
    )
    problems += broken + broken_reviews
    excluded.update(left_out)
    excluded.update(left_out_reviews)
    created = utc_now()
    meta = SnapshotMeta(
        snapshot_id=snapshot_id or created.replace("-", "").replace(":", "")[:15] + "Z",
        created_at=created,
        source=source,
        codigit_version=__version__,
        consent_version=study.consent.version,
        counts={"stories": len(stories), "reviews": len(reviews), "consent": len(consent),
                "positionality": len(positionality), "withdrawals": len(withdrawn),
                **({"contributions": len(contributions)} if study.contributions else {}),
                **({"text_reviews": len(text_reviews)} if texts_review else {})},
        excluded=dict(sorted(excluded.items())),
        problems=problems,
    )  # fmt: skip
    return Snapshot(
        meta=meta,
        stories=stories,
        reviews=reviews,
        consent=consent,
        positionality=positionality,
        withdrawals=[
            Withdrawal(participant=p, at=at, story_ids=sorted(s[0] for s in stories_raw if s[1] == p))
            for p, at in sorted(withdrawn.items())
        ],
        contributions=contributions,
        text_reviews=text_reviews,
    )


def _count(flags_by_reviewer: dict[str, set[str]]) -> dict[str, int]:
    """{reviewer: flags} -> {flag: reviewers}: who raised them is not kept."""
    return dict(sorted(Counter(f for flags in flags_by_reviewer.values() for f in flags).items()))


def _consent(participant: str, version: str, values: dict, at: str, study: Study) -> Consent:
    if broken := consent_rule(values, study.consent):
        raise ValueError(broken.organiser_message())
    name = credit_name(values)
    return Consent(
        participant=participant,
        version=version,
        training=values.get("training") == "yes",
        public=values.get("public") == "yes",
        attribution_name=name if values.get("attribution") == "name" else None,  # a name given unasked is not kept
        given_at=at,
    )


def _positionality(answers: dict[str, Any], study: Study) -> dict[str, str | list[str]]:
    out: dict[str, str | list[str]] = {}
    for q in study.positionality.questions:
        value = answers.get(q.name)
        if isinstance(value, str):
            value = _text(value)
        elif isinstance(value, list):
            value = [PREFER_NOT] if PREFER_NOT in value else sorted(value)  # "prefer not to say" wins
        if q.name != "use" and value not in (None, "", []):
            out[q.name] = value
    return out
