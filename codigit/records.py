"""The typed records every stage after `collect` reads: a snapshot on disk is a folder of JSON Lines files of these.

Participants appear only by pseudonym. Positionality sits in its own file and never travels with stories.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from codigit.errors import CodigitError
from codigit.home import append_jsonl, atomic_dir, atomic_write, locked

SCHEMA_VERSION = 1


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Story(_Record):
    story_id: str  # the id of the participant's authoring record on the server: stable, says nothing about them
    author: str
    invitation: str
    prompt: str
    story: str
    submitted_at: str
    changed_after_review: bool = False  # the text differs from what a review round showed
    collective: str | None = None  # the author's collective, in a study of several (`codigit.collectives`)
    # flag -> how many reviewers who have since withdrawn raised it on this text: their reviews are gone, but a
    # safety flag must go on stopping the story at the release gate (a count, never who)
    withdrawn_flags: dict[str, int] = {}


class Review(_Record):
    story_id: str
    round: str
    reviewer: str
    rating: int
    decision: Literal["include", "revise", "exclude"]
    themes: list[str] = []
    flags: list[str] = []
    comment: str = ""
    self_review: bool  # kept for the record, left out of agreement and acceptance
    current_text: bool = True  # the review saw the story as it is now (not an earlier version)
    submitted_at: str


def counted_reviews(reviews: Iterable[Review]) -> list[Review]:
    """The reviews that count for agreement and acceptance: not self-reviews, of the story's current text, and
    each reviewer's latest one per story (a story can come back in a later round)."""
    latest: dict[tuple[str, str], Review] = {}
    for r in reviews:
        if r.self_review or not r.current_text:
            continue
        key = (r.story_id, r.reviewer)
        if key not in latest or r.submitted_at > latest[key].submitted_at:
            latest[key] = r
    return list(latest.values())


class Consent(_Record):
    participant: str
    version: str
    training: bool
    public: bool
    attribution_name: str | None  # only when they chose to be credited
    given_at: str


class Positionality(_Record):
    participant: str
    answers: dict[str, str | list[str]]  # only questions they answered; "prefer_not_to_say" kept as an answer
    given_at: str


class Contribution(_Record):
    """A whole text a contributor gave for continued pretraining: through their own form, or imported by an organiser
    from a file (`codigit contributions import`) and attributed to them."""

    contribution_id: str  # the server id of their form's record, or "import-" + the file's sha256 prefix
    author: str
    title: str
    text: str
    licence: str  # a value of the study's `contributions.licences` (own work, or a named open licence)
    licence_name: str = ""  # the licence's own name, when the value is "other_open"
    attribution_name: str | None = None  # only when they asked to be credited, and by that name
    keep: bool  # they confirmed the text may be kept for future events; otherwise `retention` deletes it
    source: Literal["form", "import"]
    submitted_at: str
    withdrawn_flags: dict[str, int] = {}  # flag -> reviewers who raised it on this text and have since withdrawn


class TextReview(_Record):
    """A participant's review of a contributed text (`contributions.review`), as `Review` is of a story."""

    contribution_id: str
    round: str
    reviewer: str
    decision: Literal["include", "exclude"]
    flags: list[str] = []
    comment: str = ""
    self_review: bool
    current_text: bool = True  # the review saw the text as it is now
    submitted_at: str


class Withdrawal(_Record):
    participant: str
    at: str
    story_ids: list[str] = []  # ids only, never text: lets a release's changelog say why a story left


class Problem(_Record):
    participant: str
    what: Literal["story", "consent", "review", "contribution"]
    id: str
    message: str


class SnapshotMeta(_Record):
    schema_version: int = SCHEMA_VERSION
    snapshot_id: str
    created_at: str
    source: str
    codigit_version: str
    consent_version: str  # the study's current consent text
    counts: dict[str, int]
    excluded: dict[str, int] = Field(default_factory=dict)
    problems: list[Problem] = []
    # part file -> its sha256, recorded by `write_snapshot`: a snapshot edited by hand is refused (its stories would
    # go out with reviews of another text). Empty in snapshots written before codigit recorded them.
    files: dict[str, str] = {}
    removed_by_retention: int = 0  # contributed texts `codigit retention` took out of this snapshot since


class Snapshot(_Record):
    meta: SnapshotMeta
    stories: list[Story]
    reviews: list[Review]
    consent: list[Consent]
    positionality: list[Positionality]
    withdrawals: list[Withdrawal]
    contributions: list[Contribution] = []  # snapshots written before contributions existed have none
    text_reviews: list[TextReview] = []  # likewise


PARTS: dict[str, type[_Record]] = {
    "stories": Story,
    "reviews": Review,
    "consent": Consent,
    "positionality": Positionality,
    "withdrawals": Withdrawal,
    "contributions": Contribution,
    "text_reviews": TextReview,
}
OPTIONAL_PARTS = {"contributions", "text_reviews"}  # absent from snapshots written before they existed
META_FILE = "snapshot.json"
LATEST_FILE = "LATEST"


