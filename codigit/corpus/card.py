"""The human-readable files of a corpus release: its contribution log (CSV and JSON Lines) and dataset card.

The log ships with the corpus and with every model trained on it, so it names a text by its hash and a person
only by the credit name they chose (else "anonymous"): never a pseudonym or a contribution id. Someone who did
not consent to training has neither their name nor their title in it (a line saying "excluded: no consent" beside
a name would tell the world they took part and declined); a title the personal-data scan flags is withheld too.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from typing import TYPE_CHECKING

import yaml
from pydantic import BaseModel, ConfigDict

from codigit.corpus.prepare import KEY_CHARS, REASONS, CorpusSettings, Prepared, clean_title
from codigit.records import Contribution
from codigit.release.card import size_category
from codigit.roster import text_cell

if TYPE_CHECKING:
    from codigit.corpus.release import CorpusManifest

ANONYMOUS = "anonymous"
WITHHELD = "(withheld)"


class LogRow(BaseModel):
    """One contribution in the log, included or not."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str  # the text's key: the parquet's `id` when included
    sha256: str  # of the normalised text
    title: str
    contributor: str  # their credit name, or "anonymous"
    licence: str
    licence_name: str
    tokens: int  # contributed to the corpus: 0 when excluded
    included: str  # "yes" / "no"
    reason: str
    detail: str


def credit(c: Contribution) -> str | None:
    """The name a contributor asked to be credited under for this text, if any."""
    return " ".join((c.attribution_name or "").split()) or None


def log_rows(items: list[Prepared], tokens: dict[str, int]) -> list[LogRow]:
    """`tokens`: text key -> token count of each included text."""
    rows = []
    for p in items:
        c = p.contribution
        hidden = p.reason == "no_consent"
        title = WITHHELD if hidden or (p.reason == "personal_data" and p.title_flagged) else clean_title(c.title)
        rows.append(LogRow(
            id=p.key, sha256=p.sha256, title=title,
            contributor=ANONYMOUS if hidden else credit(c) or ANONYMOUS,
            licence=c.licence, licence_name=c.licence_name, tokens=tokens[p.key] if p.included else 0,
            included="yes" if p.included else "no", reason=p.reason or "", detail=p.detail,
        ))  # fmt: skip
    return sorted(rows, key=lambda r: (r.title.casefold(), r.sha256, r.included, r.reason))


