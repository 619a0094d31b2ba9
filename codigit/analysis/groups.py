"""Author groups from positionality answers, with small groups pooled, and how often each code appears by group.

Rules (k is the study's minimum group size):

- Only the people given count (e.g. the authors whose stories are analysed): a group's size is how many of them
  it holds, since that is who a reader could pick out in the output.
- An answer held by fewer than k of them becomes `other/suppressed`; when that pooled group itself has fewer than
  k people it is dropped, and those people have no group for the question. No group in the output is under k. A
  multi-label answer puts a person in several groups.
- A per-row export (`export_groups`) goes further: every combination of exported values over all questions is
  shared by at least k people. Where one is not, the (question, value) held by the fewest of the offending people
  is pooled, one at a time, until none is left; each step is logged with its reason.
- `code_frequencies` treats authors as the unit: stories are nested in authors (one prolific author is not many
  independent observations), so the CI resamples authors with all their stories and the permutation test
  shuffles group membership across authors.
"""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas

SUPPRESSED = "other/suppressed"
Answers = Mapping[str, Mapping[str, "str | list[str]"]]
FREQUENCY_COLUMNS = ["question", "group", "authors", "stories", "code", "count", "share", "ci_low", "ci_high",
                     "rest_share", "diff", "p", "p_adjusted"]  # fmt: skip


def _values(answers: Answers, person: str, question: str) -> list[str]:
    value = answers.get(person, {}).get(question)
    if value is None:
        return []
    return sorted(set(value if isinstance(value, list) else [value]))


def _people(n: int) -> str:
    return f"{n} person" if n == 1 else f"{n} people"


def _pool_rare(answers: Answers, question: str, people: list[str], k: int, log: list[str]) -> dict[str, list[str]]:
    """person -> their values for the question, each value held by fewer than k of `people` replaced by SUPPRESSED."""
    held = {p: _values(answers, p, question) for p in people}
    counts = Counter(v for values in held.values() for v in values)
    rare = {v for v, n in counts.items() if n < k and v != SUPPRESSED}
    if rare:  # never the counts: how many gave a rare answer is itself what suppression hides
        log.append(f"{question}: {', '.join(sorted(rare))} pooled into {SUPPRESSED}: fewer than {k} gave each")
    return {p: sorted({SUPPRESSED if v in rare else v for v in values}) for p, values in held.items()}


def author_groups(
    answers: Answers, questions: Sequence[str], people: Collection[str], k: int, log: list[str] | None = None
) -> dict[str, dict[str, list[str]]]:
    """question -> {person: [group, ...]} over `people`; no group has fewer than k of them (see the module).
    What was pooled or left out is appended to `log`."""
    everyone = sorted(set(people))
    log = [] if log is None else log
    out: dict[str, dict[str, list[str]]] = {}
    for question in questions:
        held = _pool_rare(answers, question, everyone, k, log)
        pooled = [p for p, values in held.items() if SUPPRESSED in values]
        drop = len(pooled) < k  # the pool is as identifying as the answers in it
        if drop and pooled:
            log.append(f"{question}: {SUPPRESSED} left out too: fewer than {k} in it")
        out[question] = {}
        for p, values in held.items():
            kept = [v for v in values if not (drop and v == SUPPRESSED)]
            if kept:
                out[question][p] = kept
    return out


def export_groups(
    answers: Answers, questions: Sequence[str], people: Collection[str], k: int
) -> tuple[dict[str, dict[str, str]], list[str]]:
    """person -> {question: value} ("; "-joined for multi-label, "" when unanswered) such that every combination
    of values over `questions` is shared by at least k people, and the log of what was pooled and why."""
    everyone = sorted(set(people))
    log: list[str] = []
    held = {q: _pool_rare(answers, q, everyone, k, log) for q in questions}
    rows = {p: {q: "; ".join(held[q][p]) for q in questions} for p in everyone}

    def combination(p: str) -> tuple[str, ...]:
        return tuple(rows[p][q] for q in questions)

    while True:
        sizes = Counter(combination(p) for p in everyone)
        offending = [p for p in everyone if sizes[combination(p)] < k]
        if not offending:
            return rows, log
        cells = Counter((q, rows[p][q]) for p in offending for q in questions if rows[p][q] != SUPPRESSED)
        if cells:
            # the value that fewest offending people hold: pooling it loses the least information
            (q, v), n = min(cells.items(), key=lambda item: (item[1], item[0]))
            for p in offending:
                if rows[p][q] == v:
                    rows[p][q] = SUPPRESSED
            shown = v or "(no answer)"
            log.append(f"{q}: {shown} pooled into {SUPPRESSED} for some people: their combination of answers is "
                       f"shared by fewer than {k}")  # fmt: skip
            continue
        # The offending rows are all pooled and still too few: pool the smallest other combination in with them.
        others = Counter(combination(p) for p in everyone if p not in offending)
        if not others:
            log.append(f"all {_people(len(everyone))} pooled into {SUPPRESSED}: fewer than {k} in all")
            return rows, log
        smallest = min(others.items(), key=lambda item: (item[1], item[0]))[0]
        for p in everyone:
            if combination(p) == smallest:
                rows[p] = dict.fromkeys(questions, SUPPRESSED)
        shown = " / ".join(v or "(no answer)" for v in smallest)
        log.append(f"{shown} pooled into {SUPPRESSED}: the fully pooled rows were fewer than {k}")


