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
from typing import Any

import numpy as np
from argilla_server.enums import MetadataPropertyType, ResponseStatusFilter, SimilarityOrder
from argilla_server.errors.future import UnprocessableEntityError
from argilla_server.models import (
    Dataset,
    Field,
    MetadataProperty,
    Record,
    Response,
    Suggestion,
    User,
    Vector,
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
from sqlalchemy import Float, Integer, String, bindparam, cast, column, func, literal, or_, select, table, text, true
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql import ColumnElement, Select

from codigit.server.sqlfilters import FilterSQL, enum_value
from codigit.server.sqltext import JsonAccess, fts5_query, fts5_ranked_sql, pg_tsquery

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


# private: listed in codigit/upstream.py
@SearchEngine.register(ENGINE_NAME)
class SQLSearchEngine(SearchEngine):
    """Answers argilla-server's searches from its own SQL database (SQLite with FTS5, or PostgreSQL)."""

    def __init__(self) -> None:
        self.dialect = _read_engine().dialect.name
        self.json = JsonAccess(self.dialect)
        self.sql = FilterSQL(self.json)

    @classmethod
    async def new_instance(cls) -> SQLSearchEngine:
        return cls()

    async def close(self) -> None:
        pass  # each query borrows a connection from the engine's own pool (_read_engine) and returns it

    async def _all(self, stmt) -> list:
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

    # The engine reads the dataset's fields and metadata properties itself rather than through `dataset`'s
    # relationships: handlers preload different ones, and a lazy load inside the async engine fails (MissingGreenlet).
    async def _text_query(self, dataset: Dataset, query: TextQuery | str | None) -> TextQuery | None:
        if isinstance(query, str):
            query = TextQuery(q=query)
        if query is not None and query.field:
            found = await self._all(select(Field.id).where(Field.dataset_id == dataset.id, Field.name == query.field))
            if not found:
                raise ValueError(f"Field {query.field} not found in dataset {dataset.id}")
        return query

    async def _numeric_metadata(self, dataset: Dataset, sort: list[Order]) -> set[str]:
        """Names of the dataset's integer and float metadata properties, when the sort needs them."""
        if not any(isinstance(order.scope, MetadataFilterScope) for order in sort):
            return set()
        rows = await self._all(
            select(MetadataProperty.name, MetadataProperty.settings).where(MetadataProperty.dataset_id == dataset.id)
        )
        return {name for name, settings in rows if settings.get("type") != MetadataPropertyType.terms}

    def _matching(
        self, dataset: Dataset, query: TextQuery | None, filter: Filter | None
    ) -> tuple[Select, ColumnElement | None]:
        """SELECT (record id, score) of the dataset's records matching the text query and the filter.

        A value the query cannot use (a bound that is not a number, a date beyond datetime's years, too many terms)
        is the client's mistake: a 422 that says which, not a 500 with a traceback in the server's log.
        """
        try:
            return self._build_matching(dataset, query, filter)
        except ValueError as e:
            raise UnprocessableEntityError(str(e)) from None

    def _build_matching(
        self, dataset: Dataset, query: TextQuery | None, filter: Filter | None
    ) -> tuple[Select, ColumnElement | None]:
        score = None
        stmt = select(Record.id, literal(1.0).label("score")).where(Record.dataset_id == dataset.id)
        if query is not None:
            hits = self._text_hits(dataset, query)
            stmt = select(Record.id, hits.c.score).join(hits, hits.c.record_id == Record.id)
            stmt = stmt.where(Record.dataset_id == dataset.id)
            score = hits.c.score
        if filter is not None:
            stmt = stmt.where(self.sql.where(dataset, filter))
        return stmt, score

    def _text_hits(self, dataset: Dataset, query: TextQuery):
        """(record_id, score) of the dataset's records matching the text query, ranked by bm25 computed from this
        dataset's records alone (see `sqltext.fts5_ranked_sql`: no other dataset's text may move a score)."""
        if self.dialect != "sqlite":
            return self._pg_text_hits(query)
        positive, negative, terms = fts5_query(query.q)
        if positive or negative:
            sql = fts5_ranked_sql(
                per_field=bool(query.field), n_terms=len(terms) if positive else 0, negative=bool(negative)
            )
            params = {"q": positive, "neg": negative, "field": query.field, **{f"t{i}": t for i, t in enumerate(terms)}}
            hits = text(sql).bindparams(
                bindparam("dataset", dataset.id, type_=Record.dataset_id.type),
                *(bindparam(k, v) for k, v in params.items() if f":{k}" in sql),
            )
        else:
            hits = text("SELECT NULL AS docid, NULL AS score WHERE 0")
        hits = hits.columns(docid=Integer, score=Float).subquery("hits")
        docs = text("SELECT docid, record_id FROM codigit_fts_docs").columns(docid=Integer, record_id=Record.id.type)
        docs = docs.subquery("docs")
        return select(docs.c.record_id, hits.c.score).join(hits, hits.c.docid == docs.c.docid).subquery("text_hits")

    def _pg_text_hits(self, query: TextQuery):
        # to_tsvector of the json value indexes its strings only: not the field names, as the text of the json would.
        content = Record.fields.op("->")(query.field) if query.field else Record.fields
        vector = func.to_tsvector("simple", content)
        tsquery = func.to_tsquery("simple", pg_tsquery(query.q) or "''")  # '': no lexemes, no match
        # ts_rank reads only this record's vector and the query (no document counts, no other record): one dataset's
        # scores cannot depend on another dataset's text here either. 1: divided by 1 + log(length), so shorter
        # texts rank higher.
        rank = func.ts_rank(vector, tsquery, 1)
        return (
            select(Record.id.label("record_id"), rank.label("score"))
            .where(vector.op("@@")(tsquery))
            .subquery("text_hits")
        )

    # -- vectors ----------------------------------------------------------------------------------------------------
    async def similarity_search(
        self,
        dataset: Dataset,
        vector_settings: VectorSettings,
        value: list[float] | None = None,
        record: Record | None = None,
        query: TextQuery | str | None = None,
        filter: Filter | None = None,
        max_results: int = 100,
        order: SimilarityOrder = SimilarityOrder.most_similar,
        threshold: float | None = None,
    ) -> SearchResponses:
        """Exact cosine similarity over the dataset's vectors (Elasticsearch's score: (1 + cos) / 2)."""
        if bool(value) == bool(record):
            raise ValueError("Must provide either vector value or record to compute the similarity search")
        excluded = None
        if not value:
            excluded = record.id
            value = record.vector_value_by_vector_settings(vector_settings)
        if not value:
            raise ValueError("Cannot find a vector value to apply with provided info")

        stmt, _ = self._matching(dataset, await self._text_query(dataset, query), filter)
        candidates = stmt.with_only_columns(Record.id).subquery()
        rows = await self._all(
            select(Vector.record_id, Vector.value)
            .join(candidates, candidates.c.id == Vector.record_id)
            .where(Vector.vector_settings_id == vector_settings.id)
        )
        rows = [(rid, vec) for rid, vec in rows if rid != excluded and vec]
        if not rows:
            return SearchResponses(items=[], total=0)
        matrix = np.asarray([vec for _, vec in rows], dtype=np.float64)
        target = np.asarray(value, dtype=np.float64)
        if order == SimilarityOrder.least_similar:
            target = -target
        norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(target)
        cosine = np.divide(matrix @ target, norms, out=np.zeros(len(rows)), where=norms > 0)
        scores = (1.0 + cosine) / 2.0
        best = np.argsort(-scores, kind="stable")[:max_results]
        items = [SearchResponseItem(record_id=rows[i][0], score=float(scores[i])) for i in best]
        if threshold is not None:
            items = [item for item in items if item.score >= threshold]
        return SearchResponses(items=items, total=len(items))
