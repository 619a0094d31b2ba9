"""`codigit release VERSION`: policy and consent applied to a snapshot, written as a content-addressed dataset.

Layout of data/releases/VERSION/: data/{train,test}-00000-of-00001.parquet, manifest.json, README.md (dataset
card), CHANGELOG.md, CONTRIBUTORS.md. Same snapshot, policy and decisions -> byte-identical parquet and the same
dataset hash (nothing time-dependent is inside either). The folder appears whole or not at all.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from codigit import __version__
from codigit.errors import CodigitError
from codigit.handoff import MANIFEST_SCHEMA, Manifest
from codigit.home import atomic_dir
from codigit.records import Snapshot, counted_reviews, utc_now
from codigit.release.pii import names_pattern, scan
from codigit.release.policy import Policy, judge

if TYPE_CHECKING:
    import pyarrow as pa

SCHEMA_VERSION = MANIFEST_SCHEMA
SPLITS = ("train", "test")
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?$")
# Why a story is not in a release; the manifest counts each.
REASONS = ("withdrawn", "no_consent", "rejected", "flagged_personal_data", "duplicate")
# The public view also leaves out the records whose authors did not allow public release: its counts add up too.
NOT_PUBLIC = "not_public"
# The oldest `datasets` that reads a release: its features are `datasets.List`s, which 4.0 introduced; the parquet
# metadata then says "_type": "List", which 3.x refuses. pyproject.toml pins the same; the card states it.
DATASETS_MIN = "4.0.0"


def semver_key(version: str) -> tuple:
    m = SEMVER.match(version)
    if not m:
        raise CodigitError(f"{version!r} is not a semantic version (MAJOR.MINOR.PATCH, e.g. 0.1.0)")
    major, minor, patch, pre = m.groups()
    return int(major), int(minor), int(patch), pre is None, pre or ""


def normalise(text: str) -> str:
    """The form a record id is computed from: Unicode NFC, whitespace runs as one space, trimmed."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def record_id(prompt: str, response: str) -> str:
    return hashlib.sha256(f"{normalise(prompt)}\n\0\n{normalise(response)}".encode()).hexdigest()[:16]


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def record_hash(row: dict) -> str:
    return hashlib.sha256(canonical(row)).hexdigest()


def dataset_hash(record_hashes: list[str], policy: dict) -> str:
    return hashlib.sha256(
        canonical({"schema_version": SCHEMA_VERSION, "policy": policy, "records": sorted(record_hashes)})
    ).hexdigest()


def split_of(rid: str, test_fraction: float) -> str:
    """Deterministic by id, so a record keeps its split from release to release."""
    return "test" if int(rid[:8], 16) / 2**32 < test_fraction else "train"


@dataclass
class Plan:
    rows: list[dict] = field(default_factory=list)  # the dataset, sorted by id
    story_ids: dict[str, str] = field(default_factory=dict)  # record id -> story id
    authors: set[str] = field(default_factory=set)
    public_authors: set[str] = field(default_factory=set)  # authors whose records are in the public view
    excluded: Counter = field(default_factory=Counter)
    why: dict[str, str] = field(default_factory=dict)  # story id -> reason it is out
    blocked: list[tuple[str, list[str]]] = field(default_factory=list)  # (story id, findings) awaiting a decision
    decisions: list[dict] = field(default_factory=list)  # the organiser decisions this release applied
    row_authors: dict[str, str] = field(default_factory=dict)  # record id -> author (never written)


