"""Which records a search matches, and how it scores them: text (FTS5 bm25 on SQLite, ts_rank on PostgreSQL),
filters, and exact cosine similarity over vectors. A part of `search.SQLSearchEngine`, kept apart for length."""

from __future__ import annotations

import numpy as np
from argilla_server.enums import SimilarityOrder
from argilla_server.errors.future import UnprocessableEntityError
from argilla_server.models import Dataset, Field, Record, Vector, VectorSettings
from argilla_server.search_engine.base import Filter, SearchResponseItem, SearchResponses, TextQuery
from sqlalchemy import Float, Integer, bindparam, func, literal, select, text
from sqlalchemy.sql import ColumnElement, Select

from codigit.server.sqltext import fts5_query, fts5_ranked_sql, pg_tsquery


# private: listed in codigit/upstream.py
class Matching:
    """Mixed into `SQLSearchEngine`, whose `dialect`, `sql` (FilterSQL) and `_all` (run a query) it uses."""

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
