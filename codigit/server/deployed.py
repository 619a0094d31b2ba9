"""What the embedded server knows of the study: the study file `codigit init` last set up, and the review rounds
the organisers closed. Both are small files in the home; the server rereads them when they change, so `init` and
`review close` take effect without a restart.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from codigit.errors import CodigitError
from codigit.home import atomic_write, locked
from codigit.records import utc_now
from codigit.study import Study, load_study

STUDY_POINTER = "study.json"
ROUNDS_FILE = "review-rounds.json"
_LOGGER = logging.getLogger("codigit.server")


def record_study(home: Path, study_file: Path) -> None:
    """`codigit init`: the embedded server enforces this study's rules and shows its pages from now on."""
    atomic_write(home / STUDY_POINTER, json.dumps({"study": str(Path(study_file).resolve())}) + "\n")


@dataclass
class _Cached:
    key: tuple = ()
    value: object = None


_study_cache = _Cached()
_rounds_cache = _Cached()


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def current_study(home: Path) -> tuple[Study, dict[str, str]] | None:
    """The study `init` set up, with its participants' texts; None before the first `init`. A study file that no
    longer loads keeps the last good one in force (and is logged), so a typo never switches the rules off."""
    pointer = home / STUDY_POINTER
    try:
        path = Path(json.loads(pointer.read_text(encoding="utf-8"))["study"])
    except (OSError, ValueError, KeyError):
        return None
    last = _study_cache.value
    texts = last[0].root / last[0].participant_texts if last else None  # type: ignore[index]
    key = (str(path), _mtime(pointer), _mtime(path), texts and _mtime(texts))
    if key != _study_cache.key:
        try:
            study = load_study(path)
            _study_cache.value = (study, study.participant_words())
        except CodigitError as e:
            _LOGGER.error("the study file no longer loads (%s); the last good one stays in force", e)
        _study_cache.key = key
    return _study_cache.value  # type: ignore[return-value]


def closed_rounds(home: Path) -> dict[str, str]:
    """Review rounds the organisers closed -> when."""
    path = home / ROUNDS_FILE
    key = (_mtime(path),)
    if key != _rounds_cache.key:
        try:
            _rounds_cache.value = json.loads(path.read_text(encoding="utf-8")).get("closed", {})
        except FileNotFoundError:
            _rounds_cache.value = {}
        except (OSError, ValueError) as e:
            raise CodigitError(f"{path}: unreadable ({e}); restore it from a backup") from None
        _rounds_cache.key = key
    return dict(_rounds_cache.value)  # type: ignore[arg-type]


def close_round(home: Path, round_name: str) -> tuple[str, bool]:
    """Record that a review round is closed; returns (when, newly closed)."""
    with locked(home):
        closed = closed_rounds(home)
        if round_name in closed:
            return closed[round_name], False
        closed[round_name] = utc_now()
        atomic_write(home / ROUNDS_FILE, json.dumps({"closed": closed}, indent=2) + "\n", mode=0o600)
        return closed[round_name], True
