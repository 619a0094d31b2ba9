"""SQL building blocks for the search engine: JSON access on SQLite and PostgreSQL, and the query language.

argilla-server's text queries are Elasticsearch `simple_query_string`s; `parse_simple_query` reads them once and
`fts5_query` / `pg_tsquery` render them for SQLite FTS5 and PostgreSQL full-text search.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from sqlalchemy import Float, String, case, cast, exists, func, literal, select
from sqlalchemy.sql import ColumnElement

from codigit.server.sqlindex import FIELD_SLOTS


def json_path(*keys: str) -> str:
    return "$" + "".join('."' + k.replace('"', '""') + '"' for k in keys)


class JsonAccess:
    """JSON access that works on SQLite (json1) and PostgreSQL (json)."""

    def __init__(self, dialect: str):
        self.pg = dialect == "postgresql"

    def _pg_node(self, col: Any, keys: tuple[str, ...]) -> ColumnElement:
        node = col
        for k in keys:
            node = node.op("->")(k)
        return node

    def value(self, col: Any, *keys: str) -> ColumnElement:
        """The JSON value at keys: SQLite's native type, PostgreSQL text."""
        if self.pg:
            return self._pg_node(col, keys[:-1]).op("->>")(keys[-1])
        return func.json_extract(col, json_path(*keys))

    def elements(self, col: Any, keys: tuple[str, ...]):
        """The value at keys as a table with one column, `value`: its elements if it is an array, else itself."""
        if self.pg:
            node = self._pg_node(col, keys)
            array = case((func.json_typeof(node) == "array", node), else_=func.json_build_array(node))
            return func.json_array_elements_text(array).table_valued("value")
        return func.json_each(col, json_path(*keys)).table_valued("value")

    def any(self, col: Any, keys: tuple[str, ...], predicate, numeric: bool = False) -> ColumnElement:
        """True when the value at keys, or any element of it if it is an array, satisfies predicate(element).

        Elements compare as text (terms) or as numbers (ranges), as Elasticsearch's keyword and numeric fields
        do with multi-valued documents.
        """
        elems = self.elements(col, keys)
        value = cast(elems.c.value, Float) if numeric else cast(elems.c.value, String)
        return exists(select(literal(1)).select_from(elems).where(predicate(value)))


MAX_QUERY_TERMS = 64
_TOKEN = re.compile(r'(-?)"([^"]*)"(?:~(\d+))?|(\S+)')
_WORD = re.compile(r"[\w']+", re.UNICODE)
_FUZZY = re.compile(r"~\d*$")


@dataclasses.dataclass
class _Term:
    words: list[str]
    phrase: bool = False  # "quoted": the words in this order, adjacent
    slop: int = 0  # "quoted"~N: within N words of each other
    prefix: bool = False  # pre*: the last word is a prefix


def parse_simple_query(q: str) -> tuple[list[list[_Term]], list[_Term]]:
    """An Elasticsearch simple_query_string (AND by default) as an AND of OR-groups of terms, and the excluded terms.

    Supported: bare terms (all required), "quoted phrases", `-term` exclusion, `a | b` alternatives, `pre*`
    prefixes, `"phrase"~N` slop. `term~N` fuzziness has no FTS5 or tsquery equivalent: the exact term is searched
    (not "term" followed by "N"). Other operators are treated as text.
    """
    groups: list[list[_Term]] = []
    negative: list[_Term] = []
    join_next = False
    for m in _TOKEN.finditer(q):
        neg, phrase, slop, bare = m.groups()
        if bare == "|":
            join_next = True
            continue
        if bare is not None:
            neg, word = ("-", bare[1:]) if bare.startswith("-") and len(bare) > 1 else ("", bare)
            word = _FUZZY.sub("", word)
            term = _Term(_WORD.findall(word), prefix=word.endswith("*"))
        else:
            term = _Term(_WORD.findall(phrase), phrase=True, slop=int(slop or 0))
        if not term.words:
            continue
        if neg:
            negative.append(term)
        elif join_next and groups:
            groups[-1].append(term)
        else:
            groups.append([term])
        join_next = False
    if sum(map(len, groups)) + len(negative) > MAX_QUERY_TERMS:  # each is a MATCH (SQLite) or a tsquery node
        raise ValueError(f"a text query may have at most {MAX_QUERY_TERMS} terms")
    return groups, negative


def _fts5(term: _Term) -> str:
    quoted = [f'"{w}"' for w in term.words]
    if term.slop and len(quoted) > 1:  # NEAR also accepts the words in another order
        return "NEAR(" + " ".join(quoted) + f", {term.slop})"
    if term.phrase:
        return '"' + " ".join(term.words) + '"'
    return " + ".join(quoted) + ("*" if term.prefix else "")  # foo-bar: the words in sequence


def fts5_query(q: str) -> tuple[str, str, list[str]]:
    """The simple_query_string as FTS5 (positive, negative) MATCH expressions, either may be empty, and each
    positive term on its own (what the ranking scores)."""
    groups, negative = parse_simple_query(q)
    positive = " AND ".join("(" + " OR ".join(map(_fts5, g)) + ")" for g in groups)
    return positive, " OR ".join(map(_fts5, negative)), [_fts5(t) for g in groups for t in g]


