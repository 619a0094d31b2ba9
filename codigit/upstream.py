"""Every place where codigit relies on a library's internals: one list, each entry with the test that fails if it
stops applying.

Policy (STYLE 16: edits of upstream code are few, named and loud):
- argilla-server has no public Python API, and the embedded server needs more of it than any other library: its
  settings, its app, routes, models, queues and bundled UI. rq, uvicorn, the argilla SDK, TRL and transformers are
  reached into in a few places (a private attribute, a method overridden, private trainer state kept in step).
- Each such use is listed in HOOKS (its entries are data, in upstream.yaml beside this module): the package, the
  internal's dotted name, what codigit does with it and why, where (codigit module:function) and the tests that
  fail when it stops applying. A `# private: listed in codigit/upstream.py` comment beside the code points here.
- The packages patched are pinned with `==` in pyproject.toml to the versions these tests ran on (PINNED); moving a
  pin means running the listed tests on the new version first.
- tests/test_upstream.py checks that every listed internal still exists in the installed packages, that codigit's
  replacements are the ones in place in a built app, that every named test exists, that the pins match what is
  installed, and scans codigit/ so that a new hook cannot be added without being listed here.
- Prefer data to code (a translation table over a code edit), and a public API when one appears.

This module imports nothing from the libraries it lists: the names are strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Packages whose internals codigit patches or reads, pinned with == in pyproject.toml.
PINNED = ("argilla", "argilla-server", "rq", "uvicorn", "starlette", "trl", "transformers", "trackio",
          "sqlalchemy", "aiosqlite")  # fmt: skip
# Packages that appear in HOOKS without an exact pin, and why that is enough.
NOT_PINNED = {
    "fakeredis": "its public API only (FakeStrictRedis), in a range",
}

# argilla-server's tables and columns that codigit reads or indexes with raw SQL (not through its ORM models):
# collect's snapshot query, the FTS5 triggers and query indexes (sqlindex), the per-dataset bm25 (sqltext) and
# backup's check that a file is an Argilla database. tests/test_upstream.py checks each against the installed models.
RAW_SQL = {
    "records": ("id", "dataset_id", "external_id", "fields", "status", "inserted_at"),
    "datasets": ("id", "name", "workspace_id"),
    "workspaces": ("id", "name"),
    "responses": ("record_id", "user_id", "status", "values", "updated_at"),
    "users": ("id", "username", "role"),
    "fields": ("dataset_id", "name", "settings"),
}


@dataclass(frozen=True)
class Hook:
    package: str  # the distribution, as pyproject.toml names it
    internal: str  # importable dotted name: module, then attributes (an instance attribute of a class counts)
    use: str  # what codigit does with it, and why
    where: tuple[str, ...]  # codigit module:function
    tests: tuple[str, ...]  # pytest node ids that fail when it stops applying


def _load() -> tuple[Hook, ...]:
    import yaml

    entries = yaml.safe_load((Path(__file__).parent / "upstream.yaml").read_text(encoding="utf-8"))
    return tuple(Hook(**{**e, "where": tuple(e["where"]), "tests": tuple(e["tests"])}) for e in entries)


# The list itself is data, in upstream.yaml beside this module (one entry per internal, grouped by package).
HOOKS: tuple[Hook, ...] = _load()
