"""`codigit retention`: delete every contributed text not confirmed to be kept for future events, and every text
of people who withdrew, from the server, the snapshots and the corpus releases made from them.

Without `--delete` it only lists what would go. With it (and a typed confirmation, or `--yes`), for each text:
- on the server: the contributor's answer in their texts form (the empty slot stays), or every part of an
  imported file in the organisers' workspace;
- in every snapshot under the snapshots folder: its line in `contributions.jsonl` (the snapshot's recorded file
  hash is updated, and the snapshot says what retention removed, so `read_snapshot` still trusts it);
- every corpus release that holds it: the whole release folder (a release is content-addressed: it cannot lose a
  text and stay the release it was; runs trained on it keep their provenance, which names its hash).
Then one line per text in `retention/deletions.jsonl` under the data folder: when, why, and the sha256 of its
normalised text, nothing else. A later `corpus release` leaves out any text with a hash in that log, and
`corpus verify` refuses a release that holds one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from codigit.cli_types import Parents
from codigit.errors import CodigitError
from codigit.places import Recorded

if TYPE_CHECKING:
    import argilla as rg

    from codigit.study import Study

DELETIONS = Path("retention") / "deletions.jsonl"  # under the data folder


@dataclass(frozen=True)
class Doomed:
    """One text to delete: where it is on the server, and why."""

    sha256: str  # of the normalised text (codigit.corpus.prepare.text_sha256): what the log and releases know
    why: str  # "not kept" or "withdrawn"
    response_id: str | None  # a form answer
    import_records: tuple[str, ...]  # an imported file's parts (record ids in the organisers' workspace)
    title: str


def deleted_hashes(data: Path) -> set[str]:
    """The sha256 of every text retention has deleted (empty before the first deletion)."""
    path = Path(data) / DELETIONS
    if not path.exists():
        return set()
    try:
        return {json.loads(line)["sha256"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CodigitError(f"{path}: damaged deletion log ({type(e).__name__}); restore it from a backup") from None


def plan(client: rg.Argilla, study: Study, withdrawn: set[str]) -> list[Doomed]:
    """Every contributed text on the server that must go: not kept, or given by someone who withdrew."""
    from codigit.contributions import IMPORT_DATASET
    from codigit.corpus.prepare import text_sha256
    from codigit.forms import participants, responses_in

    if study.contributions is None:
        raise CodigitError("the study asks for no contributed texts: there is nothing for retention to do")
    doomed = []
    for user in participants(client):
        own = client.workspaces(user.username)
        texts = own and client.datasets(study.contributions.dataset, workspace=own)
        if not texts:
            continue
        for r in responses_in(client, texts):
            values = {k: v.get("value") for k, v in (r.get("values") or {}).items()}
            why = "withdrawn" if user.username in withdrawn else None if values.get("keep") == "yes" else "not kept"
            if why and str(r["user_id"]) == str(user.id) and values.get("text"):
                doomed.append(Doomed(text_sha256(values["text"].strip()), why, str(r["id"]), (),
                                     str(values.get("title") or "")))  # fmt: skip
    organisers = client.workspaces(study.organiser_workspace)
    imported = organisers and client.datasets(IMPORT_DATASET, workspace=organisers)
    if imported:
        files: dict[str, list] = {}
        for record in imported.records(with_responses=False):
            files.setdefault(record.fields["sha256"] + record.fields["contributor"], []).append(record)
        for parts in files.values():
            first = parts[0].fields
            why = "withdrawn" if first["contributor"] in withdrawn else None if first["keep"] == "yes" else "not kept"
            if why:
                ordered = sorted(parts, key=lambda r: int(r.fields["part"]))
                text = "".join(r.fields["text"] for r in ordered).strip()
                doomed.append(Doomed(text_sha256(text), why, None, tuple(r.id for r in ordered), first["title"]))
    return doomed


def delete(client: rg.Argilla, study: Study, doomed: list[Doomed], snapshots: Path, corpus: Path,
           data: Path) -> dict[str, int]:  # fmt: skip
    """Delete everywhere, then log; returns counts. Safe to rerun after an interruption (each step is)."""
    from codigit.contributions import IMPORT_DATASET
    from codigit.home import append_jsonl, locked
    from codigit.records import utc_now

    http = client.api.http_client
    organisers = client.workspaces(study.organiser_workspace)
    imported = organisers and client.datasets(IMPORT_DATASET, workspace=organisers)
    parts = {r.id: r for r in imported.records(with_responses=False)} if imported else {}
    for d in doomed:
        if d.response_id:
            response = http.delete(f"/api/v1/responses/{d.response_id}")
            if response.status_code not in (200, 404):  # 404: a rerun after an interruption
                response.raise_for_status()
        if gone := [parts[i] for i in d.import_records if i in parts]:
            imported.records.delete(gone)
    hashes = {d.sha256 for d in doomed}
    snapshots_changed = _scrub_snapshots(Path(snapshots), hashes)
    releases_removed = _remove_releases(Path(corpus), hashes)
    at = utc_now()
    log = Path(data) / DELETIONS
    log.parent.mkdir(parents=True, exist_ok=True)
    with locked(log.parent):
        known = deleted_hashes(data)
        for d in doomed:
            if d.sha256 not in known:
                append_jsonl(log, {"at": at, "why": d.why, "sha256": d.sha256}, mode=0o600)
                known.add(d.sha256)
    return {"texts": len(doomed), "snapshots_changed": snapshots_changed, "corpus_releases_removed": releases_removed}


def _scrub_snapshots(root: Path, hashes: set[str]) -> int:
    """Take the texts out of every snapshot's contributions.jsonl, keeping the snapshot's file hashes true."""
    import hashlib

    from codigit.corpus.prepare import text_sha256
    from codigit.home import atomic_write
    from codigit.records import META_FILE, Contribution, SnapshotMeta

    changed = 0
    for meta_path in sorted(root.glob(f"*/{META_FILE}")):
        part = meta_path.parent / "contributions.jsonl"
        if not part.exists():
            continue
        lines = part.read_bytes().split(b"\n")
        kept = [line for line in lines if line.strip() and
                text_sha256(Contribution.model_validate_json(line).text) not in hashes]  # fmt: skip
        if len(kept) == len([line for line in lines if line.strip()]):
            continue
        data = b"".join(line + b"\n" for line in kept)
        meta = SnapshotMeta.model_validate_json(meta_path.read_bytes())
        files = {**meta.files, "contributions.jsonl": hashlib.sha256(data).hexdigest()} if meta.files else {}
        removed = meta.removed_by_retention + len([line for line in lines if line.strip()]) - len(kept)
        update = {"files": files, "removed_by_retention": removed}
        atomic_write(part, data, mode=0o600)
        atomic_write(meta_path, meta.model_copy(update=update).model_dump_json(indent=2) + "\n", mode=0o600)
        changed += 1
    return changed


def _remove_releases(root: Path, hashes: set[str]) -> int:
    import csv

    removed = 0
    for log in sorted(root.glob("*/contribution_log.csv")):
        with open(log, newline="", encoding="utf-8") as f:
            held = {row["sha256"] for row in csv.DictReader(f) if row.get("included") == "yes"}
        if held & hashes:
            shutil.rmtree(log.parent)
            removed += 1
    return removed


def run(args: argparse.Namespace) -> None:
    from codigit.client import argilla_errors, study_and_client
    from codigit.forms import withdrawn_people

    study, client = study_and_client(args.study, args.home)
    with argilla_errors():
        doomed = plan(client, study, withdrawn_people(client, study))
        for d in doomed:
            print(f"{d.why:<10} text {d.sha256[:16]} ({'imported file' if d.import_records else 'form'}): "
                  f"{d.title[:60]!r}")  # fmt: skip
        if not doomed:
            print("nothing to delete: every contributed text on the server is confirmed to be kept")
            return
        if not args.delete:
            print(f"{len(doomed)} texts would be deleted; run again with --delete to delete them")
            return
        if not args.yes:
            if not sys.stdin.isatty():
                raise CodigitError("--delete needs --yes when there is no terminal to confirm at")
            if input(f"Type the number of texts ({len(doomed)}) to delete them for good: ").strip() != str(len(doomed)):
                raise CodigitError("not confirmed: nothing was deleted")
        counts = delete(client, study, doomed, args.snapshots, args.corpus, args.data)
    print(f"deleted {counts['texts']} texts from the server; {counts['snapshots_changed']} snapshots and "
          f"{counts['corpus_releases_removed']} corpus releases no longer hold them; logged (hashes only) in "
          f"{Path(args.data) / DELETIONS}")  # fmt: skip


def add_parser(sub, parents: Parents) -> None:
    p = sub.add_parser("retention", parents=[parents.home, parents.study],
                       help="delete contributed texts not confirmed to be kept (lists them first)")  # fmt: skip
    p.add_argument("--delete", action="store_true", help="delete them (asks for confirmation)")
    p.add_argument("--yes", action="store_true", help="with --delete: do not ask (scripts)")
    p.add_argument("--snapshots", type=Path, default=Recorded("snapshots"), help="default: %(default)s")
    p.add_argument("--corpus", type=Path, default=Recorded("corpus"), help="default: %(default)s")
    p.add_argument("--data", type=Path, default=Recorded("data"), help="where the deletion log is kept")
    p.set_defaults(func=run)