# -- ranking from one dataset's own statistics -----------------------------------------------------------------------
# FTS5's bm25() takes its document count, document frequencies and average length from the whole FTS table, which
# holds every dataset's text: a participant's scores (and order) in their own dataset would then move with words in
# datasets they cannot read (the organisers' withdrawal ledger, say), an oracle for those words. Elasticsearch keeps
# one index per Argilla dataset, so its bm25 statistics are per dataset; this computes the same formula (Lucene's
# BM25) from the dataset's own rows: term frequencies from highlight() (markers inserted around each hit), lengths
# from FTS5's own per-row token counts (the %_docsize table), counts over the dataset's rows only.
BM25_K1, BM25_B = 1.2, 0.75  # Lucene's (and Elasticsearch's) defaults
_MARK = "\ue001"  # highlight's opening marker; only its count matters (close marker: none)
_HEX = "'0123456789ABCDEF'"


def _byte(h: str, i: int) -> str:
    return f"((instr({_HEX}, substr({h}, {2 * i + 1}, 1)) - 1) * 16 + instr({_HEX}, substr({h}, {2 * i + 2}, 1)) - 1)"


def _varint(h: str, start: int) -> str:
    """SQL for the SQLite varint (7 bits a byte, high bit: more follow) at byte `start` of the hex text `h`; up to
    four bytes, 2**28 tokens, more than any record field holds."""
    cases, value = [], ""
    for n in range(4):
        b = _byte(h, start + n)
        value = f"({value} << 7) | ({b} & 127)" if value else f"({b} & 127)"
        cases.append(f"WHEN {b} < 128 THEN {value}" if n < 3 else f"ELSE {value}")
    return "CASE " + " ".join(cases) + " END"


# private: listed in codigit/upstream.py
def fts5_ranked_sql(per_field: bool, n_terms: int, negative: bool) -> str:
    """SELECT docid, score of one dataset's rows that match. Binds :dataset, :q and :t0… (the whole positive
    expression and each positive term) when n_terms, :neg when negative, :field when per_field. Without positive
    terms every row that does not match :neg scores 1.0."""
    table = "codigit_fts_field" if per_field else "codigit_fts_all"
    # the dataset's rows in this table, with their lengths in tokens (the field table's sz: field's 0, content's)
    if per_field:
        rows = (
            f"SELECT t.rowid AS rid, {_varint('hex(s.sz)', 1)} AS len FROM codigit_fts_docs d "
            f"JOIN records r ON r.id = d.record_id JOIN {table} t ON t.rowid BETWEEN d.docid * {FIELD_SLOTS} "
            f"AND d.docid * {FIELD_SLOTS} + {FIELD_SLOTS - 1} AND t.field = :field "
            f"JOIN {table}_docsize s ON s.id = t.rowid WHERE r.dataset_id = :dataset"
        )
    else:
        rows = (
            f"SELECT s.id AS rid, {_varint('hex(s.sz)', 0)} AS len FROM codigit_fts_docs d "
            f"JOIN records r ON r.id = d.record_id JOIN {table}_docsize s ON s.id = d.docid "
            "WHERE r.dataset_id = :dataset"
        )
    # `+rowid`: not a constraint FTS5 may use, so each MATCH runs once over its hits, not once per row
    own = "+rowid IN (SELECT rid FROM own_rows)"
    if n_terms:
        hits = f"SELECT rowid AS rid FROM {table} WHERE {table} MATCH :q AND {own}"
    else:
        hits = "SELECT rid FROM own_rows WHERE 1"
    if negative:
        field = " AND field = :field" if per_field else ""
        hits += f" AND rid NOT IN (SELECT rowid FROM {table} WHERE {table} MATCH :neg{field})"
    docid = f"rid / {FIELD_SLOTS}" if per_field else "rid"
    if not n_terms:
        return f"WITH own_rows AS MATERIALIZED ({rows}) SELECT {docid} AS docid, 1.0 AS score FROM ({hits})"
    column = 1 if per_field else 0  # content's index, for highlight()
    tf = " UNION ALL ".join(
        f"SELECT {i} AS term, rowid AS rid, "
        f"(length(highlight({table}, {column}, '{_MARK}', '')) - length(content)) / {len(_MARK)} AS f "
        f"FROM {table} WHERE {table} MATCH :t{i} AND {own}"
        for i in range(n_terms)
    )
    idf = "ln(1 + (st.n - df.n + 0.5) / (df.n + 0.5))"
    norm = f"{BM25_K1} * (1 - {BM25_B} + {BM25_B} * o.len / st.avgdl)"
    return f"""WITH own_rows AS MATERIALIZED ({rows}),
        st AS (SELECT count(*) AS n, avg(len) AS avgdl FROM own_rows),
        tf AS MATERIALIZED ({tf}),
        df AS (SELECT term, count(*) AS n FROM tf GROUP BY term),
        scored AS (
            SELECT tf.rid, sum({idf} * tf.f * {BM25_K1 + 1} / (tf.f + {norm})) AS score
            FROM tf JOIN df ON df.term = tf.term JOIN own_rows o ON o.rid = tf.rid CROSS JOIN st GROUP BY tf.rid
        )
        SELECT {docid} AS docid, coalesce(scored.score, 0.0) AS score FROM ({hits}) h LEFT JOIN scored USING (rid)"""


def pg_tsquery(q: str) -> str:
    """The simple_query_string as PostgreSQL `to_tsquery` input; empty when it has no terms."""

    def ts(term: _Term) -> str:
        lexemes = ["'" + w.replace("'", "''") + "'" for w in term.words]
        if term.prefix:
            lexemes[-1] += ":*"
        return "(" + (" & " if term.slop else " <-> ").join(lexemes) + ")"  # slop: both words, anywhere

    groups, negative = parse_simple_query(q)
    parts = ["(" + " | ".join(map(ts, g)) + ")" for g in groups]
    if negative:
        parts.append("!(" + " | ".join(map(ts, negative)) + ")")
    return " & ".join(parts)
