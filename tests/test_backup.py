"""`codigit backup` while the server takes writes, `codigit restore` into another home, and the data is there."""

from __future__ import annotations

import stat
import threading

import argilla as rg
import pytest
from conftest import codigit, own_study_server, start_server, wal_database


@pytest.mark.slow
def test_backup_while_writing_then_restore_elsewhere(tmp_path):
    with own_study_server(tmp_path / "home") as first:
        client = rg.Argilla(api_url=first.url, api_key=first.api_key)
        settings = rg.Settings(fields=[rg.TextField(name="text")], questions=[rg.TextQuestion(name="note")])
        dataset = rg.Dataset(name="kept", workspace="codigit", settings=settings, client=client).create()
        dataset.records.log([{"id": f"r{i}", "text": f"story {i}"} for i in range(50)])
        stop = threading.Event()

        def keep_writing():  # participants do not stop for a backup
            n = 0
            while not stop.is_set():
                dataset.records.log([{"id": f"w{n}", "text": f"late story {n}"}])
                n += 1

        writer = threading.Thread(target=keep_writing)
        writer.start()
        try:
            made = codigit("backup", "--out", str(tmp_path / "b.db"), home=first.home)
        finally:
            stop.set()
            writer.join()
        assert made.returncode == 0, made.stderr
        assert stat.S_IMODE((tmp_path / "b.db").stat().st_mode) == 0o600
        refused = codigit("restore", str(tmp_path / "b.db"), home=first.home)
        assert refused.returncode == 2 and "stop it first" in refused.stderr  # never under a running server

    restored = codigit("restore", str(tmp_path / "b.db"), home=tmp_path / "other")
    assert restored.returncode == 0, restored.stderr
    (tmp_path / "other" / "credentials.json").write_text((tmp_path / "home" / "credentials.json").read_text())
    (tmp_path / "other" / "credentials.json").chmod(0o600)
    second = start_server(tmp_path / "other")
    try:
        client = rg.Argilla(api_url=second.url, api_key=second.api_key)
        ids = {r.id for r in client.datasets("kept", workspace="codigit").records(with_responses=False)}
        assert {f"r{i}" for i in range(50)} <= ids  # everything written before the backup began
        assert client.datasets("ledger", workspace="codigit-organisers") is not None
    finally:
        second.stop()


def test_bad_backups_are_refused_and_nothing_is_replaced(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "argilla.db").write_bytes(b"the current database")
    (tmp_path / "junk.db").write_bytes(b"not sqlite at all" * 100)
    result = codigit("restore", str(tmp_path / "junk.db"), home=tmp_path / "home")
    assert result.returncode == 2 and "not a usable SQLite database" in result.stderr
    assert (tmp_path / "home" / "argilla.db").read_bytes() == b"the current database"
    missing = codigit("backup", home=tmp_path / "empty")
    assert missing.returncode == 2 and "no embedded database" in missing.stderr


def test_backup_is_one_self_contained_private_file(tmp_path):
    wal_database(tmp_path / "home" / "argilla.db")
    made = codigit("backup", "--out", str(tmp_path / "backups" / "b.db"), home=tmp_path / "home")
    assert made.returncode == 0, made.stderr
    assert [p.name for p in (tmp_path / "backups").iterdir()] == ["b.db"]  # no -wal/-shm/-journal beside it
    assert stat.S_IMODE((tmp_path / "backups" / "b.db").stat().st_mode) == 0o600
    checked = codigit("restore", str(tmp_path / "backups" / "b.db"), home=tmp_path / "again")
    assert checked.returncode == 0, checked.stderr
    assert [p.name for p in (tmp_path / "backups").iterdir()] == ["b.db"]  # checking it left nothing either


def test_backup_to_an_unwritable_place_is_one_line_and_leaves_nothing(tmp_path):
    wal_database(tmp_path / "home" / "argilla.db")
    (tmp_path / "a-file").write_text("not a folder")
    # a path through a file, and a read-only file system (root ignores permission bits, not these)
    for out in (tmp_path / "a-file" / "new" / "b.db", "/sys/codigit-backup/b.db"):
        result = codigit("backup", "--out", str(out), home=tmp_path / "home")
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(f"codigit: error: backup to {out} failed (")
        assert "nothing was kept" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "home"]
