"""`codigit coding export ROUND`: the reconciled stories of a round as a table for pandas, R or a QDA tool, with a
data statement (after Bender & Friedman 2018) saying what is in it, what was left out or pooled, and why.

One row per coded story of a participant who consented and has not withdrawn: its pseudonymous id, a case id per
author that holds only within this export (so stories by one person can be read together, but the export joins
to nothing else by author), prompt, story, the reconciled codes (a column per code too), how they were reached,
the coders' memos, and one group column per positionality question. Group columns hold only answers their owners
allowed the study to use; an answer fewer than k authors gave is pooled into "other/suppressed", and then
further answers are pooled until every combination of group columns is shared by at least k authors (without
that, two columns together could single a person out). Files are written with mode 0600: researchers only.
"""

from __future__ import annotations

import random
import shutil
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from codigit.errors import CodigitError

if TYPE_CHECKING:
    from codigit.records import Snapshot
    from codigit.study import Study


def read_reconciled(folder: Path, round_name: str) -> list:
    from codigit.coding.rounds import Reconciled, check_round_name, read_lines

    path = Path(folder) / check_round_name(round_name) / "reconciled.jsonl"
    try:
        return read_lines(path, Reconciled, "a reconciled round")
    except FileNotFoundError:
        raise CodigitError(
            f"round {round_name} is not reconciled yet: run `codigit coding reconcile {round_name}`"
        ) from None


EXPORT_FILES = ("stories.csv", "stories.parquet", "DATA_STATEMENT.md")


def group_questions(study: Study) -> list[str]:
    return [q.name for q in study.positionality.questions if q.type in ("label", "multi_label") and q.name != "use"]


def export(snapshot: Snapshot, study: Study, k: int, folder: Path, round_name: str, out: Path,
           formats: str = "both") -> list[Path]:  # fmt: skip
    import pandas as pd

    from codigit.analysis.groups import export_groups
    from codigit.coding.reconcile import kept_codebook
    from codigit.coding.rounds import Coding, consented_stories, read_lines, read_round
    from codigit.home import atomic_dir

    info = read_round(folder, round_name)
    codebook = kept_codebook(folder, info)
    stories = consented_stories(snapshot)
    reconciled = [r for r in read_reconciled(folder, round_name) if r.story_id in stories]
    memos: dict[str, list[str]] = {}
    codings_path = Path(folder) / round_name / "codings.jsonl"
    for c in read_lines(codings_path, Coding, "a round's codings") if codings_path.exists() else []:
        if c.memo and c.story_id in stories:
            memos.setdefault(c.story_id, []).append(f"{c.coder}: {c.memo}")
    authors = sorted({stories[r.story_id].author for r in reconciled})
    shuffled = random.SystemRandom().sample(authors, len(authors))  # numbered in no order a pseudonym could give
    case = {a: f"case-{n:03d}" for n, a in enumerate(shuffled, 1)}
    answers = {p.participant: p.answers for p in snapshot.positionality}
    questions = group_questions(study)
    groups, pooled = export_groups(answers, questions, authors, k)
    rows = []
    for r in reconciled:
        s = stories[r.story_id]
        rows.append({
            "story_id": r.story_id, "case": case[s.author], "prompt": s.prompt, "story": s.story,
            "codes": "; ".join(r.codes), **{f"code_{c}": int(c in r.codes) for c in codebook.names},
            "how": r.how, "unresolved": "; ".join(r.unresolved), "memos": " | ".join(memos.get(r.story_id, [])),
            **{f"group_{q}": groups.get(s.author, {}).get(q, "") for q in questions},
            "round": round_name, "codebook_version": codebook.version,
        })  # fmt: skip
    frame = pd.DataFrame(rows)
    statement = data_statement(snapshot, study, k, info, codebook, reconciled, stories, authors, questions, pooled,
                               Path(folder) / round_name / "agreement.json")  # fmt: skip
    out = Path(out).resolve()
    if out.exists() and (not out.is_dir() or {p.name for p in out.iterdir()} - set(EXPORT_FILES)):
        raise CodigitError(f"{out} exists and is not an earlier export (it holds other files): choose another --out")
    earlier = out.with_name(f".earlier-{out.name}")
    if out.exists():  # an earlier export is replaced whole, and kept until the new one is
        shutil.rmtree(earlier, ignore_errors=True)
        out.rename(earlier)
    try:
        with atomic_dir(out, mode=0o700) as tmp:
            if formats in ("csv", "both"):
                frame.to_csv(tmp / "stories.csv", index=False)
            if formats in ("parquet", "both"):
                frame.to_parquet(tmp / "stories.parquet", index=False)
            (tmp / "DATA_STATEMENT.md").write_text(statement, encoding="utf-8")
            for path in tmp.iterdir():
                path.chmod(0o600)
    except BaseException:
        if earlier.exists() and not out.exists():
            earlier.rename(out)
        raise
    shutil.rmtree(earlier, ignore_errors=True)
    return sorted(out.iterdir())


