"""A participant's answer (`POST /api/v1/records/{id}/responses`) stored in one transaction of prepared statements.

argilla-server stores an answer through its ORM: 15 statements in two transactions, each statement built, keyed for
the statement cache and its rows loaded into objects (measured: 16 ms of the server's CPU per answer, most of it in
SQLAlchemy; benchmarks/server_load.py). This ASGI middleware stores the common answer with statements built once,
on the same tables and column types (so every value is stored exactly as the ORM stores it), and answers with
argilla-server's own response schema:

    who is asking (API key or sign-in token)  ->  record, dataset, questions  ->  may this user answer here?
    ->  the study's rules (submit_rules.check, as for every other answer)  ->  no answer of theirs yet?
    ->  argilla-server's validation of the values  ->  insert the answer, touch the dataset, note the annotator,
    set the record's status (overlap strategy)  ->  commit  ->  201 with the stored answer

Anything else goes to argilla-server's own handler, unchanged, with the request body as it came: another database
than SQLite, a webhook listening to the events an answer raises (argilla-server builds and sends them), a body or
header that does not parse, an unknown user or record, a user who may not answer there, an answer the study's rules
refuse, a second answer to the same record, values that fail validation, a distribution strategy other than
overlap. Those requests get argilla-server's exact errors, and nothing was written when they are handed on: the
checks only read, and run in a transaction that is rolled back. The answer and the record's status are committed
together here (argilla-server commits the status in a second transaction after the answer).

`CODIGIT_NATIVE_SUBMIT=0` in the server's environment sends every answer through argilla-server's handler
(native_route.py holds what this shares with native_queue.py).
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from starlette.types import Scope

from codigit.server.native_route import HandOn, NativeRoute, json_headers, may_work_in, signed_in

# events an answer raises in argilla-server; with a webhook listening to any of them, argilla-server stores it
EVENTS = frozenset({"response.created", "record.updated", "record.completed"})


class _Statements:
    """Built once: a statement object reused keeps its cache key, so SQLAlchemy compiles it once."""

    def __init__(self) -> None:
        from argilla_server.models import Dataset, DatasetUser, Question, Record, Response
        from sqlalchemy import bindparam, func, select, update
        from sqlalchemy.dialects.sqlite import insert

        records, datasets = Record.__table__, Dataset.__table__
        questions, responses, dataset_users = Question.__table__, Response.__table__, DatasetUser.__table__
        self.record = (
            select(records.c.fields, records.c.status, records.c.dataset_id, datasets.c.workspace_id,
                   datasets.c.distribution)
            .join(datasets, datasets.c.id == records.c.dataset_id)
            .where(records.c.id == bindparam("record_id"))
        )  # fmt: skip
        self.questions = (
            select(questions.c.name, questions.c.required, questions.c.settings)
            .where(questions.c.dataset_id == bindparam("dataset_id"))
            .order_by(questions.c.inserted_at)
        )
        self.answered = select(responses.c.id).where(
            responses.c.record_id == bindparam("record_id"), responses.c.user_id == bindparam("user_id")
        )
        self.insert = responses.insert()
        # argilla-server's _touch_dataset_last_activity_at: updated_at stays as it was
        self.touch = (
            update(datasets)
            .where(datasets.c.id == bindparam("dataset_id"))
            .values(last_activity_at=bindparam("now"), updated_at=datasets.c.updated_at)
        )
        # DatasetUser.upsert: a new row, or the existing one's updated_at set to now
        self.annotator = (
            insert(dataset_users)
            .values(dataset_id=bindparam("dataset_id"), user_id=bindparam("user_id"), inserted_at=bindparam("now"),
                    updated_at=bindparam("now"))
            .on_conflict_do_update(index_elements=["dataset_id", "user_id"], set_={"updated_at": bindparam("now")})
        )  # fmt: skip
        self.submitted = select(func.count()).where(
            responses.c.record_id == bindparam("record_id"), responses.c.status == bindparam("status")
        )
        self.status = (
            update(records)
            .where(records.c.id == bindparam("record_id"))
            .values(status=bindparam("status"), updated_at=bindparam("now"))
        )


@functools.cache
def _statements() -> _Statements:
    return _Statements()


class NativeSubmit(NativeRoute):
    """Stores the common answer itself (201 with it); hands every other request on unchanged."""

    path = re.compile(r"/api/v1/records/([^/]+)/responses")
    switch = "CODIGIT_NATIVE_SUBMIT"

    async def answer(self, scope: Scope, match: re.Match, body: bytes) -> tuple[int, dict]:
        from argilla_server.api.schemas.v1.responses import Response as ResponseSchema
        from argilla_server.api.schemas.v1.responses import ResponseCreate
        from argilla_server.database import AsyncSessionLocal
        from argilla_server.validators.responses import ResponseCreateValidator
        from fastapi.encoders import jsonable_encoder
        from pydantic import ValidationError

        from codigit.server import hot_path, submit_rules
        from codigit.server.hot_path import question_settings

        headers = json_headers(scope)
        try:
            record_uuid = uuid.UUID(match[1])
            answer = ResponseCreate.model_validate(json.loads(body))
        except (ValueError, ValidationError):  # json.JSONDecodeError is a ValueError
            raise HandOn from None
        sql = _statements()
        async with AsyncSessionLocal() as db:
            conn = await db.connection()
            user = await signed_in(conn, headers)
            row = (await conn.execute(sql.record, {"record_id": record_uuid})).one_or_none()
            if row is None or (row.distribution or {}).get("strategy") != "overlap":
                raise HandOn
            ids = {"record_id": record_uuid, "user_id": user.id}
            if not await may_work_in(conn, user, row.workspace_id):
                raise HandOn
            if EVENTS & await hot_path.wanted_events(db):
                raise HandOn
            try:
                await submit_rules.check(self.home, db, record_uuid, user, answer)
            except submit_rules.Refused:
                raise HandOn from None
            if (await conn.execute(sql.answered, ids)).first() is not None:
                raise HandOn
            questions = [
                SimpleNamespace(name=q.name, required=q.required, parsed_settings=question_settings(q.settings))
                for q in await conn.execute(sql.questions, {"dataset_id": row.dataset_id})
            ]
            record = SimpleNamespace(id=record_uuid, fields=row.fields, dataset=SimpleNamespace(questions=questions))
            try:
                ResponseCreateValidator.validate(answer, record)  # type: ignore[arg-type]
            except Exception:  # argilla-server's validation errors: its handler says them
                raise HandOn from None

            now = datetime.now(UTC).replace(tzinfo=None)  # argilla-server's datetime.utcnow()
            stored = SimpleNamespace(id=uuid.uuid4(), values=jsonable_encoder(answer.values), status=answer.status,
                                     inserted_at=now, updated_at=now, **ids)  # fmt: skip
            content = ResponseSchema.model_validate(stored, from_attributes=True).model_dump(mode="json")
            await self._write(conn, sql, stored, row, now)
            await db.commit()  # the last thing that can fail: after it, only the answer is sent
        return 201, content

    @staticmethod
    async def _write(conn: Any, sql: _Statements, stored: SimpleNamespace, row: Any, now: datetime) -> None:
        """The answer, the dataset's last activity, the annotator's row, and the record's status after the answer."""
        from argilla_server.enums import RecordStatus, ResponseStatus

        await conn.execute(sql.insert, vars(stored))
        await conn.execute(sql.touch, {"dataset_id": row.dataset_id, "now": now})
        await conn.execute(sql.annotator, {"dataset_id": row.dataset_id, "user_id": stored.user_id, "now": now})
        counted = {"record_id": stored.record_id, "status": ResponseStatus.submitted}
        submitted = (await conn.execute(sql.submitted, counted)).scalar_one()
        status = RecordStatus.completed if submitted >= row.distribution["min_submitted"] else RecordStatus.pending
        if status != row.status:  # the ORM writes a status only when it changes
            await conn.execute(sql.status, {"record_id": stored.record_id, "status": status, "now": now})