def log_csv(rows: list[LogRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(LogRow.model_fields)
    for r in rows:  # titles and names are free text: a formula-like one must stay text in a spreadsheet
        writer.writerow(text_cell(str(v)) if isinstance(v, str) else v for v in r.model_dump().values())
    return buffer.getvalue()


def log_jsonl(rows: list[LogRow]) -> str:
    return "".join(json.dumps(r.model_dump(), ensure_ascii=False, sort_keys=False) + "\n" for r in rows)


def licence_label(licence: str, licence_name: str) -> str:
    return f"{licence} ({licence_name})" if licence_name else licence


REASON_TEXT = {
    "no_consent": "the author has not consented to training",
    "not_reviewed": "fewer than {min_reviews} reviews by other participants (texts given through the form)",
    "rejected": "not more than half of its reviews say include, or a reviewer flagged it {blocking_flags}",
    "too_short": "fewer than {min_words} words",
    "too_long": "more than {max_chars:,} characters",
    "language": "not in {languages} (py3langid)",
    "personal_data": "personal data found (emails, phone numbers, URLs, street addresses and, where a roster was "
    "given, participants' names) and no organiser decision to keep it",
    "duplicate": "the same normalised text as an earlier contribution",
    "near_duplicate": "Jaccard similarity of word {shingle_words}-shingles at least {near_duplicate_threshold} with "
    "an earlier contribution (MinHash LSH, {num_perm} permutations, seed {seed}, confirmed exactly)",
}


def dataset_card(manifest: CorpusManifest, settings: CorpusSettings, licences: Counter) -> str:
    n = manifest.counts["included"]
    meta = {
        "license": settings.license,
        "language": list(settings.languages),
        "pretty_name": f"Contributed texts, release {manifest.version}",
        "task_categories": ["text-generation"],
        "tags": ["continued-pretraining", "participatory", "codigit"],
        "size_categories": [size_category(n)],
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}],
    }
    s = settings.hashed()
    s["languages"] = ", ".join(settings.languages)
    s["blocking_flags"] = " or ".join(settings.blocking_flags) or "(no flag blocks)"
    removed = "\n".join(f"| {reason.replace('_', ' ')} | {REASON_TEXT[reason].format(**s)} | "
                        f"{manifest.excluded.get(reason, 0)} |" for reason in REASONS)  # fmt: skip
    licence_lines = "\n".join(f"| {name} | {k} |" for name, k in sorted(licences.items())) or "| (none) | 0 |"
    withdrawn = manifest.excluded.get("withdrawn", 0)
    gone = f" ({withdrawn} more by people who have withdrawn are left out entirely)" if withdrawn else ""
    return f"""---
{yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).strip()}
---

# Contributed texts — corpus release {manifest.version}

Whole texts given by their writers (or truly open texts, with attribution) for the continued pretraining of a base
language model.

| | |
| --- | --- |
| texts | {n} of {manifest.counts["contributions"]} contributed{gone} |
| words | {manifest.counts["words"]:,} |
| tokens | {manifest.counts["tokens"]:,}, counted with {manifest.tokenizer} |
| dataset hash | `{manifest.dataset_hash}` |
| built from snapshot | `{manifest.source["snapshot_id"]}` by codigit {manifest.codigit_version} |

Load it with `datasets.load_dataset("<this folder>")` (one `train` split), or read
`data/train-00000-of-00001.parquet` with any Parquet reader.

## What is in it
One row per text: `id` (the first {KEY_CHARS} hex digits of the sha256 of `text`), `title`, `text` (normalised,
see below), `licence` and `licence_name` (the licence the contributor stated: their own work, or an open licence
they named), `attribution` (the name the contributor asked to be credited under, else empty), `language` (as
detected), `words` and `tokens`.

**Licence.** The corpus is under `{settings.license}`: each text keeps the licence its contributor gave, and any
use must respect that text's licence and credit its `attribution`.

| licence | texts |
| --- | --- |
{licence_lines}

## How it was prepared
Every text was normalised: Unicode NFC, `\\n` line breaks, control characters other than newline and tab
removed, trailing spaces on lines stripped, runs of blank lines reduced to one, leading and trailing whitespace
trimmed; paragraphs and wording are as written. The checks below ran in this order; the first that applied is the
reason a text was left out. A text is used only if its author consented to training and has not withdrawn;
texts of people who have withdrawn are not in the log either.

| left out because | rule | texts |
| --- | --- | --- |
{removed}

A text the personal-data scan flagged is included only after an organiser's recorded decision to keep it.

## The contribution log
`contribution_log.csv` and `contribution_log.jsonl` hold the same rows: one per contributed text, included or not,
with its title, its contributor's credit name (or "anonymous"), its licence, the sha256 of its normalised text,
the tokens it contributed (0 when left out), whether it is included, and why not. It ships with this corpus and
with every model trained on it. It names nobody who did not ask to be credited, and shows neither name nor title
of a text whose author did not consent to training. Texts are identified by hash, so anyone holding a text can
check whether it was used: its `sha256` is that of the text after the normalisation above.

## Memorisation
Language models can repeat their training text verbatim, especially text seen several times or that is unusual.
A model trained on this corpus may reproduce passages of these texts, including to people who never saw them.
Anyone training on this corpus should measure and report how much a model repeats of each text, and must not
present repeated text as the model's own.

## Integrity
`manifest.json` records the sha256 of every file, each record's hash and the settings above; the dataset hash is
over the sorted record hashes and the settings. `verify_corpus` (codigit) recomputes all of them.
"""
