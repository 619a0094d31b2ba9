"""The study's rules where the participant is: the embedded server refuses, when it is sent, an answer that would
not count, and says why in the study's words.

Every way the UI sends an answer (`POST /records/{id}/responses`, `PUT /responses/{id}`, bulk mode's
`POST /me/responses/bulk`) ends in one of argilla-server's `create_response`, `update_response` or
`upsert_response`; each is wrapped here, so a rule holds for every client. Refused are:
- a submitted story or consent answer that `collect` would leave out (codigit.rules decides both times);
- any answer in a review round to a copy of one's own story (a self-review), or in a round the organisers closed;
- any answer from a participant who has withdrawn.
Drafts and discards of one's own stories are kept: they never count, and the study home says so.
Nothing is written when an answer is refused: the check runs before argilla-server touches the database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from argilla_server.errors.future import UnprocessableEntityError
from fastapi.encoders import jsonable_encoder
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from codigit.rules import Broken, consent_rule, contribution_rule, story_rule
from codigit.server import deployed
from codigit.server.sqlfilters import enum_value
from codigit.study import Study

WRAPPED = ("create_response", "update_response", "upsert_response")
# There is no study to take words from when this is said: the study team sees the cause in the server's log.
UNAVAILABLE = (
    "The study's settings cannot be read on the server just now, so nothing was saved. Please tell the study team."
)


# private: listed in codigit/upstream.py
class Refused(UnprocessableEntityError):
    """A 422 whose detail is the participant's message (also as str(), which bulk mode reports per item)."""

    def __init__(self, message: str):
        Exception.__init__(self, message)
        self.message, self.code = message, "codigit_rule"


def install(home: Path) -> None:
    from argilla_server.contexts import datasets

    # private: listed in codigit/upstream.py
    originals = {name: getattr(datasets, name) for name in WRAPPED}

    async def create_response(db, search_engine, record, user, response_create):
        await check(home, db, record.id, user, response_create)
        return await originals["create_response"](db, search_engine, record, user, response_create)

    async def update_response(db, search_engine, response, response_update):
        from argilla_server.models import User

        user = await db.get(User, response.user_id)
        await check(home, db, response.record_id, user, response_update)
        return await originals["update_response"](db, search_engine, response, response_update)

    async def upsert_response(db, search_engine, record, user, response_upsert):
        await check(home, db, record.id, user, response_upsert)
        return await originals["upsert_response"](db, search_engine, record, user, response_upsert)

    for wrapper in (create_response, update_response, upsert_response):
        setattr(datasets, wrapper.__name__, wrapper)


def answers(values: Any) -> dict[str, Any]:
    """{question: value} from a response body's or a stored response's values."""
    return {k: v.get("value") for k, v in (jsonable_encoder(values) or {}).items() if isinstance(v, dict)}


async def where(db: AsyncSession, record_id) -> tuple[str, str, str | None]:
    """(workspace name, dataset name, record external id) of a record."""
    from argilla_server.models import Dataset, Record, Workspace

    row = await db.execute(
        select(Workspace.name, Dataset.name, Record.external_id)
        .join(Dataset, Dataset.workspace_id == Workspace.id)
        .join(Record, Record.dataset_id == Dataset.id)
        .where(Record.id == record_id)
    )
    return tuple(row.one())  # type: ignore[return-value]


async def own_story_ids(db: AsyncSession, username: str, stories_dataset: str, user_id) -> set[str]:
    """Ids of the authoring records this user answered in their own stories form: a review record's external id
    is its story's id, so these are the review copies of their own stories."""
    from argilla_server.models import Dataset, Record, Response, Workspace

    rows = await db.execute(
        select(Record.id)
        .join(Response, Response.record_id == Record.id)
        .join(Dataset, Dataset.id == Record.dataset_id)
        .join(Workspace, Workspace.id == Dataset.workspace_id)
        .where(Response.user_id == user_id, Dataset.name == stories_dataset, Workspace.name == username)
    )
    return {str(r) for (r,) in rows}


async def withdrawals(db: AsyncSession, study: Study) -> dict[str, str]:
    """Withdrawn participants -> when, from the ledger in the organisers' workspace."""
    from argilla_server.models import Dataset, Record, Workspace

    rows = await db.execute(
        select(Record.fields)
        .join(Dataset, Dataset.id == Record.dataset_id)
        .join(Workspace, Workspace.id == Dataset.workspace_id)
        .where(Workspace.name == study.organiser_workspace, Dataset.name == study.ledger_dataset)
    )
    return {f["participant"]: f.get("at", "") for (f,) in rows if f.get("event") == "withdrawal"}


def is_participant(user) -> bool:
    return user is not None and enum_value(user.role) == "annotator"


async def check(home: Path, db: AsyncSession, record_id, user, body) -> None:
    """Raise Refused if this answer breaks one of the study's rules."""
    if not is_participant(user):
        return  # organisers trying a form: Argilla's own rules only
    try:
        deployed_study = deployed.current_study(home)
    except deployed.StudyUnavailable:  # logged; refused rather than stored without the study's rules
        raise Refused(UNAVAILABLE) from None
    if deployed_study is None:
        return  # before the first `init`: there are no study forms to answer
    study = deployed_study[0]
    workspace, dataset, external_id = await where(db, record_id)
    broken: Broken | None = None
    submitted = enum_value(body.status) == "submitted"
    if user.username in await withdrawals(db, study):
        broken = Broken("withdrawn")
    elif workspace == user.username and submitted and dataset == study.stories.dataset:
        values = answers(body.values)
        broken = story_rule(values.get("prompt"), values.get("story"), study.stories)
    elif (workspace == user.username and submitted and study.contributions is not None
          and dataset == study.contributions.dataset):  # fmt: skip
        broken = contribution_rule(answers(body.values), study.contributions)
    elif workspace == user.username and submitted and dataset == study.consent.dataset:
        broken = consent_rule(answers(body.values), study.consent)
    elif workspace == study.research_workspace and dataset in (coders := deployed.round_coders(home)):
        if user.username not in coders[dataset]:  # a coding round is answered by its own coders only
            broken = Broken("not_a_coder")
    elif workspace == study.workspace and (kind := study.review_round(dataset)) is not None:
        own_dataset, round_name = kind
        if round_name in deployed.closed_rounds(home):
            broken = Broken("round_closed")
        elif external_id in await own_story_ids(db, user.username, own_dataset, user.id):
            broken = Broken("own_story" if own_dataset == study.stories.dataset else "own_text")
    if broken is not None:
        shown = deployed.words(home, deployed.participant_languages(home).get(user.username))
        raise Refused(shown.texts[f"rules.{broken.rule}"].format(**broken.values))
