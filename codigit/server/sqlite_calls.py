"""One trip to SQLite's thread per statement instead of four.

aiosqlite runs each SQLite connection in a thread of its own; every call is handed to that thread and its result
handed back to the event loop (a queue, a thread wake-up, a loop wake-up: ~70 µs of CPU each on the project's
machine). SQLAlchemy's aiosqlite adapter makes four such calls per statement: open a cursor, execute, fetch the
rows, close the cursor. Measured: a trivial `SELECT 1` cost 325 µs of CPU through the adapter against 40 µs on a
plain sqlite3 connection, and a submission runs dozens of statements. Here the four steps run as one function in
the connection's thread: the same sqlite3 calls, in the same order, on the same connection, so transactions,
locking, errors and durability are unchanged. Server-side cursors (streamed results) keep the adapter's own path.
"""

from __future__ import annotations

from typing import Any


def install() -> None:
    """Replace the aiosqlite adapter's statement execution with the one-trip version (idempotent)."""
    from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_cursor

    # private: listed in codigit/upstream.py
    original = AsyncAdapt_aiosqlite_cursor.execute
    if getattr(original, "__module__", None) == __name__:
        return

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        if self.server_side:
            return original(self, operation, parameters)
        connection = self._connection  # aiosqlite.Connection
        try:
            raw = connection._conn  # the sqlite3.Connection, used only inside its own thread below
            description, lastrowid, rowcount, rows = self.await_(connection._execute(_run, raw, operation, parameters))
        except Exception as error:
            self._adapt_connection._handle_exception(error)
            raise  # _handle_exception always raises; this keeps the names below bound for type checkers
        self.description = description
        self.lastrowid, self.rowcount = lastrowid, rowcount
        if rows is not None:
            self._rows.clear()
            self._rows.extend(rows)
        return None

    execute.__wrapped__ = original  # type: ignore[attr-defined]
    AsyncAdapt_aiosqlite_cursor.execute = execute


def _run(raw: Any, operation: Any, parameters: Any) -> tuple[Any, int, int, list | None]:
    """In the connection's thread: what the adapter's four calls did (cursor, execute, fetchall, close)."""
    cursor = raw.cursor()
    try:
        if parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        if cursor.description:
            return cursor.description, -1, -1, cursor.fetchall()
        return None, cursor.lastrowid, cursor.rowcount, None
    finally:
        cursor.close()
