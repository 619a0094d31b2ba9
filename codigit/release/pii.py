"""A scan for personal data in stories: what a reviewer might miss, for an organiser to decide on.

It errs towards flagging: a flag costs an organiser one decision, a miss can put a person's details into a
published dataset and a model's memory.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from pathlib import Path

from codigit.errors import CodigitError

PATTERNS = {
    "email": re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
    "url": re.compile(r"\bhttps?://\S+|\bwww\.[\w-]+\.\S+|\b[\w-]+\.(?:com|org|net|io|info|me|co|de|fr|uk)/\S*", re.I),
    "phone": re.compile(r"(?<![\w])\+?\d(?:[\s().-]*\d){7,14}(?![\w])|(?<![\w-])\d{3}-\d{4}(?![\w-])"),
    "street address": re.compile(
        r"\b\d{1,5}[A-Za-z]?,?\s+(?:[A-Za-z][\w'-]+\s+){1,3}(?:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Boulevard|"
        r"Blvd|Drive|Dr|Way|Court|Ct|Place|Pl|Square|Sq|Terrace|Close|Crescent|Gardens|Strasse|Straße)\b\.?",
        re.I,
    ),
}


def roster_names(path: Path) -> list[str]:
    """Full names and surnames from the organiser's roster or logins CSV (names never leave their machine)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if "name" not in [h.strip().lower() for h in reader.fieldnames or []]:
                raise CodigitError(f"{path}: no `name` column, so the personal-data scan would miss every name")
            names = [(r.get("name") or r.get("Name") or "").strip() for r in reader]
    except FileNotFoundError:
        raise CodigitError(
            f"{path}: roster not found; the personal-data scan needs participants' names: pass --roster FILE "
            "(a CSV with a name column), or --no-roster to scan without names"
        ) from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise CodigitError(f"{path}: cannot read the roster for the personal-data scan ({e})") from None
    out = set()
    for name in filter(None, names):
        if name.startswith("'") and name[1:2] in ("=", "+", "-", "@", "\t", "\r"):
            name = name[1:]  # the logins file keeps a formula-like name inert with a leading apostrophe
        name = unicodedata.normalize("NFC", name)
        out.add(name)
        parts = name.split()
        if len(parts) > 1 and len(parts[-1]) >= 3:
            out.add(parts[-1])  # a surname alone identifies; first names alone are too common to flag
    return sorted(out, key=lambda n: (-len(n), n))


def names_pattern(names: list[str]) -> re.Pattern | None:
    """One alternation for all roster names: a story is scanned once, not once per name."""
    if not names:
        return None
    return re.compile(r"(?<!\w)(" + "|".join(map(re.escape, names)) + r")(?!\w)", re.I)


def scan(text: str, names: re.Pattern | None) -> list[str]:
    """What was found, as kinds with the matched text (shown to the organiser, never written to a release)."""
    text = unicodedata.normalize("NFC", text)
    hits = [f"{kind}: {m.group(0)}" for kind, rx in PATTERNS.items() for m in rx.finditer(text)]
    if names is not None:
        hits.extend(f"roster name: {m.group(0)}" for m in names.finditer(text))
    return hits
