"""A participant's place in the study, read from argilla-server's database for the study home page.

Every state here comes from the participant's own Argilla responses and the same rules `collect` applies
(codigit.rules), so what the page says counts is what the next snapshot takes.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from codigit.languages import Localised
from codigit.rules import clean_text, consent_rule, contribution_rule, story_rule
from codigit.server import submit_rules
from codigit.server.sqlfilters import enum_value
from codigit.study import Study

_BOLD = re.compile(r"\*\*(.+?)\*\*")


def _when(at) -> str | None:
    return at.replace(tzinfo=at.tzinfo or UTC).isoformat() if at is not None else None


async def _own_forms(db: AsyncSession, user) -> list[tuple]:
    """(dataset id, dataset name, record id, external id, fields, response id, status, values, updated) for every
    record in the participant's own workspace, with their response to it if any."""
    from argilla_server.models import Dataset, Record, Response, Workspace

    # private: listed in codigit/upstream.py
    mine = select(Response).where(Response.user_id == user.id).subquery()
    rows = await db.execute(
        select(Dataset.id, Dataset.name, Record.id, Record.external_id, Record.fields, mine.c.id, mine.c.status,
               mine.c["values"], mine.c.updated_at)
        .join(Workspace, Workspace.id == Dataset.workspace_id)
        .join(Record, Record.dataset_id == Dataset.id)
        .outerjoin(mine, mine.c.record_id == Record.id)
        .where(Workspace.name == user.username)
        .order_by(Record.inserted_at)
    )  # fmt: skip
    return list(rows.all())


def _consent_state(rows: list[tuple], study: Study, shown: Localised) -> dict[str, Any]:
    spec = study.consent
    current = f"consent-{spec.version}"
    records = {r[3]: r for r in rows}
    answered = [r for r in rows if enum_value(r[6]) == "submitted"]
    latest = max(answered, key=lambda r: r[8]) if answered else None
    state: dict[str, Any] = {
        "dataset_id": str(records[current][0]) if current in records else None,
        "record_id": str(records[current][2]) if current in records else None,
        "response_id": str(records[current][5]) if current in records and records[current][5] else None,
        "version": spec.version,
        "questions": [q.model_dump(include={"name", "type", "title", "description", "labels", "required"})
                      for q in shown.consent_questions],
        "max_name_chars": spec.max_name_chars,
        "state": "none",
        "values": {},
    }  # fmt: skip
    if latest is not None:
        values = submit_rules.answers(latest[7])
        broken = consent_rule(values, spec)
        state.update(
            values=values,
            given_at=_when(latest[8]),
            answered_version=latest[3].removeprefix("consent-"),
            state="invalid" if broken else "again" if latest[3] != current else "given",
            problem=broken and shown.texts[f"rules.{broken.rule}"].format(**broken.values),
        )
    return state


def _story_states(rows: list[tuple], study: Study, consent_ok: bool, withdrawn: bool, words: dict) -> list[dict]:
    stories = []
    for dataset_id, _, record_id, external_id, fields, _, status, values, updated in rows:
        status = enum_value(status)
        if status not in ("submitted", "draft", "discarded"):
            continue
        answers = submit_rules.answers(values)
        bold = _BOLD.search((fields or {}).get("invitation", ""))
        broken = story_rule(answers.get("prompt"), answers.get("story"), study.stories)
        if status == "draft":
            state = "draft"
        elif status == "discarded":
            state = "discarded"
        elif broken:
            state = "broken"
        elif not consent_ok:
            state = "no_consent"
        else:
            state = "counts"
        stories.append({
            "id": str(record_id), "dataset_id": str(dataset_id), "invitation": external_id,
            "invitation_title": bold.group(1) if bold else external_id, "prompt": clean_text(answers.get("prompt")),
            "story": clean_text(answers.get("story")),
            "state": "withdrawn" if withdrawn else state, "updated_at": _when(updated),
            "problem": words[f"rules.{broken.rule}"].format(**broken.values) if broken else None,
        })  # fmt: skip
    return stories


async def _rounds(db: AsyncSession, user, study: Study, own: dict[str, set[str]], closed: dict[str, str]) -> list[dict]:
    """Each review round (of stories, and of texts when the study reviews them): how many the participant reviewed,
    and how many are waiting for them. `own`: the participant's own dataset -> its record ids, which no queue
    holds for them."""
    from argilla_server.models import Dataset, Record, Response, Workspace

    datasets = await db.execute(
        select(Dataset.id, Dataset.name)
        .join(Workspace, Workspace.id == Dataset.workspace_id)
        .where(Workspace.name == study.workspace)
        .order_by(Dataset.inserted_at)
    )
    rounds = []
    for dataset_id, name in datasets.all():
        if (kind := study.review_round(name)) is None:
            continue
        copies, name = kind
        mine = select(Response.record_id).where(Response.user_id == user.id)
        done = await db.scalar(
            select(func.count()).select_from(Record).where(Record.dataset_id == dataset_id, Record.id.in_(
                mine.where(Response.status == "submitted")))
        )  # fmt: skip
        waiting = await db.scalar(
            select(func.count()).select_from(Record).where(
                Record.dataset_id == dataset_id, Record.status == "pending", Record.id.not_in(mine),
                Record.external_id.not_in(own.get(copies, set())))
        )  # fmt: skip
        texts = copies != study.stories.dataset
        rounds.append({"round": name, "dataset_id": str(dataset_id), "done": done, "texts": texts,
                       "waiting": 0 if name in closed else waiting, "closed_at": closed.get(name)})  # fmt: skip
    return rounds


