"""Close Argilla 2.8's read gap on the embedded server: annotators see only their own responses.

Upstream, `GET /api/v1/records/{id}` is allowed for any workspace member and returns every user's responses and
all of the record's metadata, so one participant can read another's prompt and story by record id (ids leak
through `/me/.../records/search`). Here that route answers annotators with their own response only and with
the metadata properties visible to annotators, as `/me/.../records/search` already does. Owners and admins of
the workspace keep the full view (they run the study). The other routes that return responses are either
owner/admin-only upstream or already scoped to the current user; `tests/test_privacy.py` checks each.
`/me/.../records/search` is also kept from writing the metadata it hides back to the database (see below).

Known and left to the study design (documented in the README): an annotator can still filter their own search by
a metadata property hidden from annotators (an oracle for its values), and `/datasets/{id}/progress` lists every
participant's pseudonym with their counts. codigit's review records carry no author identity in metadata.
"""

from __future__ import annotations

from uuid import UUID

from fastapi import Depends, FastAPI, Security
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import object_session, selectinload

RECORD_PATH = "/records/{record_id}"


def install(api: FastAPI) -> None:
    """Swap argilla-server's `GET /records/{record_id}` for the user-scoped one, in place (same position)."""
    from argilla_server.api.handlers.v1.datasets import records as records_handlers
    from argilla_server.api.policies.v1 import RecordPolicy, authorize
    from argilla_server.api.schemas.v1.records import Record as RecordSchema
    from argilla_server.api.schemas.v1.responses import Response as ResponseSchema
    from argilla_server.database import get_async_db
    from argilla_server.models import Dataset, Record, User
    from argilla_server.security import auth

    async def get_record(
        *,
        db: AsyncSession = Depends(get_async_db),
        record_id: UUID,
        current_user: User = Security(auth.get_current_user),
    ):
        record = await Record.get_or_raise(
            db,
            record_id,
            options=[
                selectinload(Record.dataset).selectinload(Dataset.metadata_properties),
                selectinload(Record.suggestions),
                selectinload(Record.responses),
                selectinload(Record.vectors),
            ],
        )
        await authorize(current_user, RecordPolicy.get(record))
        if await _sees_everything(current_user, record):
            return record
        return RecordSchema.model_validate(record).model_copy(
            update={
                "responses": [
                    ResponseSchema.model_validate(r) for r in record.responses if r.user_id == current_user.id
                ],
                "metadata": await filter_metadata(record, current_user),
            }
        )

    filter_metadata = records_handlers._filter_record_metadata_for_user

    async def filter_metadata_of_detached(record, user):
        # `/me/.../records/search` assigns the filtered metadata to the live ORM record; the session would then
        # write it back (an UPDATE inside a search, which fails under concurrent writes and takes the write lock).
        # The record is only read after this, so detach it first.
        session = object_session(record)
        if session is not None:
            session.expunge(record)
        return await filter_metadata(record, user)

    records_handlers._filter_record_metadata_for_user = filter_metadata_of_detached

    for i, route in enumerate(api.router.routes):
        if isinstance(route, APIRoute) and route.path == RECORD_PATH and "GET" in route.methods:
            api.router.routes.pop(i)
            api.add_api_route(RECORD_PATH, get_record, methods=["GET"], response_model=RecordSchema, tags=route.tags)
            api.router.routes.insert(i, api.router.routes.pop())
            return
    raise RuntimeError(f"argilla-server has no GET {RECORD_PATH} route to scope; is this argilla-server 2.8.0?")


async def _sees_everything(user, record) -> bool:
    return user.is_owner or (user.is_admin and await user.is_member(record.dataset.workspace_id))
