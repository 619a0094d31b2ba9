"""The human-readable files of a release: dataset card (README.md), CHANGELOG.md and CONTRIBUTORS.md.

Demographics appear only in aggregate over the release's authors who allowed their use, and any group smaller
than the policy's `min_group_size` k (and, when exactly one group of a question is suppressed, the next smallest
too, so it cannot be recovered by subtraction) is shown as "<k". What the card says about the study itself (its
motivation, uses, the texts) is the policy's `card`: study data, not code.
"""

from __future__ import annotations

from collections import Counter

import yaml

from codigit.handoff import Manifest
from codigit.records import Snapshot
from codigit.release.build import DATASETS_MIN
from codigit.release.policy import Policy
from codigit.study import Study

REASON_TEXT = {"not_public": "the author did not allow public release"}  # the public view's own reason


def size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "n>1M"


def suppress(counts: dict[str, int], k: int) -> dict[str, str]:
    """Counts as text with every group under k hidden, plus the next smallest if only one would be."""
    small = {g for g, n in counts.items() if n < k}
    if len(small) == 1 and len(counts) > 1:
        small.add(min((g for g in counts if g not in small), key=lambda g: (counts[g], g)))
    return {g: (f"<{k}" if g in small else str(n)) for g, n in counts.items()}


def demographics(snapshot: Snapshot, authors: set[str], study: Study, k: int) -> str:
    rows = [p for p in snapshot.positionality if p.participant in authors]
    lines = [
        f"{len(authors)} people wrote the stories in this release; {len(rows)} of them allowed their answers to "
        f'the optional questionnaire to be used in aggregate. Groups smaller than {k} are shown as "<{k}".',
    ]
    if len(rows) < k:
        return lines[0] + f"\n\nFewer than {k} answered, so no breakdown is shown."
    for q in study.positionality.questions:
        if q.type not in ("label", "multi_label"):
            continue  # free text is never aggregated into a card
        counts: Counter[str] = Counter()
        for p in rows:
            value = p.answers.get(q.name)
            for v in value if isinstance(value, list) else [value or "not answered"]:
                counts[(q.labels or {}).get(v, v)] += 1
        if not counts:
            continue
        shown = suppress(dict(counts), k)
        lines.append(f"\n**{q.title or q.name}**" + (" (several answers possible)" if q.type == "multi_label" else ""))
        lines.append("\n| group | people |\n| --- | --- |")
        lines.extend(f"| {g} | {n} |" for g, n in sorted(shown.items(), key=lambda x: (-counts[x[0]], x[0])))
    return "\n".join(lines)


def collectives(rows: list[dict], row_authors: dict[str, str], k: int) -> str:
    """Records and people per label of the `collective` column in this view of the release (a collective of fewer
    than k authors is already pooled as "other" there; a pool of fewer than k people shows "<k")."""
    if not rows or "collective" not in rows[0]:
        return ""
    records = Counter(row["collective"] or "(none)" for row in rows)
    people: dict[str, set[str]] = {}
    for row in rows:
        people.setdefault(row["collective"] or "(none)", set()).add(row_authors[row["id"]])
    table = "\n".join(f"| {name} | {n} | {len(people[name]) if len(people[name]) >= k else f'<{k}'} |"
                      for name, n in sorted(records.items()))  # fmt: skip
    return (f"\n### Collectives\nEach record's `collective` is its author's collective; collectives of fewer than "
            f"{k} authors in this release are pooled as \"other\".\n\n| collective | records | people |\n"
            f"| --- | --- | --- |\n{table}\n")  # fmt: skip


def configs(counts: dict[str, int]) -> list[dict]:
    """The card's data files: only splits that have records (`datasets` fails on a declared empty split)."""
    files = [{"split": s, "path": f"data/{s}-*.parquet"} for s in ("train", "test") if counts.get(s)]
    return [{"config_name": "default", "data_files": files}]


