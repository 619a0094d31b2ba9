"""Shared fixtures: a real `codigit serve` (argilla-server 2.8 on SQLite) in a temp home, driven over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from codigit.errors import CodigitError
from codigit.server.serve import free_port, spawn
from codigit.simulate import UI_QUEUE, Participant, api_client, sign_in  # noqa: F401  (tests import them from here)

REPO = Path(__file__).resolve().parents[1]
STUDY = REPO / "annotation" / "study.yaml"
ARTIFACTS = REPO / "tests" / "artifacts"


@dataclass
class Server:
    url: str
    home: Path
    port: int
    proc: subprocess.Popen
    log: Path

    @property
    def api_key(self) -> str:
        return json.loads((self.home / "credentials.json").read_text())["api_key"]

    def http(self, api_key: str | None = None) -> httpx.Client:
        """A plain HTTP client on /api/v1 with the given key (default: the owner's)."""
        return api_client(self.url, api_key or self.api_key)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)


def codigit(*args: str, home: Path | None = None, env: dict | None = None, timeout: float = 300):
    """Run the real CLI in a subprocess; returns the CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    if home is not None:
        full_env["CODIGIT_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "codigit.cli", *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_server(home: Path, port: int | None = None, extra: tuple[str, ...] = (), wait: float = 120) -> Server:
    port = port or free_port()
    home.mkdir(parents=True, exist_ok=True)
    log = home.parent / f"{home.name}-serve-{port}.log"
    try:
        proc = spawn(home, port, log, extra, wait)
    except CodigitError as e:
        raise RuntimeError(f"{e}:\n{log.read_text()}") from None
    return Server(f"http://127.0.0.1:{port}", home, port, proc, log)


@contextlib.contextmanager
def own_study_server(home: Path):
    """A server of a test's own (so snapshots hold only that test's data) with the study initialised."""
    srv = start_server(home)
    try:
        init = codigit("init", "--study", str(STUDY), home=srv.home)
        assert init.returncode == 0, init.stderr
        yield srv
    finally:
        srv.stop()


@contextlib.contextmanager
def feedback_study_server(tmp: Path):
    """A server of a test's own, started with `--snapshots` in `tmp`, serving a copy of the study whose authors see
    feedback after a round closes, set up by the real `codigit init`; yields (server, study file, snapshots)."""
    annotation = tmp / "annotation"
    shutil.copytree(STUDY.parent, annotation)
    study_file = annotation / "study.yaml"
    text = study_file.read_text(encoding="utf-8")
    study_file.write_text(text.replace("feedback_to_authors: false", "feedback_to_authors: true"), encoding="utf-8")
    snapshots = tmp / "snapshots"
    srv = start_server(tmp / "home", extra=("--snapshots", str(snapshots)))
    try:
        init = codigit("init", "--study", str(study_file), home=srv.home)
        assert init.returncode == 0 and "enforces" in init.stdout, init.stderr
        yield srv, study_file, snapshots
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    srv = start_server(tmp_path_factory.mktemp("codigit") / "home")
    yield srv
    if srv.proc.poll() is None:
        srv.stop()


@pytest.fixture(scope="session")
def study_server(server: Server) -> Server:
    """The session server with the study initialised by the real `codigit init`."""
    result = codigit("init", "--study", str(STUDY), home=server.home)
    assert result.returncode == 0, result.stderr
    return server


@pytest.fixture(scope="module")
def owner(server: Server) -> httpx.Client:
    """The owner's HTTP client on the session server (one per test module)."""
    with server.http() as client:
        yield client


def login(server: Server, username: str, password: str) -> str:
    """Sign in as a participant does (password form) and return their API key."""
    return sign_in(server.url, username, password)


def add_participants(server: Server, roster: dict[str, str], tmp: Path) -> dict[str, Participant]:
    """Accounts for {key: real name} through the real `codigit participants add`, signed in by password."""
    path = tmp / "roster.csv"
    path.write_text("name,email\n" + "".join(f"{name},{key}@example.org\n" for key, name in roster.items()))
    logins = tmp / "logins.csv"
    result = codigit("participants", "add", str(path), "--out", str(logins), home=server.home)
    assert result.returncode == 0, result.stderr
    import csv

    with logins.open(newline="", encoding="utf-8") as f:
        rows = {r["email"].split("@")[0]: r for r in csv.DictReader(f)}
    return {
        key: Participant(row["username"], server.http(login(server, row["username"], row["password"])))
        for key, row in rows.items()
    }


def wal_database(path: Path) -> Path:
    """A SQLite file in WAL mode with Argilla's tables, as the server leaves its database: enough for `backup`
    and `restore`, without a server."""
    import sqlite3

    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        for table in ("users", "workspaces", "datasets", "records", "responses"):
            db.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, body TEXT)")
        db.execute("INSERT INTO records (body) VALUES ('a story')")
    return path
