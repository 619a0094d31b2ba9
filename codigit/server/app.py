"""Build the embedded Argilla server: settings, database, owner account, search engine, jobs, privacy and UI fixes.

argilla-server reads its settings from `ARGILLA_*` variables when it is first imported, so `configure` must run
before anything imports `argilla_server`; the functions below import it lazily for that reason.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from codigit.errors import CodigitError
from codigit.home import new_secret, read_credentials, write_credentials

OWNER_USERNAME = "owner"
_LOGGER = logging.getLogger("codigit.server")


def sqlite_path(database_url: str) -> Path | None:
    url = make_url(database_url)
    return Path(url.database) if url.get_backend_name() == "sqlite" else None


def check_database_url(database_url: str) -> None:
    try:
        url = make_url(database_url)
    except ArgumentError:
        url = None
    if url is None or url.get_backend_name() not in ("sqlite", "postgresql") or not url.database:
        raise CodigitError(
            f"--database-url {database_url!r} is not a usable database URL: give sqlite:///PATH/argilla.db or "
            "postgresql://USER@HOST:PORT/DATABASE"
        )


def configure(home: Path, database_url: str | None = None, redis_url: str | None = None) -> str:
    """Set argilla-server's environment; returns the database URL in use."""
    # private: listed in codigit/upstream.py
    if "argilla_server.settings" in sys.modules:
        raise RuntimeError("argilla_server was imported before codigit configured it")
    if database_url:
        check_database_url(database_url)
    database_url = database_url or f"sqlite+aiosqlite:///{home / 'argilla.db'}?check_same_thread=False"
    os.environ.update(
        {
            "ARGILLA_HOME_PATH": str(home),
            "ARGILLA_DATABASE_URL": database_url,
            "ARGILLA_SEARCH_ENGINE": "codigit-sql",
            # SQLite's busy timeout: a writer queued behind a large bulk upload waits instead of failing (default 5 s)
            "ARGILLA_DATABASE_SQLITE_TIMEOUT": "60",
            "HF_HUB_DISABLE_TELEMETRY": "1",  # argilla-server's telemetry: nothing leaves the machine
            # the in-process queue never dials this; with --redis-url it is the real one
            "ARGILLA_REDIS_URL": redis_url or "redis://127.0.0.1:1/0",
        }
    )
    return database_url


def _sqlite_pragma(path: Path, pragma: str) -> str:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(f"PRAGMA {pragma}").fetchone()[0]


def check_sqlite(path: Path) -> None:
    """Refuse a database file that is not SQLite or fails its integrity check."""
    if not path.exists():
        return
    try:
        verdict = _sqlite_pragma(path, "quick_check")
    except sqlite3.DatabaseError as e:
        raise CodigitError(f"database {path} is corrupt or not an SQLite database ({e}); restore a backup") from None
    if verdict != "ok":
        raise CodigitError(f"database {path} failed its integrity check ({verdict}); restore a backup")


def prepare_database(database_url: str) -> None:
    """Migrate argilla-server's schema to head, then add codigit's search indexes and triggers."""
    import argilla_server
    import sqlalchemy.exc
    from alembic import command
    from alembic.config import Config
    from argilla_server.database import sync_engine

    from codigit.server import sqlindex

    path = sqlite_path(database_url)
    if path is not None:
        check_sqlite(path)
    # private: listed in codigit/upstream.py
    config = Config()  # no ini file: alembic would otherwise reconfigure our logging
    config.set_main_option("script_location", str(Path(argilla_server.__file__).parent / "alembic"))
    try:
        command.upgrade(config, "head")
        with sync_engine.begin() as conn:
            if sqlindex.install(conn):
                _LOGGER.info("built the text search index")
    except sqlalchemy.exc.DatabaseError as e:  # includes OperationalError: unreachable, refused, locked...
        where = make_url(database_url).render_as_string(hide_password=True).split("?")[0]
        raise CodigitError(f"database error at {where}: {e.orig}") from None
    if path is not None:
        # WAL lets the UI's reads proceed while a submission is being written (a setting stored in the file).
        _sqlite_pragma(path, "journal_mode=WAL")


def ensure_owner(home: Path) -> dict[str, Any]:
    """The owner account, with a generated password and API key kept in `<home>/credentials.json` (0600).

    Existing credentials that still open the account are kept; otherwise new secrets are generated and stored.
    """
    from argilla_server.contexts.accounts import hash_password, verify_password
    from argilla_server.database import SyncSessionLocal
    from argilla_server.enums import UserRole
    from argilla_server.models import User

    try:
        creds = read_credentials(home)
    except CodigitError:
        creds = {}
    # private: listed in codigit/upstream.py
    with SyncSessionLocal() as db:
        user = db.query(User).filter(User.username == OWNER_USERNAME).one_or_none()
        valid = (
            user is not None
            and creds.get("api_key") == user.api_key
            and creds.get("password")
            and verify_password(creds["password"], user.password_hash)
        )
        if not valid:
            password, api_key = new_secret(18), new_secret(32)
            if user is None:
                user = User(username=OWNER_USERNAME, first_name="Study", last_name="Owner", role=UserRole.owner)
                db.add(user)
            user.password_hash = hash_password(password)
            user.api_key = api_key
            db.commit()
            creds = {"username": OWNER_USERNAME, "password": password, "api_key": api_key}
            write_credentials(home, creds)
            _LOGGER.info("generated owner credentials (%s)", home / "credentials.json")
        SyncSessionLocal.remove()
    return creds


