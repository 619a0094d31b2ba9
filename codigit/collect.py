"""`codigit collect`: one consistent snapshot of stories, reviews, consent and positionality from Argilla's database.

The source of truth is read with a single SQL statement, so the snapshot is one point in time on SQLite (WAL) and
PostgreSQL alike, while participants keep writing. What counts and what is left out: `codigit.snapshot`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from codigit.cli_types import Parents
from codigit.contributions import IMPORT_DATASET
from codigit.errors import CodigitError
from codigit.places import Recorded

if TYPE_CHECKING:
    from codigit.records import Snapshot
    from codigit.study import Study

# private: listed in codigit/upstream.py
QUERY = """
SELECT w.name, d.name, r.id, r.external_id, r.fields, u.username, u.role, s."values", s.updated_at
FROM records r
JOIN datasets d ON d.id = r.dataset_id
JOIN workspaces w ON w.id = d.workspace_id
LEFT JOIN responses s ON s.record_id = r.id AND s.status = 'submitted'
LEFT JOIN users u ON u.id = s.user_id
WHERE d.name IN (:stories, :consent, :about, :contributions)
   OR (w.name = :shared AND (d.name LIKE :review OR d.name LIKE :texts_review))
   OR (w.name = :organisers AND d.name IN (:ledger, :imported))
"""


def database_url(home: Path, override: str | None = None) -> str:
    """A synchronous SQLAlchemy URL for the server's database: --database-url, else the embedded SQLite."""
    if override:
        url = override.replace("+asyncpg", "").replace("+aiosqlite", "")
        if not url.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg2://")):
            raise CodigitError(f"--database-url {override!r}: give sqlite:///PATH or postgresql://USER@HOST/DB")
        return url
    path = home / "argilla.db"
    if not path.exists():
        raise CodigitError(
            f"no embedded database at {path}: run `codigit serve --home {home}` first, or pass --database-url "
            "(the PostgreSQL of an external Argilla)"
        )
    return f"sqlite:///file:{path}?mode=ro&uri=true"


def read_rows(url: str, study: Study) -> list[tuple]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        engine = create_engine(url)
    except (ImportError, SQLAlchemyError) as e:  # e.g. postgresql:// without the [postgresql] extra's driver
        where = url.split("@")[-1]  # never the password
        raise CodigitError(f"cannot open {where} ({e}); for PostgreSQL: pip install 'codigit[postgresql]'") from None
    params = {
        "stories": study.stories.dataset,
        "consent": study.consent.dataset,
        "about": study.positionality.dataset,
        "shared": study.workspace,
        "review": study.review.dataset_prefix + "-%",
        "organisers": study.organiser_workspace,
        "ledger": study.ledger_dataset,
        # a study without contributions reads none: no dataset has an empty name
        "contributions": study.contributions.dataset if study.contributions else "",
        "imported": IMPORT_DATASET,
        "texts_review": texts.dataset_prefix + "-%"
        if (texts := study.contributions and study.contributions.review)
        else "",
    }
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(QUERY), params)]
    except SQLAlchemyError as e:
        raise CodigitError(f"cannot read Argilla's database ({type(e).__name__}: {e.args[0][:200]})") from None
    finally:
        engine.dispose()


def take_snapshot(study: Study, home: Path, database_url_override: str | None = None) -> Snapshot:
    """The server's data now, in memory."""
    if os.environ.get("ARGILLA_API_URL") and not database_url_override:
        raise CodigitError(
            "collect reads Argilla's database in one statement for a consistent snapshot: with an external "
            "Argilla, pass --database-url postgresql://USER@HOST/DB (its ARGILLA_DATABASE_URL)"
        )
    from codigit.snapshot import build_snapshot, paused_gc

    url = database_url(home, database_url_override)
    source = "embedded" if database_url_override is None else url.split("@")[-1]  # never the password
    with paused_gc():  # the rows read stay alive until the snapshot is made from them
        return build_snapshot(read_rows(url, study), study, source)


def collect(study: Study, home: Path, out: Path, database_url_override: str | None = None) -> tuple[Path, Snapshot]:
    """Take a snapshot and write it under `out` (atomically); returns its folder and the snapshot."""
    from codigit.records import write_snapshot

    snapshot = take_snapshot(study, home, database_url_override)
    return write_snapshot(snapshot, out), snapshot


def run(args: argparse.Namespace) -> None:
    from codigit.home import resolve_home
    from codigit.records import counts_line
    from codigit.study import load_study

    path, snapshot = collect(load_study(args.study), resolve_home(args.home), args.out, args.database_url)
    for problem in snapshot.meta.problems:
        print(f"codigit: warning: {problem.participant}: {problem.what} {problem.id}: {problem.message}; left out",
              file=sys.stderr)  # fmt: skip
    print(f"snapshot {path}: {counts_line(snapshot.meta.counts)}")
    if snapshot.meta.excluded:
        print("left out: " + counts_line(snapshot.meta.excluded))


def add_parser(sub, parents: Parents) -> None:
    p = sub.add_parser("collect", parents=[parents.home, parents.study, parents.database],
                       help="snapshot stories, reviews, consent and positionality")  # fmt: skip
    p.add_argument("--out", type=Path, default=Recorded("snapshots"), help="snapshots folder (default: %(default)s)")
    p.set_defaults(func=run)
