"""What the embedded server knows of the study: the study `codigit init` last set up, the review rounds the
organisers closed, and the language each participant chose. All are small files in the home; the server rereads
them when they change, so `init` and `review close` take effect without a restart.

`init` deploys a copy of the study's folder into the home (`<home>/studies/<time>/`, then points `study.json` at
it in one rename), so what participants are shown and held to is what `init` checked and set up on Argilla (the
consent text of the consent version it created, among others), not whatever the organisers' working copy holds
between two `init`s.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from codigit.errors import CodigitError
from codigit.home import atomic_dir, atomic_write, locked
from codigit.languages import Localised, choose, every_language
from codigit.records import utc_now
from codigit.study import Study, load_study

STUDY_POINTER = "study.json"
STUDIES = "studies"
ROUNDS_FILE = "review-rounds.json"
LANGUAGES_FILE = "languages.json"
CODERS_FILE = "coding-rounds.json"  # coding dataset -> the researchers who may answer it (`codigit coding`)
_LOGGER = logging.getLogger("codigit.server")


class StudyUnavailable(CodigitError):
    """A study was set up, but none can be loaded now: the server refuses participants' answers (fails closed)."""


def record_study(home: Path, study_file: Path) -> Path:
    """`codigit init`: deploy a copy of the study's folder; the embedded server applies this study from now on."""
    study_file = Path(study_file).resolve()
    deployed = home / STUDIES / utc_now().replace(":", "")
    (home / STUDIES).mkdir(mode=0o700, exist_ok=True)
    with atomic_dir(deployed, mode=0o700) as tmp:
        shutil.copytree(study_file.parent, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".*", "__pycache__"))
    atomic_write(home / STUDY_POINTER, json.dumps({"study": str(deployed / study_file.name)}) + "\n", mode=0o600)
    for old in (home / STUDIES).iterdir():  # earlier copies: no longer pointed at
        if old != deployed:
            shutil.rmtree(old, ignore_errors=True)
    return deployed


@dataclass
class _Cached:
    key: tuple = ()
    value: object = None


_study_cache = _Cached()
_rounds_cache = _Cached()
_languages_cache = _Cached()
_coders_cache = _Cached()


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def current_study(home: Path) -> tuple[Study, dict[str, Localised]] | None:
    """The study `init` set up, with what it shows participants in each of its languages; None before the first
    `init`. If it no longer loads (e.g. after an upgrade of codigit), the last good one stays in force, and with
    none, StudyUnavailable: the rules are never silently switched off."""
    pointer = home / STUDY_POINTER
    if not pointer.exists():
        return None
    try:
        path = Path(json.loads(pointer.read_text(encoding="utf-8"))["study"])
    except (OSError, ValueError, KeyError):
        path = pointer  # unreadable: fails to load below
    key = (str(path), _mtime(pointer))  # a deployed copy never changes: a new `init` deploys a new one
    if key != _study_cache.key:
        try:
            study = load_study(path)
            _study_cache.value = (study, every_language(study))
        except CodigitError as e:
            _LOGGER.error("the study no longer loads (%s); the last good one stays in force, if any", e)
            if _study_cache.value is None:
                raise StudyUnavailable(f"the study set up by `codigit init` does not load: {e}") from None
        _study_cache.key = key
    return _study_cache.value  # type: ignore[return-value]


def words(home: Path, language: str | None) -> Localised | None:
    """What the study shows participants, in the language closest to `language`."""
    current = current_study(home)
    return current[1][choose(current[0], language)] if current else None


def participant_languages(home: Path) -> dict[str, str]:
    """Participants -> the language they chose on the study home."""
    return _read_json(home / LANGUAGES_FILE, _languages_cache)


def set_language(home: Path, username: str, language: str) -> None:
    with locked(home):
        chosen = participant_languages(home)
        chosen[username] = language
        atomic_write(home / LANGUAGES_FILE, json.dumps(chosen, indent=2) + "\n", mode=0o600)


def round_coders(home: Path) -> dict[str, list[str]]:
    """Coding dataset -> who may answer it. Every researcher is in the one research workspace, and Argilla counts
    every submitted answer towards a record's N: an answer from anyone else would take a story out of a coder's
    queue, so the embedded server refuses it."""
    return _read_json(home / CODERS_FILE, _coders_cache)


def set_round_coders(home: Path, dataset: str, coders: list[str]) -> None:
    with locked(home):
        every = round_coders(home)
        every[dataset] = sorted(coders)
        atomic_write(home / CODERS_FILE, json.dumps(every, indent=2) + "\n", mode=0o600)


def _read_json(path: Path, cache: _Cached) -> dict:
    key = (_mtime(path),)
    if key != cache.key:
        try:
            cache.value = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            cache.value = {}
        except (OSError, ValueError) as e:
            raise CodigitError(f"{path}: unreadable ({e}); restore it from a backup") from None
        cache.key = key
    return dict(cache.value)  # type: ignore[arg-type]


def closed_rounds(home: Path) -> dict[str, str]:
    """Review rounds the organisers closed -> when."""
    return _read_json(home / ROUNDS_FILE, _rounds_cache).get("closed", {})


def close_round(home: Path, round_name: str) -> tuple[str, bool]:
    """Record that a review round is closed; returns (when, newly closed)."""
    with locked(home):
        closed = closed_rounds(home)
        if round_name in closed:
            return closed[round_name], False
        closed[round_name] = utc_now()
        atomic_write(home / ROUNDS_FILE, json.dumps({"closed": closed}, indent=2) + "\n", mode=0o600)
        return closed[round_name], True