def code_frequencies(
    stories: Sequence[tuple[str, str, frozenset[str]]],
    groups: Mapping[str, Mapping[str, list[str]]],
    codes: Sequence[str],
    n_boot: int = 2000,
    n_perm: int = 5000,
    seed: int = 0,
    k: int = 1,
) -> pandas.DataFrame:
    """Per question, group and code: the share of the group's stories with the code, a cluster-bootstrap 95% CI
    over authors, the share among the question's other authors' stories, and a permutation p of the difference
    (membership shuffled across authors), Benjamini-Hochberg within each question. Groups with fewer than k
    authors among `stories` are left out (`groups` built over other people may hold members who wrote none), and
    so is the comparison when the rest has fewer than k authors. The rest is every author in `groups[question]`
    outside the group: map authors to [] there to count them in the rest without a group of their own."""
    import numpy as np
    import pandas as pd

    from codigit.analysis.stats import benjamini_hochberg

    by_author: dict[str, list[frozenset[str]]] = defaultdict(list)
    for _, author, applied in stories:
        by_author[author].append(applied)
    frames = []
    for question in sorted(groups):
        authors = sorted(a for a in groups[question] if a in by_author)
        if not authors:
            continue
        n_stories = np.array([len(by_author[a]) for a in authors], float)
        counts = np.array([[sum(c in s for s in by_author[a]) for c in codes] for a in authors], float)
        counts = counts.reshape(len(authors), len(codes))
        rows = []
        for group in sorted({g for a in authors for g in groups[question][a]}):
            member = np.array([group in groups[question][a] for a in authors])
            m = int(member.sum())
            if m < k:
                continue
            rng = np.random.default_rng([seed, zlib.crc32(question.encode()), zlib.crc32(group.encode())])
            share = counts[member].sum(0) / n_stories[member].sum()
            # cluster bootstrap: how many times each of the group's authors is drawn, per resample
            weights = rng.multinomial(m, np.full(m, 1 / m), size=n_boot)
            boots = (weights @ counts[member]) / (weights @ n_stories[member])[:, None]
            low, high = np.percentile(boots, [2.5, 97.5], axis=0) if n_boot else (share * np.nan, share * np.nan)
            rest = ~member
            if rest.sum() >= k and n_stories[rest].sum() > 0:  # the rest is a group too: never fewer than k
                rest_share = counts[rest].sum(0) / n_stories[rest].sum()
                diff = share - rest_share
                perms = rng.permuted(np.tile(member, (n_perm, 1)), axis=1).astype(float)
                others = 1 - perms
                perm_share = (perms @ counts) / (perms @ n_stories)[:, None]
                perm_diff = perm_share - (others @ counts) / (others @ n_stories)[:, None]
                p = (1 + (np.abs(perm_diff) >= np.abs(diff) - 1e-12).sum(0)) / (1 + n_perm)
            else:
                rest_share = diff = p = np.full(len(codes), np.nan)
            for i, code in enumerate(codes):
                rows.append({"question": question, "group": group, "authors": m,
                             "stories": int(n_stories[member].sum()), "code": code,
                             "count": int(counts[member, i].sum()), "share": share[i], "ci_low": low[i],
                             "ci_high": high[i], "rest_share": rest_share[i], "diff": diff[i], "p": p[i]})  # fmt: skip
        frame = pd.DataFrame(rows, columns=FREQUENCY_COLUMNS[:-1])
        frame["p_adjusted"] = benjamini_hochberg(frame["p"].tolist())
        frames.append(frame)
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=FREQUENCY_COLUMNS)
    return pd.concat(frames, ignore_index=True)[FREQUENCY_COLUMNS]