async def _feedback(
    db: AsyncSession, study: Study, own: dict[str, tuple], closed: dict[str, str], withdrawn: set[str], shown: Localised
):
    """Anonymous reviews of the participant's stories (id -> (prompt, story) now) in closed rounds, by other
    participants, of the text as it is now: rating, decision and comment (never who, never flags)."""
    from argilla_server.models import Dataset, Record, Response, User, Workspace

    prefix = study.review.dataset_prefix + "-"
    rows = await db.execute(
        select(Dataset.name, Record.external_id, Record.fields, Response.values, User.username)
        .join(Workspace, Workspace.id == Dataset.workspace_id)
        .join(Record, Record.dataset_id == Dataset.id)
        .join(Response, Response.record_id == Record.id)
        .join(User, User.id == Response.user_id)
        .where(Workspace.name == study.workspace, Dataset.name.in_([prefix + r for r in closed]),
               Record.external_id.in_(own), Response.status == "submitted", User.role == "annotator")
        .order_by(Dataset.name, Response.updated_at)
    )  # fmt: skip
    questions = {q.name: q for q in shown.review_questions}  # the decision in the participant's language
    by_story: dict[str, list[dict]] = defaultdict(list)
    for dataset, story_id, fields, values, reviewer in rows.all():
        if reviewer in withdrawn or (fields.get("prompt"), fields.get("story")) != own[story_id]:
            continue  # a withdrawn reviewer's, or a review of an earlier text
        a = submit_rules.answers(values)
        decision = a.get("decision")
        by_story[story_id].append({
            "round": dataset[len(prefix) :], "rating": a.get("rating"),
            "decision": (questions["decision"].labels or {}).get(decision, decision),
            "comment": (a.get("comment") or "").strip(),
        })  # fmt: skip
    return by_story


async def home_state(db: AsyncSession, user, study: Study, shown: Localised, closed: dict[str, str]) -> dict[str, Any]:
    """Everything the study home shows a participant, in their own terms and language."""
    words = shown.texts
    rows = await _own_forms(db, user)
    by_dataset: dict[str, list[tuple]] = defaultdict(list)
    for row in rows:
        by_dataset[row[1]].append(row)
    left = await submit_rules.withdrawals(db, study)
    consent = _consent_state(by_dataset[study.consent.dataset], study, shown)
    stories = _story_states(
        by_dataset[study.stories.dataset], study, consent["state"] in ("given", "again"), user.username in left, words
    )
    own = {s["id"] for s in stories}
    about = by_dataset[study.positionality.dataset]
    feedback = {}
    if study.review.feedback_to_authors and closed and own:
        texts = {s["id"]: (s["prompt"], s["story"]) for s in stories}
        feedback = await _feedback(db, study, texts, closed, set(left), shown)
    for story in stories:
        story["feedback"] = feedback.get(story["id"], [])
    story_forms = by_dataset[study.stories.dataset]
    own_records = {name: {str(r[2]) for r in rows} for name, rows in by_dataset.items()}
    texts = None
    if study.contributions is not None:  # the study asks for whole texts too
        forms = by_dataset[study.contributions.dataset]
        given = [submit_rules.answers(r[7]) for r in forms if enum_value(r[6]) == "submitted"]
        counting = sum(contribution_rule(v, study.contributions) is None for v in given)
        consented = consent["state"] in ("given", "again")
        texts = {"dataset_id": str(forms[0][0]) if forms else None, "given": len(given),
                 "counting": counting if consented else 0, "slots": len(forms)}  # fmt: skip
    return {
        "username": user.username,
        "withdrawn_at": left.get(user.username),
        "consent": consent,
        "about": {
            "dataset_id": str(about[0][0]) if about else None,
            "state": "done" if any(enum_value(r[6]) == "submitted" for r in about) else "todo",
        },
        "stories": stories,
        "stories_dataset_id": str(story_forms[0][0]) if story_forms else None,
        "contributions": texts,  # ("texts" is the page's words)
        "rounds": await _rounds(db, user, study, own_records, closed),
        "feedback_to_authors": study.review.feedback_to_authors,
    }
