"""`codigit retention` through a real server of its own: it lists, then (confirmed) deletes exactly the texts
not confirmed to be kept and every text of people who withdrew, from the server, the snapshots and the corpus
releases; a later snapshot holds none of them, and a later release or `verify` checks against the deletion log."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import REPO, add_participants, codigit, start_server
from test_contributions import CONSENT, essay

pytestmark = pytest.mark.slow  # a server of its own: about a minute

STUDY = REPO / "annotation" / "texts-study.yaml"


def give(person, slot: str, title: str, seed: int, keep: str) -> str:
    text = essay(seed)
    person.answer("texts", {"title": title, "text": text, "licence": "own_work", "keep": keep}, external_id=slot)
    return text


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("retention")
    server = start_server(tmp / "home")
    try:
        assert codigit("init", "--study", str(STUDY), "--data", str(tmp / "data"), home=server.home).returncode == 0
        people = add_participants(server, {"ada": "Ada Example", "bo": "Bo Example", "cy": "Cy Example"}, tmp)
        for p in people.values():
            p.answer("consent", CONSENT)
        texts = {"kept": give(people["ada"], "text-1", "Kept", 11, "yes"),
                 "not_kept": give(people["ada"], "text-2", "Not kept", 12, "no"),
                 "withdrawn": give(people["cy"], "text-1", "Cy's", 13, "yes")}  # fmt: skip
        (tmp / "bo.txt").write_text(essay(14), encoding="utf-8")
        texts["imported"] = essay(14)
        imported = codigit("contributions", "import", str(tmp / "bo.txt"), "--contributor", people["bo"].username,
                           "--licence", "own_work", "--keep", "no", home=server.home)  # fmt: skip
        assert imported.returncode == 0, imported.stderr
        cli = {"home": server.home}
        assert codigit("collect", **cli).returncode == 0
        before = codigit("corpus", "release", "0.1.0", "--min-words", "20", "--min-reviews", "0", **cli)  # unreviewed
        assert before.returncode == 0, before.stderr
        shutil.copytree(tmp / "data" / "snapshots", tmp / "backup-snapshots")  # as a backup would hold it
        shutil.copytree(tmp / "data" / "corpus" / "0.1.0", tmp / "old-release")
        assert codigit("participants", "withdraw", people["cy"].username, **cli).returncode == 0
        listed = codigit("retention", **cli)
        unconfirmed = codigit("retention", "--delete", **cli)
        deleted = codigit("retention", "--delete", "--yes", **cli)
        again = codigit("retention", **cli)
        collected = codigit("collect", **cli)
        assert collected.returncode == 0, collected.stderr
        from_backup = codigit("corpus", "release", "0.2.0", "--snapshot", str(tmp / "backup-snapshots"),
                              "--min-words", "20", "--min-reviews", "0", **cli)  # fmt: skip
        old_verify = codigit("corpus", "verify", str(tmp / "old-release"), **cli)
        yield {"tmp": tmp, "server": server, "people": people, "texts": texts, "listed": listed,
               "unconfirmed": unconfirmed, "deleted": deleted, "again": again, "from_backup": from_backup,
               "old_verify": old_verify}  # fmt: skip
    finally:
        server.stop()


def test_it_lists_before_it_deletes_and_asks_for_confirmation(world):
    listed = world["listed"]
    assert listed.returncode == 0 and "3 texts would be deleted" in listed.stdout, listed.stdout + listed.stderr
    assert listed.stdout.count("not kept") == 2 and listed.stdout.count("withdrawn") == 1
    unconfirmed = world["unconfirmed"]
    assert unconfirmed.returncode == 2 and "--delete needs --yes" in unconfirmed.stderr
    assert unconfirmed.stderr.count("\n") == 1
    assert "nothing to delete" in world["again"].stdout  # the deletion that followed took all three


def test_exactly_the_unconfirmed_texts_leave_the_server_and_the_next_snapshot(world):
    assert world["deleted"].returncode == 0, world["deleted"].stderr
    assert "deleted 3 texts" in world["deleted"].stdout
    snapshots = world["tmp"] / "data" / "snapshots"
    latest = snapshots / (snapshots / "LATEST").read_text().strip()
    rows = [json.loads(line) for line in (latest / "contributions.jsonl").read_text().splitlines()]
    assert [r["text"] for r in rows] == [world["texts"]["kept"]]
    everything = b"".join(p.read_bytes() for p in snapshots.rglob("*") if p.is_file())
    for name in ("not_kept", "withdrawn", "imported"):
        assert world["texts"][name].encode() not in everything, name  # no snapshot can bring it back


def test_the_deletion_log_holds_hashes_only_and_derived_files_are_gone(world):
    data = world["tmp"] / "data"
    log = [json.loads(line) for line in (data / "retention" / "deletions.jsonl").read_text().splitlines()]
    assert len(log) == 3 and all(set(entry) == {"at", "why", "sha256"} for entry in log)
    assert not (data / "corpus" / "0.1.0").exists()  # it held a deleted text
    from codigit.records import read_snapshot

    first = sorted(p for p in (data / "snapshots").iterdir() if (p / "snapshot.json").exists())[0]
    meta = read_snapshot(first).meta  # the edited snapshot still reads: its recorded file hash was kept true
    assert meta.files and meta.removed_by_retention == 3 and meta.counts["contributions"] == 4


def test_a_later_release_and_verify_check_against_the_log(world):
    from_backup = world["from_backup"]
    assert from_backup.returncode == 0, from_backup.stderr
    release = world["tmp"] / "data" / "corpus" / "0.2.0"
    manifest = json.loads((release / "manifest.json").read_text())
    assert manifest["counts"]["included"] == 1 and manifest["excluded"]["deleted"] == 3  # the backup held all 3
    old = world["old_verify"]
    assert old.returncode == 2 and "which `codigit retention` deleted" in old.stderr
