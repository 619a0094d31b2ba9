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
    return groups, negative


def fts5_query(q: str) -> tuple[str, str]:
    """The simple_query_string as FTS5 (positive, negative) MATCH expressions; either may be empty."""

    def fts5(term: _Term) -> str:
        quoted = [f'"{w}"' for w in term.words]
        if term.slop and len(quoted) > 1:  # NEAR also accepts the words in another order
            return "NEAR(" + " ".join(quoted) + f", {term.slop})"
        if term.phrase:
            return '"' + " ".join(term.words) + '"'
        return " + ".join(quoted) + ("*" if term.prefix else "")  # foo-bar: the words in sequence

    groups, negative = parse_simple_query(q)
    positive = " AND ".join("(" + " OR ".join(map(fts5, g)) + ")" for g in groups)
    return positive, " OR ".join(map(fts5, negative))


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