def plan_release(
    snapshot: Snapshot, policy: Policy, decisions: dict[str, dict], names: list[str], withdrawn: set[str]
) -> Plan:
    """Which stories go in, and why the others do not. `decisions` maps story id -> the latest decision."""
    from codigit.rules import text_sha

    plan = Plan()
    names_rx = names_pattern(names)
    withdrawn = withdrawn | {w.participant for w in snapshot.withdrawals}
    plan.excluded["withdrawn"] += snapshot.meta.excluded.get("stories_withdrawn", 0)
    for w in snapshot.withdrawals:
        plan.why.update(dict.fromkeys(w.story_ids, "withdrawn"))
    consent = {c.participant: c for c in snapshot.consent}
    reviews: dict[str, list] = {}
    for r in snapshot.reviews:
        if r.reviewer not in withdrawn:  # an older snapshot may still hold reviews by someone who has withdrawn
            reviews.setdefault(r.story_id, []).append(r)
    # ... whose reviews then no longer count, but whose flags still do (as collect keeps them: once per reviewer)
    kept: defaultdict[str, Counter] = defaultdict(Counter)
    for r in counted_reviews(r for r in snapshot.reviews if r.reviewer in withdrawn):
        kept[r.story_id].update(r.flags)
    seen: dict[str, str] = {}
    several = any(s.collective for s in snapshot.stories)  # a study of several collectives: a column for them
    for story in sorted(snapshot.stories, key=lambda s: (s.submitted_at, s.story_id)):

        def out(reason: str, detail: str = "") -> None:
            plan.excluded[reason] += 1
            plan.why[story.story_id] = reason + (f" ({detail})" if detail else "")  # noqa: B023

        c = consent.get(story.author)
        verdict = judge(reviews.get(story.story_id, []), policy, kept[story.story_id] + Counter(story.withdrawn_flags))
        rid = record_id(story.prompt, story.story)
        if story.author in withdrawn:
            out("withdrawn")
            continue
        if c is None or not c.training:
            out("no_consent")
            continue
        if verdict.rejected_because:
            out("rejected", verdict.rejected_because)
            continue
        if rid in seen:
            out("duplicate", f"same text as story {seen[rid]}")
            continue
        findings = scan(f"{story.prompt}\n{story.story}", names_rx)
        if verdict.personal_data_flagged:
            findings.insert(0, f"a reviewer flagged {policy.personal_data_flag}")
        if findings:
            decision = decisions.get(story.story_id)
            if decision is None or decision["text_sha"] != text_sha(story.prompt, story.story):
                plan.blocked.append((story.story_id, findings))
                continue
            plan.decisions.append(decision)
            if decision["decision"] == "exclude":
                out("flagged_personal_data")
                continue
        seen[rid] = story.story_id
        plan.story_ids[rid] = story.story_id
        plan.authors.add(story.author)
        if c.public:
            plan.public_authors.add(story.author)
        plan.rows.append({
            "id": rid,
            "messages": [{"role": "user", "content": story.prompt}, {"role": "assistant", "content": story.story}],
            "prompt": story.prompt,
            "response": story.story,
            "themes": verdict.themes,
            "review_count": verdict.n_reviews,
            "review_mean_rating": verdict.mean_rating,
            "review_include": verdict.include,
            "review_revise": verdict.revise,
            "review_exclude": verdict.exclude,
            "attribution": c.attribution_name if c.public else None,
            "public": c.public,
            "language": policy.language,
            "license": policy.license,
            **({"collective": story.collective} if several else {}),
        })  # fmt: skip
        plan.row_authors[rid] = story.author
    if several:  # a collective of fewer than k authors in this release is shown as "other"
        from codigit.collectives import pooled

        members: defaultdict[str | None, set[str]] = defaultdict(set)
        for row in plan.rows:
            members[row["collective"]].add(plan.row_authors[row["id"]])
        label = pooled(members, policy.min_group_size)
        for row in plan.rows:
            row["collective"] = label[row["collective"]]
    plan.rows.sort(key=lambda r: r["id"])
    return plan


# The release's columns: a `datasets` Value dtype, a list of one ([x]) or a struct ({name: x}).
COLUMNS = {
    "id": "string", "messages": [{"role": "string", "content": "string"}], "prompt": "string", "response": "string",
    "themes": ["string"], "review_count": "int32", "review_mean_rating": "float64", "review_include": "int32",
    "review_revise": "int32", "review_exclude": "int32", "attribution": "string", "public": "bool",
    "language": "string", "license": "string",
}  # fmt: skip
# How `datasets` (5.x) writes parquet, kept so a release's bytes stay what they were when it wrote them: row groups
# of about 100 MB of arrow data, content-defined pages (which let the Hub store an edited release's unchanged
# parts once), snappy and a dictionary for every column, a page index.
ROW_GROUP_BYTES = 100_000_000
CDC = {"min_chunk_size": 256 * 1024, "max_chunk_size": 1024 * 1024, "norm_level": 0}


