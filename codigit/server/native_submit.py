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

`CODIGIT_NATIVE_SUBMIT=0` in the server's environment sends every answer through argilla-server's handler.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PATH = re.compile(r"/api/v1/records/([^/]+)/responses")
# events an answer raises in argilla-server; with a webhook listening to any of them, argilla-server stores it
_LOGGER = logging.getLogger("codigit.server")
EVENTS = frozenset({"response.created", "record.updated", "record.completed"})


class _HandOn(Exception):
    """This request is argilla-server's to answer."""


class _Statements:
    """Built once: a statement object reused keeps its cache key, so SQLAlchemy compiles it once."""

    def __init__(self) -> None:
        from argilla_server.models import Dataset, DatasetUser, Question, Record, Response, User, WorkspaceUser
        from sqlalchemy import bindparam, func, select, update
        from sqlalchemy.dialects.sqlite import insert

        users, records, datasets = User.__table__, Record.__table__, Dataset.__table__
        questions, responses, dataset_users = Question.__table__, Response.__table__, DatasetUser.__table__
        members = WorkspaceUser.__table__
        who = select(users.c.id, users.c.username, users.c.role)
        self.user_by_key = who.where(users.c.api_key == bindparam("key"))
        self.user_by_name = who.where(users.c.username == bindparam("name"))
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
        self.member = select(members.c.id).where(
            members.c.workspace_id == bindparam("workspace_id"), members.c.user_id == bindparam("user_id")
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


class NativeSubmit:
    """ASGI middleware: stores the common answer itself, hands every other request on unchanged."""

    def __init__(self, app: ASGIApp, home: Any):
        self.app, self.home = app, home
        self.enabled = os.environ.get("CODIGIT_NATIVE_SUBMIT", "1") != "0"
        self._statements: _Statements | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = PATH.fullmatch(scope.get("path", "")) if scope["type"] == "http" else None
        if not (self.enabled and match and scope["method"] == "POST"):
            return await self.app(scope, receive, send)
        body = await _read_body(receive)
        if body is None:
            return  # the client left before sending its answer
        try:
            content = await self._store(scope, match.group(1), body)
        except _HandOn:
            return await self.app(scope, _replay(body, receive), send)
        except Exception:  # nothing was committed (SQLite rolls back a failed COMMIT): argilla-server's handler tries
            _LOGGER.exception("storing an answer to record %s failed here; argilla-server's handler tries", match[1])
            return await self.app(scope, _replay(body, receive), send)
        from starlette.responses import JSONResponse

        await JSONResponse(content, status_code=201)(scope, receive, send)

    async def _store(self, scope: Scope, record_id: str, body: bytes) -> dict:
        from argilla_server.api.schemas.v1.responses import Response as ResponseSchema
        from argilla_server.api.schemas.v1.responses import ResponseCreate
        from argilla_server.database import AsyncSessionLocal
        from argilla_server.enums import UserRole
        from argilla_server.validators.responses import ResponseCreateValidator
        from fastapi.encoders import jsonable_encoder
        from pydantic import ValidationError

        from codigit.server import hot_path, submit_rules
        from codigit.server.hot_path import question_settings

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise _HandOn
        try:
            record_uuid = uuid.UUID(record_id)
            answer = ResponseCreate.model_validate(json.loads(body))
        except (ValueError, ValidationError):  # json.JSONDecodeError is a ValueError
            raise _HandOn from None
        sql = self._statements = self._statements or _Statements()
        async with AsyncSessionLocal() as db:
            conn = await db.connection()
            user = await _user(conn, sql, headers)
            row = (await conn.execute(sql.record, {"record_id": record_uuid})).one_or_none()
            if row is None or (row.distribution or {}).get("strategy") != "overlap":
                raise _HandOn
            ids = {"record_id": record_uuid, "user_id": user.id}
            if (
                user.role != UserRole.owner
                and (await conn.execute(sql.member, {"workspace_id": row.workspace_id, "user_id": user.id})).first()
                is None
            ):
                raise _HandOn
            if EVENTS & await hot_path.wanted_events(db):
                raise _HandOn
            try:
                await submit_rules.check(self.home, db, record_uuid, user, answer)
            except submit_rules.Refused:
                raise _HandOn from None
            if (await conn.execute(sql.answered, ids)).first() is not None:
                raise _HandOn
            questions = [
                SimpleNamespace(name=q.name, required=q.required, parsed_settings=question_settings(q.settings))
                for q in await conn.execute(sql.questions, {"dataset_id": row.dataset_id})
            ]
            record = SimpleNamespace(id=record_uuid, fields=row.fields, dataset=SimpleNamespace(questions=questions))
            try:
                ResponseCreateValidator.validate(answer, record)  # type: ignore[arg-type]
            except Exception:  # argilla-server's validation errors: its handler says them
                raise _HandOn from None

            now = datetime.now(UTC).replace(tzinfo=None)  # argilla-server's datetime.utcnow()
            stored = SimpleNamespace(id=uuid.uuid4(), values=jsonable_encoder(answer.values), status=answer.status,
                                     inserted_at=now, updated_at=now, **ids)  # fmt: skip
            content = ResponseSchema.model_validate(stored, from_attributes=True).model_dump(mode="json")
            await self._write(conn, sql, stored, row, now)
            await db.commit()  # the last thing that can fail: after it, only the answer is sent
        return content

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


async def _user(conn: Any, sql: _Statements, headers: dict[str, str]) -> SimpleNamespace:
    """The signed-in user as argilla-server finds them: by API key first, then by a bearer token's username."""
    if key := headers.get("x-argilla-api-key"):
        if found := (await conn.execute(sql.user_by_key, {"key": key})).one_or_none():
            return SimpleNamespace(id=found.id, username=found.username, role=found.role)
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        from argilla_server.security.authentication.jwt import JWT

        try:
            username = JWT.decode(token).get("username")
        except Exception:  # an invalid or expired token: argilla-server's 401
            raise _HandOn from None
        if username and (found := (await conn.execute(sql.user_by_name, {"name": username})).one_or_none()):
            return SimpleNamespace(id=found.id, username=found.username, role=found.role)
    raise _HandOn


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body; None if the client disconnected first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body already read, then whatever the client sends next (its disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def install(app: Any, home: Any) -> None:
    """Innermost middleware, so the writers' queue (sqlite_writes), timing and CORS apply to it as to any request."""
    from starlette.middleware import Middleware

    app.user_middleware.append(Middleware(NativeSubmit, home=home))