def dataset_card(manifest: Manifest, policy: Policy, snapshot: Snapshot, authors: set[str], study: Study,
                 groups: str = "") -> str:  # fmt: skip
    """`groups`: this view's `collectives` table, for a study of several collectives."""
    total = manifest.counts["train"] + manifest.counts["test"]
    meta = {
        "license": policy.license,
        "language": [policy.language],
        "pretty_name": policy.card.title,
        "task_categories": ["text-generation"],
        "tags": list(dict.fromkeys(["instruction-tuning", "participatory", *policy.card.tags, "codigit"])),
        "size_categories": [size_category(total)],
        "configs": configs(manifest.counts),
    }
    blocking = ", ".join(policy.blocking_flags) or "none"
    majority = ", more than half saying include" if policy.include_majority else ""
    excluded = "\n".join(f"| {REASON_TEXT.get(reason, reason.replace('_', ' '))} | {n} |"
                         for reason, n in manifest.excluded.items())  # fmt: skip
    considered = total + sum(manifest.excluded.values())
    p = policy
    return f"""---
{yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).strip()}
---

# {p.card.title} — release {manifest.version}

{p.card.summary}

| | |
| --- | --- |
| records | {total} (train {manifest.counts["train"]}, test {manifest.counts["test"]}) |
| of which the authors allowed public release | {manifest.counts["public"]} |
| dataset hash | `{manifest.dataset_hash}` |
| built from snapshot | `{manifest.source["snapshot_id"]}` by codigit {manifest.codigit_version} |

Load it with plain `datasets` {DATASETS_MIN} or later (older versions cannot read its `List` features):
`load_dataset("parquet", data_dir="<this folder>/data")` or `load_dataset("<this folder>")`. Check it with
`codigit release verify <this folder>`.

## Datasheet

### Motivation
{p.card.motivation.strip()}

### Composition
Each record is one prompt (what someone might ask a model) and one response written as a short story, as a
two-turn `messages` conversation and as plain `prompt`/`response` columns. `id` is a hash of the normalised
pair. `themes` are those chosen by at least {p.theme_min_share:.0%} of the story's reviewers; `review_*` columns
summarise the reviews (self-reviews excluded). `attribution` is the name the author chose to be credited
under, only if they did and allowed public release. `public` says whether the author allowed public release:
**only records with `public = true` may be published**.{
        " `collective` is the author's collective (below)." if groups else ""
    } No other information about authors is included.

### Collection process
Participants wrote pairs in Argilla, each in a workspace of their own, answered a versioned consent form and
an optional positionality questionnaire, then reviewed each other's pairs anonymously (a 1–5 rating, include /
revise / exclude, themes and flags).

### Preprocessing and selection
A pair is included when its author consented to fine-tuning and has not withdrawn, and the release policy
accepts its reviews: at least {p.min_reviews} reviews by others, mean rating at least {p.min_mean_rating}{majority},
no blocking flag ({blocking}).
Pairs flagged for personal data (by a reviewer or an automatic scan for emails, phone numbers, URLs, street
addresses and participants' names) are included only after an organiser's recorded decision.
A flag raised by a reviewer who has since withdrawn still counts (their reviews and identity are not kept).

Of {considered} stories considered, {total} are in this release; the others were left out:

| left out because | stories |
| --- | --- |
{excluded}

### Uses
{p.card.uses.strip()}

### Distribution and maintenance
Licence: {p.license}. Each release is immutable and content-addressed (`manifest.json`); later releases honour
withdrawals, and `CHANGELOG.md` says what changed and why. Contact: {p.card.contact}.

## Data statement

### Curation rationale
See *Preprocessing and selection*: community review and the authors' consent decide inclusion.

### Language variety
{p.language} (as written by the participants; no normalisation of dialect or spelling).

### Author demographics
{demographics(snapshot, authors, study, p.min_group_size)}
{groups}
### Text characteristics
{p.card.text_characteristics.strip()}
"""


def contributors(manifest: Manifest, snapshot: Snapshot, authors: set[str]) -> str:
    names = sorted(
        {c.attribution_name for c in snapshot.consent if c.participant in authors and c.public and c.attribution_name},
        key=str.casefold,
    )
    body = "\n".join(f"- {n}" for n in names) if names else "_Nobody in this release asked to be credited._"
    return (
        f"# Contributors to release {manifest.version}\n\n"
        "People whose stories are in this release and who asked to be credited, under the name they chose. "
        f"Everyone else contributed anonymously.\n\n{body}\n"
    )


def changelog(manifest: Manifest, previous: Manifest | None, reasons: bool = True) -> str:
    """What changed since `previous`. Without `reasons` (the public view) removals are listed without why: a
    reason such as "withdrawn" next to a record the public has seen would say something about its author."""
    head = f"# Changelog: release {manifest.version}\n\n"
    if previous is None:
        return head + f"First release: {len(manifest.records)} records.\n"
    key = "story_id" if reasons else "id"  # the public view has no story ids: an edited story is remove + add
    old = {getattr(r, key): r for r in previous.records}
    new = {getattr(r, key): r for r in manifest.records}
    added = sorted(new[s].id for s in new.keys() - old.keys())
    why = manifest.excluded_stories if reasons else {}
    removed = sorted(
        (old[s].id, why.get(s, "no longer in the snapshot" if reasons else "")) for s in old.keys() - new.keys()
    )
    changed = sorted(
        (old[s].id, new[s].id, "text changed" if old[s].id != new[s].id else "reviews, themes or credit changed")
        for s in old.keys() & new.keys()
        if old[s].hash != new[s].hash
    )
    lines = [head + f"Since {previous.version} (`{previous.dataset_hash[:12]}`): {len(added)} added, "
             f"{len(removed)} removed, {len(changed)} changed.\n"]  # fmt: skip
    if added:
        lines += ["## Added", *(f"- `{i}`" for i in added), ""]
    if removed:
        lines += ["## Removed", *(f"- `{i}`" + (f": {reason}" if reason else "") for i, reason in removed), ""]
    if changed:
        lines += ["## Changed", *(f"- `{a}` → `{b}`: {why}" for a, b, why in changed), ""]
    return "\n".join(lines)
