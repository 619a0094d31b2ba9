"""Words and phrases distinctive of an author group's stories: the log-odds ratio with an informative Dirichlet
prior of Monroe, Colaresi & Quinn (2008), "Fightin' Words", eqs. 16 and 19-22.

Against raw frequency ratios, the prior (counts over all the question's analysed stories) shrinks rare terms
towards no difference, and the z-score divides by the estimate's spread, so a word seen twice does not top the list.
A term is listed for a group only when at least `min_authors` of the group's authors used it: one person's turn of
phrase does not stand for a group, and its excerpts cannot point at one person. Excerpts carry no ids.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas

# letters and digits, with apostrophes and hyphens inside a word kept ("don't", "non-binary")
WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
SENTENCE_END = re.compile(r"[.!?;\n]+")
CLOSING_QUOTE = re.compile(r"[\"”’]\s+")  # a quote mark then a space, opening a sentence
EXCERPT_CHARS = 200
STOPWORDS = frozenset(
    "a about above after again against all am an and any are as at be because been before being below between both "
    "but by can could did do does doing down during each few for from further had has have having he her here hers "
    "herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off "
    "on once only or other our ours ourselves out over own same she should so some such than that the their "
    "theirs them themselves then there these they this those through to too under until up very was we were what "
    "when where which while who whom why will with would you your yours yourself yourselves "
    "i'm it's don't didn't can't i've i'd i'll he's she's that's there's they're we're you're isn't wasn't".split()
)
DISTINCTIVE_COLUMNS = ["question", "group", "authors", "term", "n", "count_group", "count_rest", "log_odds", "z"]
EXCERPT_COLUMNS = ["question", "group", "term", "excerpt"]


def tokens(text: str) -> list[str]:
    """Lowercase word tokens; punctuation dropped, a curly apostrophe read as a straight one."""
    return [t.replace("’", "'") for t in WORD.findall(text.lower())]


def terms(text: str, max_n: int = 2) -> list[str]:
    """Unigrams up to `max_n`-grams ("a b"); an n-gram never spans a sentence end (. ! ? ; or a newline)."""
    out: list[str] = []
    for sentence in SENTENCE_END.split(text):
        words = tokens(sentence)
        for n in range(1, max_n + 1):
            out.extend(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
    return out


def log_odds(
    group: Mapping[str, int], rest: Mapping[str, int], prior: Mapping[str, int], prior_scale: float | None = None
) -> dict[str, tuple[float, float]]:
    """term -> (delta, z): the prior-smoothed log-odds ratio of the term in `group` against `rest` and its z-score
    (Monroe et al. 2008, eqs. 16 and 19-22), for the terms of either side that the prior holds."""
    total = sum(prior.values())
    scale = prior_scale / total if prior_scale is not None and total else 1.0
    alpha = {w: c * scale for w, c in prior.items() if c > 0}
    a0 = sum(alpha.values())
    n_i, n_j = sum(group.values()), sum(rest.values())
    out = {}
    for w in sorted((set(group) | set(rest)) & set(alpha)):
        a, yi, yj = alpha[w], group.get(w, 0), rest.get(w, 0)
        delta = math.log((yi + a) / (n_i + a0 - yi - a)) - math.log((yj + a) / (n_j + a0 - yj - a))
        out[w] = (delta, delta / math.sqrt(1 / (yi + a) + 1 / (yj + a)))
    return out


def _is_stop(term: str) -> bool:
    return all(w in STOPWORDS for w in term.split(" "))


def excerpt(text: str, term: str) -> str | None:
    """The first sentence of `text` that holds `term`, cut to about EXCERPT_CHARS around it ("…" where cut)."""
    words = term.split(" ")
    start = 0
    for end_match in [*SENTENCE_END.finditer(text), None]:
        end = end_match.start() if end_match else len(text)
        sentence = text[start:end]
        found = list(WORD.finditer(sentence))
        lowered = [m.group().lower().replace("’", "'") for m in found]
        for i in range(len(found) - len(words) + 1):
            if lowered[i : i + len(words)] == words:
                return _trim(sentence, found[i].start(), found[i + len(words) - 1].end())
        start = end_match.end() if end_match else end
    return None


def _trim(sentence: str, lo: int, hi: int) -> str:
    """sentence[lo:hi] (the term) with context up to about EXCERPT_CHARS, cut only between words."""
    first = len(sentence) - len(sentence.lstrip())
    if closing := CLOSING_QUOTE.match(sentence, first):  # it closed the speech the previous sentence ended
        first = closing.end()
    last = len(sentence.rstrip())
    left, right = first, last
    if last - first > EXCERPT_CHARS:
        left = max(first, min((lo + hi - EXCERPT_CHARS) // 2, last - EXCERPT_CHARS))
        right = max(hi, min(last, left + EXCERPT_CHARS))
        left = min(left, lo)
        while first < left < lo and not sentence[left - 1].isspace():
            left += 1  # a word cut at the left edge is left out
        while hi < right < last and not sentence[right].isspace():
            right -= 1  # and at the right edge
    head = "…" if left > first else ""
    tail = "…" if right < last else ""
    return head + " ".join(sentence[left:right].split()) + tail


def distinctive(
    stories: Sequence[tuple[str, str, str]],
    groups: Mapping[str, Mapping[str, list[str]]],
    top: int = 10,
    min_authors: int = 2,
    max_n: int = 2,
    k: int = 1,
) -> tuple[pandas.DataFrame, pandas.DataFrame]:
    """Per question and group: the `top` terms by z (positive only: more typical of the group than of the
    question's other authors), each used by at least `min_authors` of the group's authors, and up to two
    excerpts per term from stories of different authors of the group. A group, or a rest, of fewer than k
    authors is not compared. The rest is every author in `groups[question]` outside the group (map authors to []
    there to count them in the rest without a group of their own)."""
    import pandas as pd

    counted = [(sid, author, text, Counter(terms(text, max_n))) for sid, author, text in sorted(stories)]
    rows, quotes = [], []
    for question in sorted(groups):
        mine = [s for s in counted if s[1] in groups[question]]
        prior: Counter[str] = Counter()
        for s in mine:
            prior.update(s[3])
        for group in sorted({g for s in mine for g in groups[question][s[1]]}):
            inside = [s for s in mine if group in groups[question][s[1]]]
            outside = {s[1] for s in mine} - {s[1] for s in inside}
            if len({s[1] for s in inside}) < k or len(outside) < k:
                continue
            group_counts: Counter[str] = Counter()
            rest_counts: Counter[str] = Counter()
            users: dict[str, set[str]] = defaultdict(set)
            for _, author, _, c in mine:
                (group_counts if group in groups[question][author] else rest_counts).update(c)
            for _, author, _, c in inside:
                for term in c:
                    users[term].add(author)
            scores = log_odds(group_counts, rest_counts, prior)
            kept = [(t, d, z) for t, (d, z) in scores.items()
                    if z > 0 and len(users.get(t, ())) >= min_authors and not _is_stop(t)]  # fmt: skip
            kept.sort(key=lambda row: (-row[2], row[0]))
            n_authors = len({s[1] for s in inside})
            for term, delta, z in kept[:top]:
                rows.append({"question": question, "group": group, "authors": n_authors, "term": term,
                             "n": term.count(" ") + 1, "count_group": group_counts[term],
                             "count_rest": rest_counts[term], "log_odds": delta, "z": z})  # fmt: skip
                shown: set[str] = set()
                for _, author, text, c in inside:
                    if len(shown) == 2:
                        break
                    if term in c and author not in shown and (quote := excerpt(text, term)) is not None:
                        shown.add(author)  # different authors, so also different stories
                        quotes.append({"question": question, "group": group, "term": term, "excerpt": quote})
    return pd.DataFrame(rows, columns=DISTINCTIVE_COLUMNS), pd.DataFrame(quotes, columns=EXCERPT_COLUMNS)