def data_statement(snapshot, study, k, info, codebook, reconciled, stories, authors, questions, pooled,
                   agreement_path: Path) -> str:  # fmt: skip
    excluded = snapshot.meta.excluded
    without_consent = len(snapshot.stories) - len(stories)  # `stories`: the consented ones
    how = Counter(r.how for r in reconciled)
    with_groups = len(set(authors) & {p.participant for p in snapshot.positionality})
    lines = [
        f"# Data statement: coding round {info.round} of {study.title}",
        "",
        "## What this is",
        f"{len(reconciled)} stories by {len(authors)} authors, coded in round {info.round} with codebook "
        f"`{codebook.name}` version {codebook.version} by {len(info.coders)} researchers "
        f"({', '.join(info.coders)}), from snapshot {snapshot.meta.snapshot_id}. Files: `stories.csv` and/or "
        "`stories.parquet` (one row per story), this statement.",
        "",
        "## Who is in it, and who is not",
        f"- Only stories of participants whose consent is valid: {without_consent} stories in the snapshot had "
        "none and are left out.",
        f"- Participants who withdrew are in no snapshot: {excluded.get('stories_withdrawn', 0)} of their stories "
        "were left out at collection, and their copies leave the coding rounds when they withdraw.",
        f"- {len(stories) - len(reconciled)} consented stories were not coded in this round (written after it "
        "opened, or no coder reached them).",
        "- Authors appear as `case` ids that hold within this export only; no names, no usernames.",
        "",
        "## Positionality groups",
        f"Group columns ({', '.join('group_' + q for q in questions)}) hold the answers of the {with_groups} authors "
        f"who allowed the study to use them, in aggregate; the other {len(authors) - with_groups} have empty group "
        f"columns. k = {k} (the release policy's `min_group_size`): an answer given by fewer than {k} authors is "
        f'pooled into "other/suppressed", and more answers are pooled until every combination of group columns '
        f"is shared by at least {k} authors (k-anonymity, Sweeney 2002). Multi-answer questions list the answers "
        'joined by "; ". What was pooled:',
        *([f"- {line}" for line in pooled] or ["- nothing"]),
        "",
        "## Codes",
        "Columns `code_<name>` are 1 when the reconciled set has the code. `how` says how each set was reached: "
        + ", ".join(f"{k_} {v}" for k_, v in sorted(how.items()))
        + " (unanimous: all coders agreed; majority: more than half chose each code; unresolved: some code was "
        "chosen by exactly half and is listed in `unresolved`, not in `codes`; adjudicator: a researcher decided "
        "a disputed story). `memos` are the coders' notes, prefixed with their username.",
    ]
    for code in codebook.codes:
        history = "; ".join(f"version {c.version}: {c.how} from {', '.join(c.was)}" for c in code.history)
        history = f" ({history})" if history else ""
        lines.append(f"- `{code.name}` ({code.title}): {code.definition.strip()}{history}")
    if agreement_path.exists():
        from codigit.coding.rounds import read_json

        rows = read_json(agreement_path, "a round's agreement report").get("codes") or []
        alphas = ", ".join(f"{r.get('label')} {r.get('alpha')}" if r.get("alpha") is not None
                           else f"{r.get('label')} n/a" for r in rows)  # fmt: skip
        lines += ["", "## Agreement", f"Krippendorff's alpha per code (binary), before reconciliation: {alphas}."]
    lines += [
        "",
        "## Use",
        "For the study's researchers. The stories were given for this study under its consent text; do not "
        "publish rows or group columns. Quote a story only as the study's consent allows, and never with a "
        "combination of group columns beside it: the positionality page quotes excerpts under one pooled group "
        "of at least k authors at a time, for phrases at least two of them used.",
        "",
    ]
    return "\n".join(lines)