def create_app(home: Path, snapshots: Path | None, in_process_jobs: bool = True):
    """The argilla-server FastAPI app with codigit's engine, job runner, privacy fixes, SQLite write queue, the
    study's rules at submit time and the participants' pages."""
    from argilla_server.jobs import queues
    from starlette.middleware import Middleware

    from codigit.server import (
        hot_path,
        jobs,
        native_queue,
        native_submit,
        privacy,
        sqlite_calls,
        sqlite_writes,
        study_pages,
        submit_rules,
        usecase_pages,
    )
    from codigit.server import ui as ui_edits

    # private: listed in codigit/upstream.py
    if in_process_jobs:  # before argilla_server._app imports the queues' Redis connection
        jobs.install_in_process(queues)
    from argilla_server._app import app  # built on import; a second build would copy the UI again
    from argilla_server.api.routes import api_v1
    from argilla_server.database import async_engine

    import codigit.server.search  # noqa: F401  registers the engine under ARGILLA_SEARCH_ENGINE

    if in_process_jobs:
        jobs.finish_jobs_on_shutdown(app)
    privacy.install(api_v1)
    quiet_validation_errors(api_v1)
    close_docs(app, api_v1)
    submit_rules.install(home)
    hot_path.install(app)
    study_pages.install(api_v1, home, snapshots)
    usecase_pages.install(api_v1, home)
    if (ui := ui_directory(app)) is not None:
        ui_edits.patch_ui(ui)
        study_pages.copy_pages(ui)
    if async_engine.dialect.name == "sqlite":
        for route in (native_submit.NativeSubmit, native_queue.NativeQueue):  # innermost: the writers' queue, timing
            app.user_middleware.append(Middleware(route, home=home))  # and CORS apply to them as to any request
        sqlite_writes.install(app, async_engine)
        sqlite_calls.install()
    return app


# The API's interactive docs pages load Swagger UI and ReDoc from a CDN (jsdelivr): opening them would make a
# participant's browser contact a third party. They are closed; /api/v1/openapi.json (plain JSON, no scripts) stays
# for the owner's own tools.
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")
DOCS_REDIRECTS = ("/docs", "/api")  # argilla-server's redirects to /api/v1/docs


def close_docs(app, api) -> None:
    """Remove the docs pages (and argilla-server's redirects to them); the OpenAPI schema stays."""
    from fastapi.routing import APIRoute

    # private: listed in codigit/upstream.py
    api.router.routes[:] = [r for r in api.router.routes if getattr(r, "path", None) not in DOCS_PATHS]
    api.docs_url = api.redoc_url = None
    app.router.routes[:] = [r for r in app.router.routes if not (isinstance(r, APIRoute) and r.path in DOCS_REDIRECTS)]


def docs_pages(api) -> list[str]:
    """The docs pages the API still serves (none once `close_docs` ran); read back for the start-up report."""
    return [r.path for r in api.router.routes if getattr(r, "path", None) in DOCS_PATHS]


def quiet_validation_errors(api) -> None:
    """A request body or parameter the API rejects is the client's mistake: the same 422 as argilla-server's, without
    the traceback it writes to the server's log for each one (a participant could fill the log at will)."""
    from argilla_server.api.errors.v1.exception_handlers import set_request_error
    from argilla_server.errors.base_errors import ValidationError
    from argilla_server.errors.error_handler import ServerHTTPException
    from fastapi.exception_handlers import http_exception_handler
    from fastapi.exceptions import RequestValidationError

    # private: listed in codigit/upstream.py
    async def handler(request, error: RequestValidationError):
        argilla_error = ValidationError(error)
        set_request_error(request, argilla_error)
        return await http_exception_handler(request, ServerHTTPException(argilla_error))

    api.add_exception_handler(RequestValidationError, handler)


def ui_directory(app) -> Path | None:
    """The per-start copy of the web UI that argilla-server serves (it makes one in the temp dir at import)."""
    # private: listed in codigit/upstream.py
    for route in app.routes:
        directory = getattr(getattr(route, "app", None), "directory", None)
        if getattr(route, "name", None) == "static" and directory is not None:
            return Path(directory)
    return None


def remove_ui_copy(app) -> None:
    """argilla-server never deletes its UI copy (14 MB a start); a clean shutdown does."""
    ui = ui_directory(app)
    # argilla-server's layout: <tempdir>/<mkdtemp name>/statics; remove the mkdtemp directory and nothing else
    if ui is not None and ui.name == "statics" and ui.parent.parent == Path(tempfile.gettempdir()):
        shutil.rmtree(ui.parent, ignore_errors=True)
