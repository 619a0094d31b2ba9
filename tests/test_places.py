"""One place for an organiser's files: after `codigit init --data DIR`, commands run from any directory find the
study it checked and keep snapshots and backups under DIR (real server, real CLI processes in other folders)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest
from conftest import REPO, STUDY, start_server


def run_in(folder, *args, home):
    """The real CLI, started in `folder` (not the checkout): what an organiser who changed directory gets."""
    env = {**os.environ, "CODIGIT_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "codigit.cli", *args], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


@pytest.mark.slow
def test_commands_from_any_directory_use_the_study_and_data_folder_init_recorded(tmp_path):
    study = tmp_path / "our-study" / "study.yaml"
    shutil.copytree(STUDY.parent, study.parent)
    data, elsewhere, third = tmp_path / "study-data", tmp_path / "elsewhere", tmp_path / "third"
    elsewhere.mkdir()
    third.mkdir()
    srv = start_server(tmp_path / "home")
    try:
        init = run_in(tmp_path, "init", "--study", str(study), "--data", "study-data", home=srv.home)
        assert init.returncode == 0, init.stderr
        assert f"under {data}, from any directory" in init.stdout
        places = srv.home / "places.json"
        assert json.loads(places.read_text()) == {"study": str(study), "data": str(data)}
        assert stat.S_IMODE(places.stat().st_mode) == 0o600

        # no --study, no --out, and neither ./annotation nor ./data exists where these run
        collected = run_in(elsewhere, "collect", home=srv.home)
        assert collected.returncode == 0, collected.stderr
        snapshots = data / "snapshots"
        assert (snapshots / "LATEST").is_file() and not (elsewhere / "data").exists()
        latest = (snapshots / "LATEST").read_text().strip()
        agreement = run_in(third, "agreement", home=srv.home)  # reads the recorded study and the latest snapshot
        assert f"snapshot {latest}" in agreement.stdout + agreement.stderr, agreement.stderr
        backup = run_in(third, "backup", home=srv.home)
        assert backup.returncode == 0, backup.stderr
        assert [p.parent for p in (data / "backups").glob("argilla-*.db")] == [data / "backups"]
        assert sorted(p.name for p in third.iterdir()) == []  # nothing landed where the commands ran

        # an explicit option still wins; a rerun of init keeps the recorded data folder
        own = run_in(elsewhere, "collect", "--out", str(tmp_path / "mine"), home=srv.home)
        assert own.returncode == 0 and (tmp_path / "mine" / "LATEST").is_file(), own.stderr
        again = run_in(elsewhere, "init", home=srv.home)  # the recorded study, from a folder without one
        assert again.returncode == 0, again.stderr
        assert json.loads(places.read_text())["data"] == str(data)
        shown = run_in(elsewhere, "release", "make", "--help", home=srv.home)
        assert "as recorded by `codigit init`" in " ".join(shown.stdout.split())
    finally:
        srv.stop()


def test_without_init_defaults_stay_in_the_current_directory_and_a_damaged_record_is_one_line(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    # no places.json: the checkout's own study, as the README's first steps expect
    fresh = run_in(REPO, "agreement", "--snapshot", str(tmp_path / "none"), home=home)
    assert fresh.returncode == 2 and "run `codigit collect` first" in fresh.stderr
    (home / "places.json").write_text("{not json")
    damaged = run_in(tmp_path, "collect", home=home)
    assert damaged.returncode == 2
    assert damaged.stderr.strip() == (
        f"codigit: error: {home / 'places.json'}: unreadable; run `codigit init` again to record the study and data "
        "folder"
    )
