"""A versioned corpus release of contributed texts, content-addressed like the stories' releases.

Layout of OUT/VERSION/: data/train-00000-of-00001.parquet, contribution_log.csv, contribution_log.jsonl,
README.md (dataset card) and manifest.json. Same snapshot, settings, decisions and tokenizer -> byte-identical
parquet, log and card, and the same dataset hash (only the manifest's `created_at` differs). The folder appears
whole or not at all. No file in it holds a pseudonym or a contribution id.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from codigit import __version__
from codigit.corpus import card
from codigit.corpus.prepare import CorpusSettings, Preparation, clean_title, prepare, text_sha256
from codigit.corpus.tokens import token_counter
from codigit.errors import CodigitError
from codigit.home import atomic_dir
from codigit.records import Snapshot, counts_line, read_snapshot, require_hashes, resolve_snapshot, utc_now
from codigit.release.build import canonical, record_hash, semver_key, sha256_file

CORPUS_SCHEMA = 1  # in the dataset hash: a new schema is a new release
DATA_FILE = "data/train-00000-of-00001.parquet"
LOG_CSV, LOG_JSONL = "contribution_log.csv", "contribution_log.jsonl"
COLUMNS = ("id", "title", "text", "licence", "licence_name", "attribution", "language", "words", "tokens")


class CorpusRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str  # sha256 prefix of the normalised text
    hash: str  # of the whole row
    tokens: int


class CorpusManifest(BaseModel):
    """manifest.json of a corpus release: what a training run reads to know what it trains on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int
    kind: Literal["corpus"] = "corpus"
    version: str
    dataset_hash: str
    settings: dict[str, Any]
    tokenizer: str
    counts: dict[str, int]  # contributions (in the log), included, words, tokens, awaiting_decision
    excluded: dict[str, int]  # reason -> texts; "withdrawn" counts texts left out of the log altogether
    licences: dict[str, int]  # licence as the card shows it -> included texts
    decisions: dict[str, str]  # text key -> the organiser's personal-data decision this release applied
    records: list[CorpusRecord]
    source: dict[str, str]
    codigit_version: str
    created_at: str = ""
    files: dict[str, str] = {}  # file -> sha256, set when the release is written
    manifest_hash: str = ""  # over everything else but created_at, set last


def corpus_hash(record_hashes: list[str], settings: dict) -> str:
    return hashlib.sha256(
        canonical({"schema_version": CORPUS_SCHEMA, "kind": "corpus", "settings": settings,
                   "records": sorted(record_hashes)})
    ).hexdigest()  # fmt: skip


def manifest_hash(manifest: CorpusManifest) -> str:
    return hashlib.sha256(
        canonical(manifest.model_dump(mode="json", exclude={"manifest_hash", "created_at"}))
    ).hexdigest()


def _schema():
    import pyarrow as pa

    strings = ("id", "title", "text", "licence", "licence_name", "attribution", "language")
    return pa.schema([(c, pa.string()) for c in strings] + [("words", pa.int64()), ("tokens", pa.int64())])


@dataclass
class CorpusPlan:
    snapshot: Snapshot
    preparation: Preparation
    withdrawn: int  # contributions in the snapshot by people who have withdrawn since (in another snapshot)
    deleted: int = 0  # contributions `codigit retention` deleted (an older snapshot may still hold them)


def plan_corpus(
    snapshot_path: Path,
    settings: CorpusSettings,
    decisions: dict[str, str] | None = None,
    names: list[str] | None = None,
    deleted: set[str] = frozenset(),
) -> CorpusPlan:
    """Read the snapshot as `collect` wrote it and prepare its contributions; nothing is written. Its
    `preparation.awaiting_decision()` lists the texts an organiser may want to decide on first."""
    from codigit.release.manage import all_withdrawn

    snapshot = read_snapshot(snapshot_path)
    require_hashes(snapshot, snapshot_path)
    if not snapshot.contributions:
        raise CodigitError(f"snapshot {snapshot.meta.snapshot_id} holds no contributed texts")
    # a withdrawal noted in any snapshot (or the ledger mirror) counts, even from an older snapshot
    gone = all_withdrawn(resolve_snapshot(snapshot_path).parent) | {w.participant for w in snapshot.withdrawals}
    kept = [c for c in snapshot.contributions if text_sha256(c.text) not in deleted]  # retention's log wins
    prep = prepare(kept, snapshot.consent, settings, decisions, gone, names, snapshot.text_reviews)
    return CorpusPlan(snapshot, prep, len(kept) - len(prep.items), len(snapshot.contributions) - len(kept))


