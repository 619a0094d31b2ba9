"""Close Argilla 2.8's read gap on the embedded server: annotators see only their own responses.

Upstream, `GET /api/v1/records/{id}` is allowed for any workspace member and returns every user's responses and
all of the record's metadata, so one participant can read another's prompt and story by record id (ids leak
through `/me/.../records/search`). Here that route answers annotators with their own response only and with
the metadata properties visible to annotators, as `/me/.../records/search` already does. Owners and admins of
the workspace keep the full view (they run the study). The other routes that return responses are either
owner/admin-only upstream or already scoped to the current user; `tests/test_privacy.py` checks each.
`/me/.../records/search` is also kept from writing the metadata it hides back to the database (see below).

Upstream, `/datasets/{id}/progress` lists every user who answered in the dataset and `/datasets/{id}/users/progress`
every user's counts, for any member: here annotators get their own entry only (the record totals stay; they are
the dataset's, not a person's). Text search scores come from each dataset's own records (`search.py`), so a
search in one's own dataset says nothing about another dataset's text.

Known and left to the study design (documented in docs/organisers.md, "Privacy and security"): an annotator
can still filter their own search by a metadata property hidden from annotators (an oracle for its values).
codigit's review records carry no author identity in metadata.
"""

from __future__ import annotations

from uuid import UUID

from fastapi import Depends, FastAPI, Security
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import object_session, selectinload

RECORD_PATH = "/records/{record_id}"
PROGRESS_PATH = "/datasets/{dataset_id}/progress"
USERS_PROGRESS_PATH = "/datasets/{dataset_id}/users/progress"


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

    # private: listed in codigit/upstream.py
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
    _replace_get(api, RECORD_PATH, get_record, response_model=RecordSchema)
    _install_progress(api)


def _install_progress(api: FastAPI) -> None:
    """Dataset progress with only the annotator's own entry among the users (owners and admins: everyone's)."""
    from argilla_server.api.policies.v1 import DatasetPolicy, authorize
    from argilla_server.api.schemas.v1.datasets import DatasetProgress, UsersProgress
    from argilla_server.contexts import datasets
    from argilla_server.database import get_async_db
    from argilla_server.models import Dataset, User
    from argilla_server.search_engine import SearchEngine, get_search_engine
    from argilla_server.security import auth

    async def get_dataset_progress(
        *,
        dataset_id: UUID,
        db: AsyncSession = Depends(get_async_db),
        search_engine: SearchEngine = Depends(get_search_engine),
        current_user: User = Security(auth.get_current_user),
    ):
        dataset = await Dataset.get_or_raise(db, dataset_id)
        await authorize(current_user, DatasetPolicy.get(dataset))
        result = await datasets.get_dataset_progress(db, search_engine, dataset)
        if not await _runs(current_user, dataset.workspace_id):
            result["users"] = [user for user in result["users"] if user.id == current_user.id]
        return DatasetProgress(**result)

    async def get_dataset_users_progress(
        *,
        dataset_id: UUID,
        db: AsyncSession = Depends(get_async_db),
        current_user: User = Security(auth.get_current_user),
    ):
        dataset = await Dataset.get_or_raise(db, dataset_id)
        await authorize(current_user, DatasetPolicy.get(dataset))
        progress = await datasets.get_dataset_users_progress(db, dataset)
        if not await _runs(current_user, dataset.workspace_id):
            progress = [entry for entry in progress if entry["username"] == current_user.username]
        return UsersProgress(users=progress)

    _replace_get(api, PROGRESS_PATH, get_dataset_progress, response_model=DatasetProgress)
    _replace_get(api, USERS_PROGRESS_PATH, get_dataset_users_progress, response_model=UsersProgress)


def _replace_get(api: FastAPI, path: str, endpoint, response_model) -> None:
    """Swap argilla-server's GET route at `path` for `endpoint`, in place (same position, tags and options)."""
    # private: listed in codigit/upstream.py
    for i, route in enumerate(api.router.routes):
        if isinstance(route, APIRoute) and route.path == path and "GET" in route.methods:
            api.router.routes.pop(i)
            api.add_api_route(
                path,
                endpoint,
                methods=["GET"],
                response_model=response_model,
                response_model_exclude_unset=route.response_model_exclude_unset,
                tags=route.tags,
            )
            api.router.routes.insert(i, api.router.routes.pop())
            return
    raise RuntimeError(f"argilla-server has no GET {path} route to scope; is this argilla-server 2.8.0?")


async def _runs(user, workspace_id) -> bool:
    """Whether the user runs the study in this workspace (sees every participant), rather than takes part in it."""
    return user.is_owner or (user.is_admin and await user.is_member(workspace_id))


async def _sees_everything(user, record) -> bool:
    return await _runs(user, record.dataset.workspace_id)


def scoped_routes(api: FastAPI) -> list[str]:
    """The routes this module answers (read back for `codigit serve`'s start-up report)."""
    return [f"GET {r.path}" for r in api.router.routes if isinstance(r, APIRoute) and r.endpoint.__module__ == __name__]
