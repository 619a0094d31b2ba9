"""Argilla's search filters and sorts as SQL over its own tables (SQLite or PostgreSQL).

Semantics follow argilla-server's Elasticsearch engine (`search_engine/commons.py`): terms match any element of a
multi-valued field, ranges are inclusive, a response filter scoped to a user sees only that user's responses,
"pending" means no response (by that user), and missing values sort last in either direction.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Any

# private: listed in codigit/upstream.py
from argilla_server.enums import ResponseStatusFilter, SortOrder
from argilla_server.models import Dataset, Question, Record, Response, Suggestion
from argilla_server.search_engine.base import (
    AndFilter,
    Filter,
    MetadataFilterScope,
    Order,
    RangeFilter,
    RecordFilterScope,
    ResponseFilterScope,
    SuggestionFilterScope,
    TermsFilter,
)
from sqlalchemy import Float, and_, cast, exists, func, literal, or_, select, true
from sqlalchemy.sql import ColumnElement

from codigit.server.sqltext import JsonAccess


def enum_value(v: Any) -> str:
    return getattr(v, "value", v)


def _record_value(prop: str, value: Any) -> Any:
    """A filter value for a `records` column, as the column holds it: ids as UUIDs, dates as naive UTC datetimes.

    The API passes text (or numbers), which Elasticsearch reads as keywords and as ISO 8601 dates or epoch
    milliseconds. SQLAlchemy cannot bind text to a UUID column, and SQLite would compare "2024-01-01T10:00" with
    the stored "2024-01-01 10:00:00" as text. An id that is not a UUID matches nothing (None), as a keyword would.
    """
    if prop == "id":
        try:
            return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
        except ValueError:
            return None
    if prop in ("inserted_at", "updated_at") and not isinstance(value, datetime):
        try:
            parsed = datetime.fromisoformat(value)
        except (TypeError, ValueError):  # a number, or a number as text: epoch milliseconds
            try:
                parsed = datetime.fromtimestamp(float(value) / 1000, tz=UTC)
            except (ValueError, OverflowError, OSError):  # not a number, NaN, or beyond the years datetime holds
                raise ValueError(f"{prop}: {str(value)[:40]!r} is not an ISO 8601 date or epoch milliseconds") from None
        return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed
    return value


def _number(bound: Any) -> float | None:
    """A range bound over JSON values as a finite float: numbers as text are numbers (as Elasticsearch coerces
    them); anything else is the client's mistake, reported as such (PostgreSQL would fail on comparing text with a
    number, and SQLite would silently compare it as text)."""
    if bound is None:
        return None
    try:
        number = float(bound)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"range bound {str(bound)[:40]!r} is not a finite number")
    return number


class FilterSQL:
    """Builds WHERE conditions and ORDER BY clauses on `records` from argilla-server's search filters and sorts."""

    def __init__(self, json: JsonAccess):
        self.json = json

    def where(self, dataset: Dataset, f: Filter) -> ColumnElement:
        if isinstance(f, AndFilter):
            return and_(true(), *[self.where(dataset, sub) for sub in f.filters])
        scope = f.scope
        if isinstance(scope, ResponseFilterScope):
            return self._response_filter(f, scope)
        if isinstance(scope, MetadataFilterScope):
            return self._value_filter(f, Record.metadata_, (scope.metadata_property,))
        if isinstance(scope, SuggestionFilterScope):
            return exists(
                select(literal(1))
                .select_from(Suggestion)
                .join(Question, Question.id == Suggestion.question_id)
                .where(
                    Suggestion.record_id == Record.id,
                    Question.name == scope.question,
                    Question.dataset_id == dataset.id,
                    self._suggestion_condition(f, scope.property),
                )
            )
        if isinstance(scope, RecordFilterScope):
            col, prop = getattr(Record, scope.property), scope.property
            if isinstance(f, TermsFilter):
                values = [_record_value(prop, v) for v in f.values]
                return col.in_([v for v in values if v is not None])
            lower = col >= _record_value(prop, f.ge) if f.ge is not None else true()
            upper = col <= _record_value(prop, f.le) if f.le is not None else true()
            return and_(lower, upper)
        raise ValueError(f"Cannot process request for search scope {scope}")

    def _value_filter(self, f: Filter, col: Any, keys: tuple[str, ...]) -> ColumnElement:
        """Terms or range over a JSON value (scalar or array) in col at keys."""
        if isinstance(f, TermsFilter):
            values = [str(v) for v in f.values]
            return self.json.any(col, keys, lambda v: v.in_(values))
        if isinstance(f, RangeFilter):
            ge, le = _number(f.ge), _number(f.le)

            def in_range(v: ColumnElement) -> ColumnElement:
                bounds = ([v >= ge] if ge is not None else []) + ([v <= le] if le is not None else [])
                return and_(v.is_not(None), *bounds)

            return self.json.any(col, keys, in_range, numeric=True)
        raise ValueError(f"Cannot process request for filter {f}")

    def _suggestion_condition(self, f: Filter, prop: str) -> ColumnElement:
        if prop in ("value", "score"):
            return self._value_filter(f, getattr(Suggestion, prop), ())
        if prop in ("agent", "type") and isinstance(f, TermsFilter):
            return getattr(Suggestion, prop).in_(f.values)
        raise ValueError(f"Cannot filter suggestions by {prop}")

    def _response_filter(self, f: Filter, scope: ResponseFilterScope) -> ColumnElement:
        mine = [Response.user_id == scope.user.id] if scope.user else []
        if scope.question:
            return exists(
                select(literal(1)).where(
                    Response.record_id == Record.id,
                    *mine,
                    self._value_filter(f, Response.values, (scope.question, "value")),
                )
            )
        if scope.property != "status" or not isinstance(f, TermsFilter):
            raise ValueError(f"Cannot process filter scope {scope}")
        statuses = [str(enum_value(v)) for v in f.values]
        conditions = []
        if ResponseStatusFilter.pending.value in statuses:
            if scope.user:  # NOT IN over the user's (few) responses beats a per-record probe at 100k records
                conditions.append(Record.id.not_in(select(Response.record_id).where(*mine)))
            else:
                conditions.append(~exists(select(literal(1)).where(Response.record_id == Record.id)))
        others = [s for s in statuses if s != ResponseStatusFilter.pending.value]
        if others:
            conditions.append(
                exists(select(literal(1)).where(Response.record_id == Record.id, Response.status.in_(others), *mine))
            )
        return or_(*conditions) if conditions else true()

    def order_by(self, sort: list[Order], numeric_metadata: set[str]) -> list:
        clauses = []
        for order in sort:
            expr = self._sort_expression(order, numeric_metadata)
            direction = expr.desc() if order.order == SortOrder.desc else expr.asc()
            clauses += [expr.is_(None), direction]  # missing values last, either way, as in Elasticsearch
        return clauses

    def _sort_expression(self, order: Order, numeric_metadata: set[str]) -> ColumnElement:
        scope = order.scope
        # Elasticsearch sorts by a multi-valued field's least value ascending and its greatest descending (a list
        # of terms or scores); comparing the JSON text of lists instead would put '["b", "a"]' after '["a"]'.
        pick = func.max if order.order == SortOrder.desc else func.min
        if isinstance(scope, RecordFilterScope):
            return getattr(Record, scope.property)
        if isinstance(scope, MetadataFilterScope):
            elems = self.json.elements(Record.metadata_, (scope.metadata_property,))
            value = cast(elems.c.value, Float) if scope.metadata_property in numeric_metadata else elems.c.value
            return select(pick(value)).select_from(elems).scalar_subquery()
        if isinstance(scope, SuggestionFilterScope):
            source, value = Suggestion.__table__, getattr(Suggestion, scope.property)
            if scope.property in ("value", "score"):  # JSON columns: compare native values, not their text
                elems = self.json.elements(value, ())
                source, value = source.join(elems, true()), pick(elems.c.value)
            return (
                select(value)
                .select_from(source)
                .join(Question, Question.id == Suggestion.question_id)
                .where(Suggestion.record_id == Record.id, Question.name == scope.question)
                .limit(1)
                .scalar_subquery()
            )
        if isinstance(scope, ResponseFilterScope):
            mine = [Response.user_id == scope.user.id] if scope.user else []
            if scope.question:
                value = func.avg(cast(self.json.value(Response.values, scope.question, "value"), Float))
            else:
                value = func.min(getattr(Response, scope.property))
            return select(value).where(Response.record_id == Record.id, *mine).scalar_subquery()
        raise ValueError(f"Cannot sort by {scope}")
