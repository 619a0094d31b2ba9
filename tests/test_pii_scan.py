"""The personal-data scan a release runs over every story and prompt: the patterns on planted personal data, roster
names as whole words in any case (one Aho-Corasick pass), checked against the whole-text regexes it replaced."""

from __future__ import annotations

import re
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codigit.release.pii import OTHER_DIGITS, PATTERNS, SAME, fold, is_word, names_pattern, roster_names, scan


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("mail ada@example.org now", ["email"]),
        ("see https://example.org/x or www.example.com", ["url", "url"]),
        ("call 0171 555 0199", ["phone"]),
        ("she lives at 221B Baker Street in town", ["street address"]),
        ("In 2019 she had 3 cats and 12 ideas.", []),
        ("The meeting is at 10:30 on 5 May.", []),
        ("write to ADA@EXAMPLE.ORG", ["email"]),
        ("call +44 (0)20 7946 0958 or 555-1234", ["phone", "phone"]),
        ("ring ٠١٢٣ ٤٥٦ ٧٨٩٠ tonight", ["phone"]),  # any script's digits are digits
        ("in 2019-2020 and 1999/2000", ["phone"]),  # erring towards flagging
        ("WWW.EXAMPLE.COM/path", ["url"]),
        ("see example.org/about and https://x.io", ["url", "url"]),
        ("Flat 2, 10 Downing Street.", ["street address"]),
        ("number 12 in St Ives: 3 Quintero Road", ["street address", "street address"]),
    ],
)
def test_personal_data_scan(text, kinds):
    assert [h.split(":")[0] for h in scan(text, None)] == kinds


ROSTER = "name\nZelda Quintero\nSiobhán O'Brien\nAnne-Marie Ødegård\nİlker Işık\nLi Wei\nBo Ek\n"


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Quintero came by.", ["Quintero"]),  # at the start
        ("I met zelda quintero", ["zelda quintero"]),  # at the end, in any case, the full name over the surname
        ("ZELDA QUINTERO", ["ZELDA QUINTERO"]),
        ("Mrs O'Brien's garden", ["O'Brien"]),
        ("Siobhán O'Brien wrote", ["Siobhán O'Brien"]),
        ("anne-marie ødegård and Ødegård", ["anne-marie ødegård", "Ødegård"]),
        ("née Ødegård-Hansen", ["Ødegård"]),
        ("Quinteros and Ødegårdsen, unquintero, quintero's", ["quintero"]),  # not inside other words
        ("Quintero_2 and Quintero2", []),  # digits and _ are word characters too
        ("Weiss, Weimar and WEI", ["WEI"]),
        ("Bo Ek sailed; Ek alone does not", ["Bo Ek"]),  # a surname under 3 letters only with the first name
        ("IŞIK, ışık and Işik; İLKER IŞIK", ["IŞIK", "ışık", "Işik", "İLKER IŞIK"]),  # as re.I compares them
        ("(Quintero)", ["Quintero"]),
        ("Zelda  Quintero", ["Quintero"]),
        ("Zelda\nQuintero", ["Quintero"]),
        ("😀Quintero", ["Quintero"]),  # places counted in characters, not bytes
        ("Zelda Quintero-Quintero Zelda Quintero", ["Zelda Quintero", "Quintero", "Zelda Quintero"]),
    ],
)
def test_scan_finds_roster_names_as_whole_words_in_any_case(tmp_path: Path, text: str, found: list[str]):
    (tmp_path / "roster.csv").write_text(ROSTER, encoding="utf-8")
    names = roster_names(tmp_path / "roster.csv")
    assert scan(text, names_pattern(names)) == [f"roster name: {name}" for name in found]
    assert scan(text, names_pattern(names)) == _by_regex(text, names)


NAMES = ["Anne-Marie Ødegård", "Siobhán O'Brien", "Zelda Quintero", "İlker Işık", "Quintero", "O'Brien", "Ødegård",
         "Li Wei", "Bo Ek", "Işık", "Wei", "Al", "Σοφία", "José", "Straße", "7"]  # fmt: skip
PARTS = [*"aAiIıİsSſKkσςΣ '-_.,@/+:()0123456789\n", "Zelda", "Quintero", "quintero", "O'Brien", "ØDEGÅRD", "Ødegård",
         "İlker", "IŞIK", "Işık", "josé", "JOSE\u0301", "al", "Wei", "ΣΟΦΊΑ", "STRASSE", "straſſe", "😀", "٣", "١٢٣٤",
         "www.", "http://", ".com/", "221B", "Baker", "Street", "St", "Rd", "555-1234", "+44 ", "20 7946"]  # fmt: skip


@given(st.lists(st.sampled_from(PARTS), max_size=40))
@settings(max_examples=300, deadline=None)
def test_scan_finds_what_the_patterns_and_one_regex_of_the_names_find(parts: list[str]):
    text = "".join(parts)
    assert scan(text, names_pattern(NAMES)) == _by_regex(text, NAMES)
    assert scan(text, None) == _by_regex(text, [])


def _by_regex(text: str, names: list[str]) -> list[str]:
    """The scan as it was before its automaton: each pattern over the whole text, then the roster's names as one
    case-insensitive alternation between non-word characters (longest first)."""
    text = unicodedata.normalize("NFC", text)
    hits = [f"{kind}: {m.group(0)}" for kind, rx in PATTERNS.items() for m in rx.finditer(text)]
    if names:
        names = sorted(names, key=lambda n: (-len(n), n))
        alternation = re.compile(r"(?<!\w)(" + "|".join(map(re.escape, names)) + r")(?!\w)", re.I)
        hits += [f"roster name: {m.group(0)}" for m in alternation.finditer(text)]
    return hits


def test_the_scan_folds_case_and_tells_words_and_digits_as_re_does():
    chars = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    word, digit = re.compile(r"\w"), re.compile(r"\d")
    assert [c for c in chars if bool(word.match(c)) != is_word(c)] == []
    assert [c for c in chars if bool(digit.match(c)) != (c in "0123456789" or bool(OTHER_DIGITS.match(c)))] == []
    assert [c for c in chars if (fold(c) in "0123456789") != (c in "0123456789")] == []
    assert [c for c in chars if len(fold(c)) != 1] == []  # a match's place in the folded text is its place
    for c in (c for c in chars if fold(c) != c):  # re.I takes each character and its fold as the same, both ways
        assert re.fullmatch(re.escape(c), fold(c), re.I) and re.fullmatch(re.escape(fold(c)), c, re.I), hex(ord(c))
    casefix = pytest.importorskip("re._casefix")  # and the letters re.I takes as one fold to one
    groups = {frozenset((k, *v)) for k, v in casefix._EXTRA_CASES.items()}
    assert {frozenset((c, *[k for k, v in SAME.items() if v == c])) for c in set(SAME.values())} == groups
