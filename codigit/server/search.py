"""codigit's SQL search engine for argilla-server: the whole `SearchEngine` interface from the same database.

Elasticsearch keeps a second copy of every record and must be told about each change. Here the database *is*
the index: searches read `records`, `responses`, `suggestions` and `vectors` directly, and text search reads
FTS5 tables that triggers keep in step with `records` (see `sqlindex`). So the `index_*`/`update_*`/`delete_*`
hooks have nothing left to do, and the index cannot disagree with the data after a crash or a rollback.

Semantics follow argilla-server's Elasticsearch engine (`search_engine/commons.py`): simple-query-string AND
semantics with bm25 ranking from the searched dataset's own statistics (an Elasticsearch index is one dataset),
terms/range filters over metadata, responses, suggestions and record properties, the per-user "pending" queue,
missing values sorted last, cosine similarity scored as (1 + cos) / 2, and a deterministic per-user order for the
annotation queue (a rotation of the random UUID order, so annotators start at different records, which is what
Elasticsearch's seeded `random_score` is for).
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

from argilla_server.enums import MetadataPropertyType, ResponseStatusFilter
from argilla_server.models import (
    Dataset,
    MetadataProperty,
    Record,
    Response,
    Suggestion,
    User,
    VectorSettings,
)
from argilla_server.search_engine.base import (
    AndFilter,
    Filter,
    FloatMetadataMetrics,
    IntegerMetadataMetrics,
    MetadataFilterScope,
    MetadataMetrics,
    Order,
    RecordFilterScope,
    ResponseFilterScope,
    SearchEngine,
    SearchResponseItem,
    SearchResponses,
    TermsFilter,
    TermsMetrics,
    TextQuery,
)
from argilla_server.settings import settings
from sqlalchemy import Float, Integer, String, cast, column, func, literal, or_, select, table, true
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql import Select

from codigit.server.sqlfilters import FilterSQL, enum_value
from codigit.server.sqlmatch import Matching
from codigit.server.sqltext import JsonAccess

ENGINE_NAME = "codigit-sql"
MAX_TERMS = 2**14  # as Elasticsearch's terms aggregation size in argilla-server


def user_rotation_start(user_id: Any) -> uuid.UUID:
    """Where a user's walk through the random (uuid4) record order begins: stable per user, spread across users."""
    return uuid.UUID(bytes=hashlib.sha256(str(user_id).encode()).digest()[:16])


def text_ranking(dialect: str) -> str:
    """How text search scores records on this database; either way from the searched dataset alone."""
    if dialect == "sqlite":
        return "bm25 from the searched dataset's own statistics"
    return "ts_rank, from each record's own text"


_COUNTS = table(
    "codigit_record_counts",
    column("dataset_id", Record.dataset_id.type),
    column("status", String),
    column("n", Integer),
)


@functools.cache
def _read_engine() -> AsyncEngine:
    """The engine's own connection pool, separate from the one argilla-server's request sessions use.

    A request holds a pooled connection for its whole life and calls the search engine in the middle of it. If the
    engine borrowed from the same pool, N concurrent requests holding all N connections would each wait for an
    N+1th: the pool deadlocks until its timeout (seen at 20 concurrent annotators). Engine connections are only
    ever held for one query, and (WAL mode) SQLite readers do not wait on writers, so this pool cannot deadlock.
    """
    # private: listed in codigit/upstream.py
    pool = {"pool_size": 8, "max_overflow": 8, **settings.database_engine_args}  # PostgreSQL: its own settings
    return create_async_engine(settings.database_url, **pool)


# The connection one search's queries share (a search runs 3 to 5 of them; a checkout of its own each cost a pool
# round trip and a rollback on return), and so they also read one snapshot of the database
_searching: ContextVar[AsyncConnection | None] = ContextVar("codigit_search_connection", default=None)


