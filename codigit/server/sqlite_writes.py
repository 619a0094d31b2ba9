"""Serialise SQLite writers up front, so concurrent submissions wait their turn instead of failing.

SQLite has one writer at a time. A transaction that starts by reading (argilla-server's handlers authenticate and
look things up first) and then writes must upgrade its lock; in WAL mode, if another writer committed meanwhile,
the upgrade fails at once with "database is locked" (SQLITE_BUSY_SNAPSHOT), and the busy timeout does not help.
Starting every transaction of a request that may write with BEGIN IMMEDIATE takes the write lock first, so the
busy timeout queues writers. Reads (GET, searches, logins) keep plain BEGIN and run concurrently under WAL.

Writing requests are also admitted a few at a time. Each holds a pooled connection for its whole life and, after
its commit, argilla-server opens a second session to update the record's status. With the pool (5 + 10
connections) full of requests that each hold one connection and wait for another, nothing moves until timeouts
fire (seen with 40 simultaneous submissions). SQLite writes one at a time anyway, so this costs no throughput.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar

from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Receive, Scope, Send

# POSTs that do not write themselves: searches and logins only read (a login's bcrypt must not hold the lock), and
# the study home's withdrawal and choice of language write through requests of their own to this server, which
# must not wait behind them.
NOT_WRITING_POSTS = ("/search", "/token", "/codigit/withdraw", "/codigit/language")
WRITERS_ADMITTED = 2  # at most 2 connections each, well inside argilla-server's pool of 15; the rest queue FIFO
_may_write: ContextVar[bool] = ContextVar("codigit_may_write", default=False)


def install(app: FastAPI, engine: AsyncEngine) -> None:
    # private: listed in codigit/upstream.py
    @event.listens_for(engine.sync_engine, "connect")
    def _manual_transactions(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # the driver must not BEGIN on its own: we do, below

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if _may_write.get() else "BEGIN")

    app.add_middleware(MarkWrites, admitted=asyncio.Semaphore(WRITERS_ADMITTED))


class MarkWrites:
    """ASGI middleware: requests that may write run with `_may_write` set, WRITERS_ADMITTED at a time.

    Plain ASGI rather than Starlette's `@app.middleware("http")`, which runs each request in a task of its own with
    its own streams (measured: ~2 ms of CPU a request on the project's machine)."""

    def __init__(self, app: ASGIApp, admitted: asyncio.Semaphore):
        self.app, self.admitted = app, admitted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        may_write = (
            scope["type"] == "http"
            and scope["method"] in ("POST", "PUT", "PATCH", "DELETE")
            and not scope["path"].endswith(NOT_WRITING_POSTS)
        )
        if not may_write:
            return await self.app(scope, receive, send)
        # Tasks started by the request (in-process jobs) copy this context, so their writes queue the same way.
        token = _may_write.set(True)
        try:
            async with self.admitted:
                await self.app(scope, receive, send)
        finally:
            _may_write.reset(token)