def parquet_schema(collective: bool = False) -> tuple[pa.Schema, list[str]]:
    """The release's arrow schema (`collective` for a study of several collectives), whose metadata holds the
    `datasets` features that `datasets.load_dataset` reads (as `Features(...).arrow_schema` would, without importing
    `datasets`, which takes seconds), and parquet's leaf column paths, which its per-column options name."""
    import pyarrow as pa

    columns = {name: _column(name, kind) for name, kind in COLUMNS.items()}
    columns |= {"collective": _column("collective", "string")} if collective else {}
    meta = {"info": {"features": {name: c[1] for name, c in columns.items()}}}
    schema = pa.schema([(name, c[0]) for name, c in columns.items()], metadata={"huggingface": json.dumps(meta)})
    return schema, [leaf for c in columns.values() for leaf in c[2]]


def _column(path: str, kind) -> tuple:
    """One column or part of one: its arrow type, its `datasets` feature, its parquet leaf paths."""
    import pyarrow as pa

    if isinstance(kind, list):
        arrow, feature, leaves = _column(f"{path}.list.element", kind[0])
        return pa.list_(arrow), {"feature": feature, "_type": "List"}, leaves
    if isinstance(kind, dict):
        parts = {name: _column(f"{path}.{name}", k) for name, k in kind.items()}
        return (pa.struct([(name, p[0]) for name, p in parts.items()]), {name: p[1] for name, p in parts.items()},
                [leaf for p in parts.values() for leaf in p[2]])  # fmt: skip
    return pa.type_for_alias(kind), {"dtype": kind, "_type": "Value"}, [path]


def write_parquet(rows: list[dict], path: Path) -> None:
    """The rows as one parquet file, written by pyarrow as `datasets.Dataset.to_parquet` writes them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema, leaves = parquet_schema("collective" in rows[0])
    table = pa.Table.from_pydict({name: [row[name] for row in rows] for name in schema.names}, schema=schema)
    batch = max(1, table.num_rows * ROW_GROUP_BYTES // table.nbytes) if table.nbytes else 1
    cdc = {"use_content_defined_chunking": CDC} if int(pa.__version__.split(".")[0]) >= 21 else {}  # pyarrow 21
    with pq.ParquetWriter(path, schema, compression=dict.fromkeys(leaves, "snappy"), use_dictionary=leaves,
                          column_encoding={}, write_page_index=True, **cdc) as writer:  # fmt: skip
        for offset in range(0, table.num_rows, batch):
            writer.write_table(table.slice(offset, batch))
        if cdc:
            writer.add_key_value_metadata({"content_defined_chunking": json.dumps(CDC)})


def split_file(root: Path, split: str) -> Path:
    return Path(root) / "data" / f"{split}-00000-of-00001.parquet"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def view_manifest(
    version: str, rows: list[dict], policy: Policy, story_ids: dict[str, str] | None = None,
    known: dict[str, str] | None = None, **extra,
) -> Manifest:  # fmt: skip
    """The manifest of a view holding these rows (files and its own hash come when it is written); `story_ids`
    and `extra` add what only the organisers' copy carries; `known` holds record hashes by id already computed."""
    policy_dump = policy.hashed()
    hashes = [known[r["id"]] if known else record_hash(r) for r in rows]
    splits = [split_of(r["id"], policy.test_fraction) for r in rows]
    records = []
    for r, h, s in zip(rows, hashes, splits, strict=True):
        records.append({"id": r["id"], "hash": h, "split": s} | ({"story_id": story_ids[r["id"]]} if story_ids else {}))
    return Manifest(
        schema_version=SCHEMA_VERSION,
        version=version,
        dataset_hash=dataset_hash(hashes, policy_dump),
        policy=policy_dump,
        counts={**{s: splits.count(s) for s in SPLITS}, "public": sum(r["public"] for r in rows)},
        records=records,
        **extra,
        codigit_version=__version__,
    )


