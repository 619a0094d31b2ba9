"""Where an organiser's commands read and write: the same from any directory once `codigit init` recorded it.

Before, every default (`annotation/study.yaml`, `data/snapshots`, `data/releases`, …) was relative to the
directory a command ran in: an organiser who changed directory split the withdrawal notes, snapshots and
releases across folders. `init` now records the study file it checked and one folder for everything derived
(`--data`, default `./data` where `init` ran) in `<home>/places.json`; a parser default of `Recorded(...)`
resolves against it after parsing. Without an `init` in the home, the defaults stay relative to the current
directory, as the README's first steps expect. An explicit option always wins.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from codigit.errors import CodigitError

PLACES_FILE = "places.json"
# under the data folder; `study` and `policy` are files beside each other in the study folder
LAYOUT = {"snapshots": "snapshots", "releases": "releases", "backups": "backups",
          "positionality": "analysis/positionality", "coding": "coding", "corpus": "corpus"}  # fmt: skip


@dataclass(frozen=True)
class Recorded:
    """A parser default read from the home's recorded places after parsing (see `resolve_defaults`)."""

    key: str  # "study", "policy", "codebook", "data" or a LAYOUT key

    def __str__(self) -> str:  # what `--help` shows for %(default)s
        return f"{self.key} as recorded by `codigit init`, else {_fallback(self.key)}"


def _fallback(key: str) -> Path:
    if key == "study":
        return Path("annotation/study.yaml")
    if key in ("policy", "codebook"):
        return Path(f"annotation/{key}.yaml")
    return Path("data") / LAYOUT[key] if key != "data" else Path("data")


def recorded(home: Path) -> dict[str, str]:
    """What `init` recorded in this home ({} before the first `init`)."""
    path = Path(home) / PLACES_FILE
    if not path.is_file():
        return {}
    try:
        places = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        places = None
    if not isinstance(places, dict) or not {"study", "data"} <= set(places):
        raise CodigitError(f"{path}: unreadable; run `codigit init` again to record the study and data folder")
    return places


def place(home: Path, key: str) -> Path:
    """The path a `Recorded(key)` default stands for in this home."""
    places = recorded(home)
    if not places:
        return _fallback(key)
    study = Path(places["study"])
    if key == "study":
        return study
    if key in ("policy", "codebook"):
        return study.parent / f"{key}.yaml"
    return Path(places["data"]) / LAYOUT[key] if key != "data" else Path(places["data"])


def record(home: Path, study: Path, data: Path | None) -> Path:
    """`init`: remember the study file and the data folder (absolute); returns the data folder. A rerun keeps the
    recorded data folder unless `--data` names another."""
    from codigit.home import atomic_write

    data = Path(data).resolve() if data else Path(recorded(home).get("data") or Path("data").resolve())
    places = {"study": str(Path(study).resolve()), "data": str(data)}
    atomic_write(Path(home) / PLACES_FILE, json.dumps(places, indent=2) + "\n", mode=0o600)
    return data


def resolve_defaults(args: argparse.Namespace) -> None:
    """Replace every `Recorded` default in parsed arguments by its path in the home's recorded places."""
    from codigit.home import resolve_home

    wanted = {name: value for name, value in vars(args).items() if isinstance(value, Recorded)}
    if wanted:
        home = resolve_home(getattr(args, "home", None))
        for name, value in wanted.items():
            setattr(args, name, place(home, value.key))