def write_corpus_release(
    version: str, plan: CorpusPlan, settings: CorpusSettings, out_root: Path, tokenizer: Any = None
) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    semver_key(version)
    final = Path(out_root) / version
    if final.exists():
        raise CodigitError(f"corpus release {version} already exists at {final}; releases are never overwritten")
    prep = plan.preparation
    if not prep.included:
        raise CodigitError(f"no text qualifies for corpus release {version}: {counts_line(prep.excluded())}")
    count, tokenizer_name = token_counter(tokenizer)
    rows = []
    for p in prep.included:
        c = p.contribution
        rows.append({"id": p.key, "title": clean_title(c.title), "text": p.text, "licence": c.licence,
                     "licence_name": c.licence_name, "attribution": card.credit(c),
                     "language": p.language, "words": p.words, "tokens": count(p.text)})  # fmt: skip
    rows.sort(key=lambda r: r["id"])
    tokens = {r["id"]: r["tokens"] for r in rows}
    hashes = [record_hash(r) for r in rows]
    excluded = {**prep.excluded(), "withdrawn": plan.withdrawn}
    if plan.deleted:  # only when there were some: older releases' hashes stay as they were
        excluded["deleted"] = plan.deleted
    manifest = CorpusManifest(
        schema_version=CORPUS_SCHEMA, version=version, dataset_hash=corpus_hash(hashes, settings.hashed()),
        settings=settings.hashed(), tokenizer=tokenizer_name,
        counts={"contributions": len(prep.items), "included": len(rows), "words": sum(r["words"] for r in rows),
                "tokens": sum(tokens.values()), "awaiting_decision": len(prep.awaiting_decision())},
        excluded=excluded,
        licences=dict(sorted(Counter(card.licence_label(r["licence"], r["licence_name"]) for r in rows).items())),
        decisions=dict(sorted(prep.decisions.items())),
        records=[CorpusRecord(id=r["id"], hash=h, tokens=r["tokens"]) for r, h in zip(rows, hashes, strict=True)],
        source={"snapshot_id": plan.snapshot.meta.snapshot_id}, codigit_version=__version__, created_at=utc_now(),
    )  # fmt: skip
    log = card.log_rows(prep.items, tokens)
    with atomic_dir(final) as tmp:
        (tmp / "data").mkdir()
        pq.write_table(pa.Table.from_pylist(rows, schema=_schema()), tmp / DATA_FILE)
        (tmp / LOG_CSV).write_text(card.log_csv(log), encoding="utf-8")
        (tmp / LOG_JSONL).write_text(card.log_jsonl(log), encoding="utf-8")
        (tmp / "README.md").write_text(card.dataset_card(manifest, settings, Counter(manifest.licences)), "utf-8")
        files = {str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        manifest = manifest.model_copy(update={"files": files})
        manifest = manifest.model_copy(update={"manifest_hash": manifest_hash(manifest)})
        (tmp / "manifest.json").write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return final


def make_corpus_release(
    version: str,
    snapshot_path: Path,
    settings: CorpusSettings | None = None,
    out_root: Path = Path("data/corpus"),
    decisions: dict[str, str] | None = None,
    tokenizer: Any = None,
    names: list[str] | None = None,
) -> Path:
    """Prepare the snapshot's contributions and write corpus release `version` under `out_root`; its folder.
    `decisions`: contribution id or text sha256 -> "keep"/"exclude" for texts the personal-data scan holds (those
    without one are left out, and the manifest counts them as `awaiting_decision`)."""
    semver_key(version)
    if (Path(out_root) / version).exists():
        raise CodigitError(f"corpus release {version} already exists at {Path(out_root) / version}")
    settings = settings or CorpusSettings()
    return write_corpus_release(version, plan_corpus(snapshot_path, settings, decisions, names), settings,
                                out_root, tokenizer)  # fmt: skip


def read_corpus_manifest(path: Path) -> CorpusManifest:
    file = Path(path) / "manifest.json"
    if not file.is_file():
        raise CodigitError(f"{path}: not a corpus release (no manifest.json)")
    try:
        raw = json.loads(file.read_bytes())
        if not isinstance(raw, dict) or raw.get("kind") != "corpus" or raw.get("schema_version") != CORPUS_SCHEMA:
            raise CodigitError(f"{path}: not a corpus release of schema {CORPUS_SCHEMA}")
        return CorpusManifest.model_validate(raw)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CodigitError(f"{file}: unreadable ({e})") from None
    except ValidationError as e:
        raise CodigitError(f"{file}: malformed ({e.errors()[0]['msg']})") from None


def verify_corpus(path: Path, deleted: set[str] = frozenset()) -> dict:
    """Recompute every hash of a corpus release and check its log against its data; the first mismatch is a
    one-line CodigitError. Returns the manifest."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    m = read_corpus_manifest(path)
    if manifest_hash(m) != m.manifest_hash:
        raise CodigitError(f"{path}: manifest.json was edited after the release was made")
    for name, digest in m.files.items():
        if not (path / name).is_file():
            raise CodigitError(f"{path}: {name} is missing")
        if sha256_file(path / name) != digest:
            raise CodigitError(f"{path}: {name} was modified after the release was made")
    for file in sorted(path.rglob("*")):
        name = str(file.relative_to(path))
        if file.is_file() and name not in m.files and name != "manifest.json":
            raise CodigitError(f"{path}: {name} is not part of the release (added later?)")
    try:
        rows = pq.read_table(path / DATA_FILE).to_pylist()
        log = [card.LogRow.model_validate_json(line) for line in (path / LOG_JSONL).read_bytes().splitlines()]
        with open(path / LOG_CSV, newline="", encoding="utf-8") as f:
            csv_rows = list(csv.DictReader(f))
    except (OSError, pa.ArrowException, ValidationError, UnicodeDecodeError, csv.Error) as e:
        raise CodigitError(f"{path}: unreadable ({type(e).__name__})") from None
    listed = {r.id: r for r in m.records}
    for row in rows:
        rid = row.get("id")
        if rid not in listed:
            raise CodigitError(f"{path}: record {rid} is not in the manifest")
        if hashlib.sha256(row["text"].encode()).hexdigest()[: len(rid)] != rid:
            raise CodigitError(f"{path}: record {rid}: its text does not hash to its id")
        if record_hash(row) != listed[rid].hash or row["tokens"] != listed[rid].tokens:
            raise CodigitError(f"{path}: record {rid} differs from the manifest")
    if len(rows) != len(listed) or {r["id"] for r in rows} != listed.keys():
        raise CodigitError(f"{path}: the data holds {len(rows)} records, the manifest {len(listed)}")
    if corpus_hash([r.hash for r in m.records], m.settings) != m.dataset_hash:
        raise CodigitError(f"{path}: the dataset hash does not match the records and settings in the manifest")
    if held := sorted(r.id for r in log if r.included == "yes" and r.sha256 in deleted):
        raise CodigitError(f"{path}: holds text {held[0]}, which `codigit retention` deleted: remove this release")
    included = {r.id: r for r in log if r.included == "yes"}
    if included.keys() != listed.keys() or any(r.tokens != listed[i].tokens for i, r in included.items()):
        raise CodigitError(f"{path}: the contribution log's included texts or tokens differ from the data")
    if len(log) != m.counts.get("contributions") or [r["sha256"] for r in csv_rows] != [r.sha256 for r in log]:
        raise CodigitError(f"{path}: {LOG_CSV} and {LOG_JSONL} do not list the same contributions")
    return m.model_dump(mode="json")
