"""A scan for personal data in stories: what a reviewer might miss, for an organiser to decide on.

It errs towards flagging: a flag costs an organiser one decision, a miss can put a person's details into a
published dataset and a model's memory.

One pass of an Aho–Corasick automaton over the text, folded as `re.I` compares characters, finds the roster's
names and what each pattern cannot match without ('@', '/', 'www.', digits); a pattern runs only where that is
there (most stories have none of it), and the digit-led ones only from the digits. What is found is what the
patterns, and one case-insensitive alternation of the names between non-word characters, find on the whole text.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from functools import cache
from pathlib import Path

from codigit.errors import CodigitError

STREET_WORDS = ("Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Boulevard|Blvd|Drive|Dr|Way|Court|Ct|Place|Pl|Square|Sq|Terrace|"
                "Close|Crescent|Gardens|Strasse|Straße")  # fmt: skip
PATTERNS = {
    "email": re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
    "url": re.compile(r"\bhttps?://\S+|\bwww\.[\w-]+\.\S+|\b[\w-]+\.(?:com|org|net|io|info|me|co|de|fr|uk)/\S*", re.I),
    "phone": re.compile(r"(?<![\w])\+?\d(?:[\s().-]*\d){7,14}(?![\w])|(?<![\w-])\d{3}-\d{4}(?![\w-])"),
    "street address": re.compile(
        rf"\b\d{{1,5}}[A-Za-z]?,?\s+(?:[A-Za-z][\w'-]+\s+){{1,3}}(?:{STREET_WORDS})\b\.?", re.I
    ),
}
# What a pattern cannot match without: the email's '@'; the url's "://", "www." or ".com/" (each has a '/' but
# "www."); the phone's 7 digits or more (begun by a digit or '+'); the address's digit (where it begins).
NEEDS = {"@": "email", "/": "url", "www.": "url", "+": "start", **dict.fromkeys("0123456789", "digit")}
OTHER_DIGITS = re.compile(r"[^\D0-9]")  # `\d`'s other 650 digits (Arabic-Indic, Devanagari...): kept out of the
# automaton, whose DFA they would make twice as slow to build
# `re.I` compares characters by their simple lowercase (str.lower's, but İ's, which is i) and takes these
# lowercase letters as one (the stdlib's re._casefix): each maps to the smallest of its kind.
SAME = {0x131: 0x69, 0x17F: 0x73, 0x3B9: 0x345, 0x3BC: 0xB5, 0x3C3: 0x3C2, 0x3D0: 0x3B2, 0x3D1: 0x3B8, 0x3D5: 0x3C6,
        0x3D6: 0x3C0, 0x3F0: 0x3BA, 0x3F1: 0x3C1, 0x3F5: 0x3B5, 0x1C80: 0x432, 0x1C81: 0x434, 0x1C82: 0x43E,
        0x1C83: 0x441, 0x1C84: 0x442, 0x1C85: 0x442, 0x1C86: 0x44A, 0x1C87: 0x463, 0x1E9B: 0x1E61, 0x1FBE: 0x345,
        0x1FD3: 0x390, 0x1FE3: 0x3B0, 0xA64B: 0x1C88, 0xFB06: 0xFB05}  # fmt: skip


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


def fold(text: str) -> str:
    """`text` as `re.I` compares it, one character for each of its characters (so a match's place is its place)."""
    low = text.lower()
    if len(low) != len(text):  # only İ lowers to two characters; re takes it as i
        low = text.replace("\u0130", "i").lower()
    return low if low.isascii() else low.translate(SAME)


def is_word(char: str) -> bool:
    """What `\\w` matches."""
    return char.isalnum() or char == "_"


class Names:
    """The roster's names and what the patterns need, in one automaton: a story is read once, whatever the
    roster's size. Built by `names_pattern`."""

    def __init__(self, names: list[str]) -> None:
        import ahocorasick_rs

        keys: dict[str, tuple[bool, str | None]] = {key: (False, need) for key, need in NEEDS.items()}  # (name?, need)
        for key in map(fold, names):
            keys[key] = (True, keys.get(key, (False, None))[1])  # a name "7" is still a digit
        self.keys = list(keys.values())
        # a DFA reads a story fastest (twice as fast as the crate's own choice) but takes ~2 kB a roster name: past
        # some 12,000 names the crate chooses
        dfa = ahocorasick_rs.Implementation.DFA if len(keys) < 25_000 else None
        self.automaton = ahocorasick_rs.AhoCorasick(list(keys), implementation=dfa)

    def read(self, text: str) -> tuple[list[str], set[str], list[int]]:
        """The names in `text` as the alternation finds them (at each place the longest, then on after it), what
        the patterns need that is there, and where a digit or '+' begins a run (a phone or address may start)."""
        longest: dict[int, int] = {}
        needs: set[str] = set()
        starts: list[int] = []
        for key, start, end in self.automaton.find_matches_as_indexes(fold(text), overlapping=True):
            name, need = self.keys[key]
            after_word = start > 0 and is_word(text[start - 1])
            if need is not None:
                needs.add(need)
                if need in ("digit", "start") and not after_word:
                    starts.append(start)
            if name and not after_word and (end == len(text) or not is_word(text[end])):
                longest[start] = max(end, longest.get(start, 0))
        if not text.isascii() and (other := [m.start() for m in OTHER_DIGITS.finditer(text)]):
            needs.add("digit")
            starts = sorted({*starts, *(i for i in other if i == 0 or not is_word(text[i - 1]))})
        found, after = [], 0
        for start in sorted(longest):
            if start >= after:
                after = longest[start]
                found.append(text[start:after])
        return found, needs, starts


@cache
def _no_names() -> Names:
    return Names([])


def names_pattern(names: list[str]) -> Names | None:
    """The roster's names, ready to scan for (None without names)."""
    return Names(names) if names else None


def scan(text: str, names: Names | None) -> list[str]:
    """What was found, as kinds with the matched text (shown to the organiser, never written to a release)."""
    text = unicodedata.normalize("NFC", text)
    found, needs, starts = (names if names is not None else _no_names()).read(text)
    hits = []
    for kind, rx in PATTERNS.items():
        if kind in ("phone", "street address"):
            hits.extend(f"{kind}: {m}" for m in _from(rx, text, starts if "digit" in needs else []))
        elif kind in needs:
            hits.extend(f"{kind}: {m.group(0)}" for m in rx.finditer(text))
    if names is not None:
        hits.extend(f"roster name: {name}" for name in found)
    return hits


def _from(rx: re.Pattern, text: str, starts: list[int]) -> list[str]:
    """`rx.finditer(text)`'s matches when no match can begin anywhere but at these places (in order): the
    pattern is tried only there, not at every character."""
    found, after = [], 0
    for start in starts:
        if start >= after and (m := rx.match(text, start)):  # match(text, i) sees text[:i] for its look-behinds
            found.append(m.group(0))
            after = m.end()
    return found
