"""`codigit backup` / `codigit restore`: a consistent copy of the embedded server's SQLite database, and back.

The backup uses SQLite's online backup API, so it is one consistent state even while participants are writing
(WAL mode), and is checked with `PRAGMA integrity_check` before it is kept. Restore refuses while a server is
answering on the home's recorded address, checks the file first, and keeps the database it replaces.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from codigit.cli_types import Parents
from codigit.errors import CodigitError
from codigit.home import SERVER_FILE, no_new_empty_folders, resolve_home
from codigit.places import place

DATABASE = "argilla.db"
# private: listed in codigit/upstream.py
REQUIRED_TABLES = {"users", "workspaces", "datasets", "records", "responses"}


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _check(path: Path) -> None:
    """A readable SQLite file with Argilla's tables that passes integrity_check, or a one-line error."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            result = db.execute("PRAGMA integrity_check").fetchone()[0]
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as e:
        raise CodigitError(f"{path}: not a usable SQLite database ({e})") from None
    if result != "ok":
        raise CodigitError(f"{path}: integrity check failed ({result})")
    if missing := REQUIRED_TABLES - tables:
        raise CodigitError(f"{path}: not an Argilla database (no {', '.join(sorted(missing))} table)")


def backup(home: Path, out: Path | None = None) -> Path:
    source = Path(home) / DATABASE
    if not source.is_file():
        raise CodigitError(f"no embedded database at {source}; for PostgreSQL use pg_dump")
    out = Path(out or place(home, "backups") / f"argilla-{_stamp()}.db")
    if out.exists():
        raise CodigitError(f"{out} already exists")
    tmp = out.with_name(f".{out.name}.tmp")
    with no_new_empty_folders(out):
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            # created private: participants' writing, consent and positionality are in it from the first page
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            with contextlib.closing(sqlite3.connect(source, timeout=60)) as src:
                with contextlib.closing(sqlite3.connect(tmp)) as dst:
                    src.backup(dst)  # page by page, restarted under concurrent writes: one consistent snapshot
                    # the copy inherits the server's WAL mode; one self-contained file needs no -wal/-shm beside it
                    dst.execute("PRAGMA journal_mode=DELETE")
            _check(tmp)
            os.replace(tmp, out)
        except (OSError, sqlite3.Error) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else e
            raise CodigitError(f"backup to {out} failed ({why}); nothing was kept") from None
        finally:
            for leftover in (tmp, Path(f"{tmp}-journal"), Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
                with contextlib.suppress(OSError):
                    leftover.unlink(missing_ok=True)
    return out


def _server_answers(home: Path) -> str | None:
    import urllib.request  # here: it loads ssl and http, which `codigit --help` (this module's parser) need not

    try:
        url = json.loads((Path(home) / SERVER_FILE).read_text())["url"]
        with urllib.request.urlopen(f"{url}/api/v1/status", timeout=2):
            return url
    except (OSError, KeyError, ValueError):
        return None


def restore(home: Path, source: Path) -> Path | None:
    """Put a backup in place as the home's database; returns where the previous database was kept."""
    source, home = Path(source), Path(home)
    if not source.is_file():
        raise CodigitError(f"{source}: backup file not found")
    _check(source)
    if url := _server_answers(home):
        raise CodigitError(f"a server is running on this home ({url}): stop it first, then restore")
    target = home / DATABASE
    kept = None
    home.mkdir(parents=True, exist_ok=True)
    tmp = home / f".{DATABASE}.restore.tmp"
    try:
        shutil.copyfile(source, tmp)
        os.chmod(tmp, 0o600)
        if target.exists():
            kept = home / f"{DATABASE}.before-restore-{_stamp()}"
            os.replace(target, kept)
            for suffix in ("-wal", "-shm"):  # its journal goes with it: never replayed onto the restored database
                if Path(f"{target}{suffix}").exists():
                    os.replace(f"{target}{suffix}", f"{kept}{suffix}")
        os.replace(tmp, target)
    except OSError as e:
        raise CodigitError(f"restore into {target} failed ({e.strerror or e})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return kept


def run_backup(args: argparse.Namespace) -> None:
    print(f"backup: {backup(resolve_home(args.home), args.out)} (mode 0600; integrity checked)")


def run_restore(args: argparse.Namespace) -> None:
    kept = restore(resolve_home(args.home), args.backup)
    print(f"restored {args.backup}" + (f"; the previous database is kept as {kept}" if kept else ""))


def add_parser(sub, parents: Parents) -> None:
    p = sub.add_parser("backup", parents=[parents.home],
                       help="consistent copy of the embedded database (safe while serving)")  # fmt: skip
    p.add_argument("--out", type=Path, help="file to write (default: backups/argilla-TIME.db in the data folder)")
    p.set_defaults(func=run_backup)
    p = sub.add_parser("restore", parents=[parents.home], help="put a backup in place (the server must be stopped)")
    p.add_argument("backup", type=Path)
    p.set_defaults(func=run_restore)