def counts_line(counts: Mapping[str, int]) -> str:
    """{"no_consent": 2, "added": 5} -> "2 no consent, 5 added": how commands report what they counted."""
    return ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items())


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def write_snapshot(snapshot: Snapshot, root: Path) -> Path:
    """root/<snapshot_id>/ appears whole or not at all (written beside it, then renamed); LATEST points to it.
    snapshot.json records each part file's sha256, so an edit made later is caught by `read_snapshot`."""
    root = Path(root)
    base, n = snapshot.meta.snapshot_id, 1
    while (root / snapshot.meta.snapshot_id).exists():  # two snapshots within one second
        n += 1
        snapshot = snapshot.model_copy(update={"meta": snapshot.meta.model_copy(update={"snapshot_id": f"{base}-{n}"})})
    final = root / snapshot.meta.snapshot_id
    files = {}
    with atomic_dir(final, mode=0o700) as tmp:  # positionality and consent are personal data: owner-only
        for name in PARTS:
            data = "".join(record.model_dump_json() + "\n" for record in getattr(snapshot, name)).encode()
            with open(tmp / f"{name}.jsonl", "wb") as f:
                f.write(data)
            files[f"{name}.jsonl"] = hashlib.sha256(data).hexdigest()
        meta = snapshot.meta.model_copy(update={"files": files})
        (tmp / META_FILE).write_text(meta.model_dump_json(indent=2) + "\n", encoding="utf-8")
        for path in tmp.iterdir():
            os.chmod(path, 0o600)
    atomic_write(root / LATEST_FILE, snapshot.meta.snapshot_id + "\n")
    return final


WITHDRAWALS_MIRROR = Path("ledger") / "withdrawals.jsonl"


def mirror_withdrawal(root: Path, participant: str, at: str) -> Path:
    """Note a withdrawal in root/ledger/withdrawals.jsonl, beside the snapshots.

    The ledger on the server stays the source of truth; this copy is what lets a release honour a withdrawal at
    once, even one made from a snapshot taken before it (releases read `*/withdrawals.jsonl` under the snapshots
    folder, this file included), without waiting for the next `collect`."""
    path = Path(root) / WITHDRAWALS_MIRROR
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with locked(path.parent):  # two withdrawals at once must both be noted
            if path.exists():
                lines = path.read_text(encoding="utf-8").splitlines()
                if any(Withdrawal.model_validate_json(line).participant == participant for line in lines if line):
                    return path
            append_jsonl(path, Withdrawal(participant=participant, at=at).model_dump(), mode=0o600)
    except (UnicodeDecodeError, ValidationError) as e:
        raise CodigitError(f"{path}: damaged ({type(e).__name__}); restore it from a backup or run collect") from None
    except OSError as e:
        raise CodigitError(f"{path}: cannot write ({e.strerror or e})") from None
    return path


def resolve_snapshot(path: Path) -> Path:
    """A snapshot folder, or a snapshots root whose LATEST names one."""
    path = Path(path)
    if (path / LATEST_FILE).is_file() and not (path / META_FILE).exists():
        try:
            path = path / (path / LATEST_FILE).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise CodigitError(f"{path / LATEST_FILE}: unreadable ({e}); name a snapshot folder instead") from None
    if not (path / META_FILE).is_file():
        raise CodigitError(f"{path}: not a snapshot (no {META_FILE}); run `codigit collect` first")
    return path


def read_snapshot(path: Path) -> Snapshot:
    """The snapshot in a folder; a part file whose sha256 differs from the one snapshot.json records is an error
    naming it (an older snapshot records none: see `require_hashes`)."""
    path = resolve_snapshot(path)
    edited = []
    try:
        meta = SnapshotMeta.model_validate_json((path / META_FILE).read_bytes())
        if meta.schema_version != SCHEMA_VERSION:
            raise CodigitError(f"{path}: snapshot schema {meta.schema_version}, this codigit reads {SCHEMA_VERSION}")
        parts = {}
        for name, model in PARTS.items():
            if name in OPTIONAL_PARTS and not (path / f"{name}.jsonl").exists() and f"{name}.jsonl" not in meta.files:
                parts[name] = []
                continue
            data = (path / f"{name}.jsonl").read_bytes()  # hashed and parsed from the same bytes
            parts[name] = [model.model_validate_json(line) for line in data.split(b"\n") if line.strip()]
            if meta.files and meta.files.get(f"{name}.jsonl") != hashlib.sha256(data).hexdigest():
                edited.append(f"{name}.jsonl")
    except (OSError, ValidationError, UnicodeDecodeError) as e:
        first = e.errors()[0]["msg"] if isinstance(e, ValidationError) else (getattr(e, "strerror", None) or e)
        raise CodigitError(f"{path}: not a readable snapshot ({first})") from None
    if edited:
        raise CodigitError(
            f"{path / edited[0]}: changed since `codigit collect` wrote it (its sha256 is not the one in {META_FILE}); "
            "a snapshot is never edited by hand: run `codigit collect` again"
        )
    return Snapshot(meta=meta, **parts)


def require_hashes(snapshot: Snapshot, path: Path) -> None:
    """A release is made only from a snapshot whose files can be checked: one without hashes was written by an
    older codigit, and an edit in it could not be told from what the server held."""
    if not snapshot.meta.files:
        raise CodigitError(
            f"{resolve_snapshot(path)}: snapshot without file hashes (written by an older codigit), so an edit "
            "cannot be detected: run `codigit collect` for a new snapshot and release from that"
        )
