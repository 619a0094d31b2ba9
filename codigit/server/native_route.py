"""What codigit's own handlers of argilla-server's two busiest routes share (native_submit.py, native_queue.py).

Each is an ASGI middleware in front of argilla-server's app: it reads the request, and either answers it itself or
hands it on, with the body as it came, to argilla-server's own handler. It hands on whatever it does not recognise
as the common case, before writing anything, so those requests get argilla-server's exact answers and errors; and
any failure of its own (logged) is handed on the same way. `CODIGIT_NATIVE_SUBMIT=0` / `CODIGIT_NATIVE_QUEUE=0` in
the server's environment switch one off.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from types import SimpleNamespace
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LOGGER = logging.getLogger("codigit.server")


class HandOn(Exception):
    """This request is argilla-server's to answer."""


class NativeRoute:
    """ASGI middleware for `POST <path>`: `answer()` gives (status, JSON content) or raises HandOn."""

    path: re.Pattern
    switch: str  # the environment variable that turns this route off with "0"

    def __init__(self, app: ASGIApp, home: Any):
        self.app, self.home = app, home
        self.enabled = os.environ.get(self.switch, "1") != "0"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = self.path.fullmatch(scope.get("path", "")) if scope["type"] == "http" else None
        if not (self.enabled and match and scope["method"] == "POST"):
            return await self.app(scope, receive, send)
        body = await _read_body(receive)
        if body is None:
            return  # the client left before sending the request
        try:
            status, content = await self.answer(scope, match, body)
        except HandOn:
            return await self.app(scope, _replay(body, receive), send)
        except Exception:  # nothing was committed (SQLite rolls back a failed COMMIT): argilla-server's handler tries
            _LOGGER.exception("%s %s failed in codigit's handler; argilla-server's handler tries", scope["method"],
                              scope["path"])  # fmt: skip
            return await self.app(scope, _replay(body, receive), send)
        from starlette.responses import JSONResponse

        await JSONResponse(content, status_code=status)(scope, receive, send)

    async def answer(self, scope: Scope, match: re.Match, body: bytes) -> tuple[int, Any]:
        raise NotImplementedError


def json_headers(scope: Scope) -> dict[str, str]:
    """The request's headers (lower-case names); a body that is not declared JSON is argilla-server's to parse."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    if headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise HandOn
    return headers


class _Who:
    """Statements built once (a statement object reused keeps its cache key, so SQLAlchemy compiles it once)."""

    def __init__(self) -> None:
        from argilla_server.models import User, WorkspaceUser
        from sqlalchemy import bindparam, select

        users, members = User.__table__, WorkspaceUser.__table__
        who = select(users.c.id, users.c.username, users.c.role)
        self.by_key = who.where(users.c.api_key == bindparam("key"))
        self.by_name = who.where(users.c.username == bindparam("name"))
        self.member = select(members.c.id).where(
            members.c.workspace_id == bindparam("workspace_id"), members.c.user_id == bindparam("user_id")
        )


@functools.cache
def _statements() -> _Who:
    return _Who()


async def signed_in(conn: Any, headers: dict[str, str]) -> SimpleNamespace:
    """The signed-in user as argilla-server finds them: by API key first, then by a bearer token's username."""
    sql = _statements()
    if key := headers.get("x-argilla-api-key"):
        if found := (await conn.execute(sql.by_key, {"key": key})).one_or_none():
            return SimpleNamespace(id=found.id, username=found.username, role=found.role)
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        from argilla_server.security.authentication.jwt import JWT

        try:
            username = JWT.decode(token).get("username")
        except Exception:  # an invalid or expired token: argilla-server's 401
            raise HandOn from None
        if username and (found := (await conn.execute(sql.by_name, {"name": username})).one_or_none()):
            return SimpleNamespace(id=found.id, username=found.username, role=found.role)
    raise HandOn


async def may_work_in(conn: Any, user: SimpleNamespace, workspace_id: Any) -> bool:
    """argilla-server's policy for answering and searching a dataset: the owner, or a member of its workspace."""
    from argilla_server.enums import UserRole

    if user.role == UserRole.owner:
        return True
    found = await conn.execute(_statements().member, {"workspace_id": workspace_id, "user_id": user.id})
    return found.first() is not None


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body; None if the client disconnected first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body already read, then whatever the client sends next (its disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
