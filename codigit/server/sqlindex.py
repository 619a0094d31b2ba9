"""The full-text index and query indexes that codigit's SQL search engine adds to Argilla's database.

On SQLite the text index is two FTS5 tables kept in step with `records` by triggers, so an insert, update or
delete of a record changes the index inside the same transaction: the index cannot drift from the data, and the
search engine never needs a second writer (which SQLite would make wait on the request's own open transaction).
FTS5 rows are keyed by `codigit_fts_docs.docid`, an INTEGER PRIMARY KEY, because the implicit rowid of `records`
(whose primary key is a UUID) may be renumbered by VACUUM.

PostgreSQL needs no extra tables: the engine ranks with `ts_rank` over `to_tsvector` at query time.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

# One FTS5 row per (record, text field) lives at docid * FIELD_SLOTS + n, so a record's rows are one rowid range.
FIELD_SLOTS = 1024
# 2: a break token (_BREAK) between fields and between the text leaves of a chat or custom field
# 3: codigit_record_counts
SCHEMA_VERSION = "3"
TOKENIZER = "unicode61 remove_diacritics 2"  # like Elasticsearch's standard analyzer: no stemming, folded case

# Elasticsearch indexes each field (and each value of a multi-valued one) on its own, so a phrase never matches
# across two of them; `codigit_fts_all` holds a record's text in one column. Between two texts it therefore puts
# U+E000: unicode61 keeps that private-use character as a token (categories L*, N*, Co), and a query can never
# contain it (`search.parse_simple_query` keeps only `\w` words), so "end-of-title start-of-body" cannot match.
_BREAK = "' ' || char(57344) || ' '"
_TEXT = f"""CASE WHEN je.type = 'text' THEN je.atom
    ELSE (SELECT group_concat(jt.atom, {_BREAK}) FROM json_tree(je.value) jt WHERE jt.type = 'text') END"""


def _not_image(r: str) -> str:
    return (
        f"NOT EXISTS (SELECT 1 FROM fields fd WHERE fd.dataset_id = {r}.dataset_id AND fd.name = je.key "
        "AND json_extract(fd.settings, '$.type') = 'image')"
    )


def _index_statements(r: str, records: str = "") -> list[str]:
    """Statements that index record row `r`: the trigger's `new`, or every row when `records` is "records r,".

    Text fields index their text, chat and custom fields their text leaves; image fields nothing.
    Assumes the record's `codigit_fts_docs` row exists.
    """
    docid = f"(SELECT docid FROM codigit_fts_docs WHERE record_id = {r}.id)"
    all_text = f"(SELECT group_concat({_TEXT}, {_BREAK}) FROM json_each({r}.fields) je WHERE {_not_image(r)})"
    from_all = f"FROM {records.rstrip(', ')}" if records else ""
    return [
        f"INSERT INTO codigit_fts_all(rowid, content) SELECT {docid}, coalesce({all_text}, '') {from_all}",
        f"INSERT INTO codigit_fts_field(rowid, field, content) "
        f"SELECT {docid} * {FIELD_SLOTS} + row_number() OVER (PARTITION BY {r}.id ORDER BY je.key), "
        f"je.key, coalesce({_TEXT}, '') FROM {records} json_each({r}.fields) je WHERE {_not_image(r)}",
    ]


def _unindex_statements(r: str) -> list[str]:
    docid = f"(SELECT docid FROM codigit_fts_docs WHERE record_id = {r}.id)"
    return [
        f"DELETE FROM codigit_fts_all WHERE rowid = {docid}",
        f"DELETE FROM codigit_fts_field WHERE rowid BETWEEN {docid} * {FIELD_SLOTS} "
        f"AND {docid} * {FIELD_SLOTS} + {FIELD_SLOTS - 1}",
    ]


# Records per (dataset, status), kept by the same triggers, so progress and the annotation queue's total do not
# count 100k index entries on every request (the UI asks for both all the time).
def _count(r: str, delta: int) -> str:
    return (
        f"INSERT INTO codigit_record_counts(dataset_id, status, n) VALUES ({r}.dataset_id, {r}.status, {delta}) "
        f"ON CONFLICT(dataset_id, status) DO UPDATE SET n = n + {delta}"
    )


def _trigger(name: str, when: str, body: list[str]) -> str:
    return f"CREATE TRIGGER {name} {when} BEGIN\n" + ";\n".join(body) + ";\nEND"


# private: listed in codigit/upstream.py
SQLITE_TRIGGERS = {
    "codigit_records_ai": _trigger(
        "codigit_records_ai",
        "AFTER INSERT ON records",
        ["INSERT INTO codigit_fts_docs(record_id) VALUES (new.id)", *_index_statements("new"), _count("new", 1)],
    ),
    "codigit_records_au": _trigger(
        "codigit_records_au",
        "AFTER UPDATE OF fields, dataset_id ON records",
        [*_unindex_statements("old"), *_index_statements("new")],
    ),
    "codigit_records_ad": _trigger(
        "codigit_records_ad",
        "AFTER DELETE ON records",
        [*_unindex_statements("old"), "DELETE FROM codigit_fts_docs WHERE record_id = old.id", _count("old", -1)],
    ),
    "codigit_records_status": _trigger(
        "codigit_records_status",
        "AFTER UPDATE OF status, dataset_id ON records",
        [_count("old", -1), _count("new", 1)],
    ),
}

# Indexes that let the annotation queue and the per-user filters walk an index instead of the whole dataset.
QUERY_INDEXES = [
    "CREATE INDEX IF NOT EXISTS codigit_ix_records_queue ON records (dataset_id, status, id)",
    "CREATE INDEX IF NOT EXISTS codigit_ix_records_dataset_id ON records (dataset_id, id)",
    "CREATE INDEX IF NOT EXISTS codigit_ix_responses_user ON responses (user_id, record_id, status)",
]


def install(conn: Connection) -> bool:
    """Create (idempotently) what the engine needs; rebuild the text index if it is missing or stale.

    Returns True when the text index and counts were rebuilt from `records`.
    """
    for stmt in QUERY_INDEXES:
        conn.execute(text(stmt))
    if conn.dialect.name != "sqlite":
        return False
    conn.execute(text("CREATE TABLE IF NOT EXISTS codigit_meta (key TEXT PRIMARY KEY, value TEXT)"))
    conn.execute(
        text(
            "CREATE TABLE IF NOT EXISTS codigit_fts_docs "
            "(docid INTEGER PRIMARY KEY, record_id CHAR(32) NOT NULL UNIQUE)"
        )
    )
    conn.execute(
        text(f"CREATE VIRTUAL TABLE IF NOT EXISTS codigit_fts_all USING fts5(content, tokenize='{TOKENIZER}')")
    )
    conn.execute(
        text(
            "CREATE VIRTUAL TABLE IF NOT EXISTS codigit_fts_field "
            f"USING fts5(field UNINDEXED, content, tokenize='{TOKENIZER}')"
        )
    )
    conn.execute(
        text(
            "CREATE TABLE IF NOT EXISTS codigit_record_counts "
            "(dataset_id CHAR(32) NOT NULL, status TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (dataset_id, status))"
        )
    )
    version = conn.execute(text("SELECT value FROM codigit_meta WHERE key = 'schema_version'")).scalar()
    existing = {row[0] for row in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))}
    if version != SCHEMA_VERSION:
        for name in existing & SQLITE_TRIGGERS.keys():
            conn.execute(text(f"DROP TRIGGER {name}"))
        existing = set()
    for name, ddl in SQLITE_TRIGGERS.items():
        if name not in existing:
            conn.execute(text(ddl))

    n_records = conn.execute(text("SELECT count(*) FROM records")).scalar()
    n_docs = conn.execute(text("SELECT count(*) FROM codigit_fts_docs")).scalar()
    n_counted = conn.execute(text("SELECT coalesce(sum(n), 0) FROM codigit_record_counts")).scalar()
    if version == SCHEMA_VERSION and n_records == n_docs == n_counted:
        return False
    rebuild(conn)
    conn.execute(
        text("INSERT OR REPLACE INTO codigit_meta(key, value) VALUES ('schema_version', :v)"), {"v": SCHEMA_VERSION}
    )
    return True


def rebuild(conn: Connection) -> None:
    """Re-derive the text index and counts from `records` (a database made before codigit, or a schema change)."""
    for table in ("codigit_fts_all", "codigit_fts_field", "codigit_fts_docs", "codigit_record_counts"):
        conn.execute(text(f"DELETE FROM {table}"))
    conn.execute(
        text(
            "INSERT INTO codigit_record_counts(dataset_id, status, n) "
            "SELECT dataset_id, status, count(*) FROM records GROUP BY dataset_id, status"
        )
    )
    conn.execute(text("INSERT INTO codigit_fts_docs(record_id) SELECT id FROM records ORDER BY inserted_at, id"))
    for stmt in _index_statements("r", records="records r,"):
        conn.execute(text(stmt))