# private: listed in codigit/upstream.py
@SearchEngine.register(ENGINE_NAME)
class SQLSearchEngine(Matching, SearchEngine):
    """Answers argilla-server's searches from its own SQL database (SQLite with FTS5, or PostgreSQL)."""

    def __init__(self) -> None:
        self.dialect = _read_engine().dialect.name
        self.json = JsonAccess(self.dialect)
        self.sql = FilterSQL(self.json)

    @classmethod
    async def new_instance(cls) -> SQLSearchEngine:
        return cls()

    async def close(self) -> None:
        pass  # a query, or a search's queries together, borrow a connection from the engine's own pool

    async def _all(self, stmt) -> list:
        if (conn := _searching.get()) is not None:
            return list((await conn.execute(stmt)).all())
        async with _read_engine().connect() as conn:
            return list((await conn.execute(stmt)).all())

    async def ping(self) -> bool:
        return (await self._all(select(literal(1))))[0][0] == 1

    async def info(self) -> dict:
        return {"engine": ENGINE_NAME, "database": self.dialect, "text_ranking": text_ranking(self.dialect)}

    # -- index maintenance: the database is the index (see module docstring) ----------------------------------
    async def create_index(self, dataset: Dataset) -> None:
        pass

    async def delete_index(self, dataset: Dataset) -> None:
        pass

    async def configure_metadata_property(self, dataset: Dataset, metadata_property: MetadataProperty) -> None:
        pass

    async def configure_index_vectors(self, vector_settings: VectorSettings) -> None:
        pass

    async def index_records(self, dataset: Dataset, records: Iterable[Record]) -> None:
        pass

    async def partial_record_update(self, record: Record, **update) -> None:
        pass

    async def delete_records(self, dataset: Dataset, records: Iterable[Record]) -> None:
        pass

    async def update_record_response(self, response: Response) -> None:
        pass

    async def delete_record_response(self, response: Response) -> None:
        pass

    async def update_record_suggestion(self, suggestion: Suggestion) -> None:
        pass

    async def delete_record_suggestion(self, suggestion: Suggestion) -> None:
        pass

    # -- progress and metrics -----------------------------------------------------------------------------------
    async def get_dataset_progress(self, dataset: Dataset) -> dict:
        if dataset.is_draft:
            return {}
        counts = await self._status_counts(dataset)
        return {"total": sum(counts.values()), **{status: n for status, n in counts.items() if n}}

    async def _status_counts(self, dataset: Dataset) -> dict[str, int]:
        """Records per status: from the trigger-kept counts on SQLite (see sqlindex), else counted."""
        if self.dialect == "sqlite":
            stmt = select(_COUNTS.c.status, _COUNTS.c.n).where(_COUNTS.c.dataset_id == dataset.id)
        else:
            stmt = select(Record.status, func.count()).where(Record.dataset_id == dataset.id).group_by(Record.status)
        return {enum_value(status): n for status, n in await self._all(stmt)}

    async def get_dataset_user_progress(self, dataset: Dataset, user: User) -> dict:
        """The user's own responses by status (Elasticsearch's nested version also counted co-annotators')."""
        if dataset.is_draft:
            return {}
        rows = await self._all(
            select(Response.status, func.count())
            .join(Record, Record.id == Response.record_id)
            .where(Record.dataset_id == dataset.id, Response.user_id == user.id)
            .group_by(Response.status)
        )
        counts = {enum_value(status): n for status, n in rows}
        return {"total": sum(counts.values()), **counts}

    async def compute_metrics_for(self, metadata_property: MetadataProperty) -> MetadataMetrics:
        dataset_id, name = metadata_property.dataset_id, metadata_property.name
        if metadata_property.type == MetadataPropertyType.terms:
            elems = self.json.elements(Record.metadata_, (name,))
            term = cast(elems.c.value, String)
            rows = await self._all(
                select(term, func.count())
                .select_from(Record)
                .join(elems, true())
                .where(Record.dataset_id == dataset_id, elems.c.value.is_not(None))
                .group_by(term)
                .order_by(func.count().desc(), term)
            )
            values = [TermsMetrics.TermCount(term=str(t), count=n) for t, n in rows[:MAX_TERMS]]
            return TermsMetrics(total=sum(n for _, n in rows), values=values)
        value = cast(self.json.value(Record.metadata_, name), Float)
        lo, hi = (await self._all(select(func.min(value), func.max(value)).where(Record.dataset_id == dataset_id)))[0]
        if metadata_property.type == MetadataPropertyType.integer:
            return IntegerMetadataMetrics(min=None if lo is None else int(lo), max=None if hi is None else int(hi))
        return FloatMetadataMetrics(min=lo, max=hi)

    # -- search -------------------------------------------------------------------------------------------------
    async def search(
        self,
        dataset: Dataset,
        query: TextQuery | str | None = None,
        filter: Filter | None = None,
        sort: list[Order] | None = None,
        offset: int = 0,
        limit: int = 100,
        user_id: str | None = None,
    ) -> SearchResponses:
        async with _read_engine().connect() as conn:
            token = _searching.set(conn)
            try:
                return await self._search(dataset, query, filter, sort, offset, limit, user_id)
            finally:
                _searching.reset(token)

    async def _search(self, dataset, query, filter, sort, offset: int, limit: int, user_id) -> SearchResponses:
        query = await self._text_query(dataset, query)
        stmt, score = self._matching(dataset, query, filter)
        own = await self._copies_of_own_answers(dataset, user_id) if user_id is not None else []
        if own:  # (a record without an external id is nobody's copy: NULL NOT IN would drop it)
            stmt = stmt.where(or_(Record.external_id.is_(None), Record.external_id.not_in(own)))
        total = await self._queue_total(dataset, filter) if query is None and not own else None
        if total is None:
            total = (await self._all(select(func.count()).select_from(stmt.subquery())))[0][0]
        if limit <= 0 or offset >= total:
            return SearchResponses(items=[], total=total)

        if sort:
            ordered = stmt.order_by(*self.sql.order_by(sort, await self._numeric_metadata(dataset, sort)), Record.id)
        elif score is not None:
            ordered = stmt.order_by(score.desc(), Record.id)
        elif user_id is not None:
            return SearchResponses(items=await self._rotated(stmt, user_id, offset, limit), total=total)
        else:
            ordered = stmt.order_by(Record.inserted_at, Record.id)
        rows = await self._all(ordered.offset(offset).limit(limit))
        return SearchResponses(items=[SearchResponseItem(record_id=r[0], score=r[1]) for r in rows], total=total)

    async def _copies_of_own_answers(self, dataset: Dataset, user_id: Any) -> list[str]:
        """External ids of this dataset's records that copy a record the user answered elsewhere: a review round's
        record is keyed by its story's authoring record, so these are the user's own stories, which they must never
        be given to review (the embedded server also refuses such a review: codigit.server.submit_rules)."""
        answered = select(Response.record_id).join(Record, Record.id == Response.record_id)
        answered = answered.where(Response.user_id == user_id, Record.dataset_id != dataset.id)
        ids = [str(r) for (r,) in await self._all(answered)]
        if not ids:
            return []
        present = select(Record.external_id).where(Record.dataset_id == dataset.id, Record.external_id.in_(ids))
        return [r for (r,) in await self._all(present)]

    async def _queue_total(self, dataset: Dataset, filter: Filter | None) -> int | None:
        """The size of the UI's "pending" queue without counting it, or None if `filter` is another query.

        The queue is "no response by this user" (and usually "record pending"): its size is the dataset's count of
        such records (kept by triggers) minus the few the user has answered. Counting the queue itself walks every
        pending record, which at 100k records was most of the request's time.
        """
        parts = filter.filters if isinstance(filter, AndFilter) else [filter]
        queue = [
            f
            for f in parts
            if isinstance(f, TermsFilter)
            and isinstance(f.scope, ResponseFilterScope)
            and f.scope.user is not None
            and f.scope.property == "status"
            and not f.scope.question
            and [enum_value(v) for v in f.values] == [ResponseStatusFilter.pending.value]
        ]
        record_status = [
            f
            for f in parts
            if isinstance(f, TermsFilter) and isinstance(f.scope, RecordFilterScope) and f.scope.property == "status"
        ]
        if (
            self.dialect != "sqlite"
            or len(queue) != 1
            or len(record_status) > 1
            or 1 + len(record_status) != len(parts)
        ):
            return None
        statuses = [str(enum_value(v)) for v in record_status[0].values] if record_status else None
        counts = await self._status_counts(dataset)
        in_scope = sum(n for status, n in counts.items() if statuses is None or status in statuses)
        answered = select(func.count()).where(
            Record.id.in_(select(Response.record_id).where(Response.user_id == queue[0].scope.user.id)),
            Record.dataset_id == dataset.id,
            *([Record.status.in_(statuses)] if statuses is not None else []),
        )
        return in_scope - (await self._all(answered))[0][0]

    async def _rotated(self, stmt: Select, user_id: Any, offset: int, limit: int) -> list[SearchResponseItem]:
        """Records in uuid order starting at the user's own point and wrapping around: two index range scans."""
        start = user_rotation_start(user_id)
        head = await self._all(stmt.where(Record.id >= start).order_by(Record.id).offset(offset).limit(limit))
        rows = list(head)
        if len(rows) < limit:
            skipped = 0
            if offset:
                n_head = await self._all(select(func.count()).select_from(stmt.where(Record.id >= start).subquery()))
                skipped = max(0, offset - n_head[0][0])
            tail = await self._all(
                stmt.where(Record.id < start).order_by(Record.id).offset(skipped).limit(limit - len(rows))
            )
            rows += tail
        return [SearchResponseItem(record_id=r[0], score=r[1]) for r in rows]

    async def _numeric_metadata(self, dataset: Dataset, sort: list[Order]) -> set[str]:
        """Names of the dataset's integer and float metadata properties, when the sort needs them."""
        if not any(isinstance(order.scope, MetadataFilterScope) for order in sort):
            return set()
        rows = await self._all(
            select(MetadataProperty.name, MetadataProperty.settings).where(MetadataProperty.dataset_id == dataset.id)
        )
        return {name for name, settings in rows if settings.get("type") != MetadataPropertyType.terms}