def write_view(folder: Path, manifest: Manifest, rows: list[dict], texts: dict[str, str]) -> None:
    """Parquet per non-empty split, the texts, and manifest.json with every file's sha256 and its own hash."""
    (folder / "data").mkdir(parents=True)
    for split in SPLITS:
        part = [r for r, rec in zip(rows, manifest.records, strict=True) if rec.split == split]
        if part:  # `datasets` refuses to load a split declared with no data, so an empty one is not written
            write_parquet(part, split_file(folder, split))
    for name, text in texts.items():
        (folder / name).write_text(text, encoding="utf-8")
    files = {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}
    manifest = manifest.model_copy(update={"files": files})
    manifest = manifest.model_copy(update={"manifest_hash": manifest_hash(manifest)})
    (folder / "manifest.json").write_text(manifest.text(), encoding="utf-8")


def manifest_hash(manifest: Manifest | dict) -> str:
    """Over everything in the manifest but this hash and the creation time, so an edited manifest is caught."""
    if isinstance(manifest, Manifest):
        core = manifest.hashed()
    else:  # as a file holds it
        core = {k: v for k, v in manifest.items() if k not in ("manifest_hash", "created_at")}
    return hashlib.sha256(canonical(core)).hexdigest()


def write_release(root: Path, version: str, plan: Plan, policy: Policy, snapshot: Snapshot, texts) -> Path:
    """Write the release folder atomically: the organisers' view, and in public/ the view that may be published
    (records whose authors allowed public release; no pseudonyms, story ids, reasons or decisions).
    `texts(manifest, public) -> {file name: text}` renders card, changelog and contributors for each view."""
    semver_key(version)
    root = Path(root)
    final = root / version
    if final.exists():
        raise CodigitError(f"release {version} already exists at {final}; releases are never overwritten")
    if plan.blocked:
        raise CodigitError(f"{len(plan.blocked)} stories need a personal-data decision before release {version}")
    if not plan.rows:
        raise CodigitError(f"no story qualifies for release {version}: see `codigit collect` and the policy")
    consent_versions = Counter(c.version for c in snapshot.consent if c.participant in plan.authors)
    known = {r["id"]: record_hash(r) for r in plan.rows}  # the public view's records are among them
    manifest = view_manifest(
        version, plan.rows, policy, plan.story_ids, known,
        pseudonyms=sorted(plan.authors),
        public_pseudonyms=sorted(plan.public_authors),  # whose text the public view holds: `release affected`
        excluded={reason: plan.excluded.get(reason, 0) for reason in REASONS},
        excluded_stories=dict(sorted(plan.why.items())),
        decisions=sorted(plan.decisions, key=lambda d: d["story_id"]),
        consent_versions=dict(sorted(consent_versions.items())),
        source={"snapshot_id": snapshot.meta.snapshot_id, "server": snapshot.meta.source,
                "snapshot_created_at": snapshot.meta.created_at},
        created_at=utc_now(),
    )  # fmt: skip
    public_rows = [r for r in plan.rows if r["public"]]
    # the reasons a story is in neither view, and those the organisers' view holds but the public one may not
    excluded = {**manifest.excluded, NOT_PUBLIC: len(plan.rows) - len(public_rows)}
    public = view_manifest(
        version, public_rows, policy, known=known, scope="public", excluded=excluded,
        source={"snapshot_id": snapshot.meta.snapshot_id}, created_at=manifest.created_at,
    )  # fmt: skip
    with atomic_dir(final) as tmp:
        write_view(tmp / "public", public, public_rows, texts(public, True))
        write_view(tmp, manifest, plan.rows, texts(manifest, False))
    return final
