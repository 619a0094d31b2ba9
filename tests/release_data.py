"""Release test data: typed snapshot records built by hand, and the CLI calls the release tests share."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import REPO, codigit

from codigit.records import Consent, Review, Snapshot, SnapshotMeta, Story, Withdrawal

AT = "2026-05-01T10:00:00.000000Z"


def story(i: int, author: str | None = None, text: str | None = None) -> Story:
    return Story(story_id=f"00000000-0000-0000-0000-{i:012d}", author=author or f"p-{i % 7:03d}",
                 invitation="invitation-open", prompt=f"Prompt number {i}?",
                 story=text or f"Story number {i}, in which somebody is kind.", submitted_at=AT)  # fmt: skip


def reviews(s: Story, ratings=(4, 5, 4), decisions=("include", "include", "revise"), flags=()) -> list[Review]:
    return [
        Review(story_id=s.story_id, round="1", reviewer=f"r-{k}", rating=rating, decision=decision,
               themes=["work"] if k else ["work", "care"], flags=list(flags) if k == 0 else [],
               self_review=False, submitted_at=AT)
        for k, (rating, decision) in enumerate(zip(ratings, decisions, strict=True))
    ]  # fmt: skip


def consent(who: str, training=True, public=True, name=None) -> Consent:
    return Consent(participant=who, version="1.0", training=training, public=public, attribution_name=name, given_at=AT)


def snapshot(stories, review_list, consents, withdrawals=(), positionality=(), sid="20260501T100000Z", gone=()):
    meta = SnapshotMeta(snapshot_id=sid, created_at=AT, source="test", codigit_version="0", consent_version="1.0",
                        counts={})  # fmt: skip
    left = [Withdrawal(participant=w, at=AT, story_ids=sorted(gone)) for w in withdrawals]
    return Snapshot(meta=meta, stories=list(stories), reviews=list(review_list), consent=list(consents),
                    positionality=list(positionality), withdrawals=left)  # fmt: skip


def base(n: int = 20) -> tuple[list[Story], list[Review], list[Consent]]:
    stories = [story(i) for i in range(n)]
    review_list = [r for s in stories for r in reviews(s)]
    consents = [consent(f"p-{k:03d}", name="Ada L." if k == 1 else None) for k in range(7)]
    return stories, review_list, consents


def release(tmp: Path, version: str, snap_dir: Path, *extra: str):
    return codigit("release", version, "--snapshot", str(snap_dir), "--out", str(tmp / "releases"),
                   "--roster", str(tmp / "roster.csv"), *extra)  # fmt: skip


def with_roster(folder: Path) -> Path:
    """A test folder with the roster the personal-data scan reads (one participant with a real-looking name)."""
    (folder / "roster.csv").write_text("name,email,username\nZelda Quintero,z@example.org,p-000\n")
    return folder


def ok(result):
    assert result.returncode == 0, result.stderr
    return result


def one_line_error(result, message: str) -> None:
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr


def board_policy(tmp: Path, board: list[str], required: int = 2, name: str = "policy.yaml") -> Path:
    """The shipped policy with a board and a number of approvals of the test's choosing."""
    text = (REPO / "annotation/policy.yaml").read_text()
    assert "required_approvals: 2 " in text and "board: [] " in text
    text = text.replace("required_approvals: 2 ", f"required_approvals: {required} ")
    (tmp / name).write_text(text.replace("board: [] ", f"board: {json.dumps(board)} "))
    return tmp / name


def corpus_release(root: Path, consents: list[Consent], texts: list) -> tuple[Path, object]:
    """A corpus release 0.1.0 under root/corpus from a snapshot holding only these consents and contributed texts;
    returns (its folder, its manifest)."""
    from codigit.corpus.release import make_corpus_release, read_corpus_manifest
    from codigit.records import write_snapshot

    meta = SnapshotMeta(snapshot_id="20260501T100000Z", created_at=AT, source="test", codigit_version="0",
                        consent_version="1.0", counts={})  # fmt: skip
    snap = Snapshot(meta=meta, stories=[], reviews=[], consent=consents, positionality=[], withdrawals=[],
                    contributions=texts)  # fmt: skip
    release = make_corpus_release("0.1.0", write_snapshot(snap, root / "snapshots"), out_root=root / "corpus")
    return release, read_corpus_manifest(release)
