"""`codigit participants add` run twice at once, interrupted anywhere, and fed spreadsheet formulas: afterwards
every account of the roster has a password in the logins file that signs in, and every participant's forms are
whole (no dataset left half-made). Real server, real processes, real signals."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from conftest import REPO, STUDY, Server, codigit, login

from codigit.participants import LOCK_FILE
from codigit.roster import RESETS_FILE, pseudonym_for, pseudonym_key, read_roster
from codigit.study import load_study

pytestmark = pytest.mark.slow  # every test runs `participants add` processes against the server, some interrupted

FORMS = load_study(STUDY)
FORM_NAMES = {FORMS.stories.dataset, FORMS.consent.dataset, FORMS.positionality.dataset}


def write_roster(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("name", "email"), *rows])
    return path


def new_roster(tmp: Path, n: int, label: str) -> Path:
    tag = uuid.uuid4().hex[:8]
    return write_roster(tmp / f"{label}-{tag}.csv", [(f"{label} {tag} {i}", f"{label}-{tag}-{i}@example.org")
                                                       for i in range(n)])  # fmt: skip


def start_add(server: Server, roster: Path, out: Path, stderr: Path, stdout: Path | None = None) -> subprocess.Popen:
    """The real CLI in a child process, running on its own (not waited for)."""
    args = [sys.executable, "-m", "codigit.cli", "participants", "add", str(roster), "--study", str(STUDY)]
    return subprocess.Popen(
        [*args, "--out", str(out)],
        cwd=REPO,
        env={**os.environ, "CODIGIT_HOME": str(server.home)},
        stdout=stdout.open("w") if stdout else subprocess.DEVNULL,
        stderr=stderr.open("w"),
        text=True,
    )


def wait_until(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def holds_lock(server: Server, proc: subprocess.Popen) -> bool:
    """The add has started its work (imports done, lock taken): its pid is in the lock file."""
    lock = server.home / LOCK_FILE
    return lock.exists() and lock.read_text().strip() == str(proc.pid)


def rows_of(out: Path) -> list[dict[str, str]]:
    with out.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def said(stderr: str | Path) -> list[str]:
    """What the command said on stderr, less the home-permission warning every command may log."""
    text = stderr.read_text() if isinstance(stderr, Path) else stderr
    return [line for line in text.splitlines() if line and "can be read by other users" not in line]


def assert_every_account_signs_in(server: Server, rosters: list[Path], out: Path) -> None:
    """Each roster person's account exists, is in the file once, and the file's password signs in; their own
    workspace holds every form, published, with its fields, questions and records."""
    key = pseudonym_key(server.home)
    expected = {pseudonym_for(p, key) for roster in rosters for p in read_roster(roster)}
    rows = rows_of(out)
    usernames = [r["username"] for r in rows]
    assert len(usernames) == len(set(usernames)), usernames
    by_name = {r["username"]: r for r in rows}
    owner = server.http()
    accounts = {u["username"] for u in owner.get("/users").raise_for_status().json()["items"]}
    workspaces = {w["name"]: w["id"] for w in owner.get("/me/workspaces").raise_for_status().json()["items"]}
    datasets = owner.get("/me/datasets").raise_for_status().json()["items"]
    for username in expected:
        assert username in accounts and username in by_name, username
        assert login(server, username, by_name[username]["password"])
        mine = [d for d in datasets if d["workspace_id"] == workspaces[username]]
        assert {d["name"] for d in mine} == FORM_NAMES and all(d["status"] == "ready" for d in mine), mine
        for d in mine:
            assert owner.get(f"/datasets/{d['id']}/fields").json()["items"], d
            assert owner.get(f"/datasets/{d['id']}/questions").json()["items"], d
            assert owner.get(f"/datasets/{d['id']}/records", params={"limit": 1}).json()["total"] >= 1, d


@pytest.mark.parametrize("same_roster", [False, True], ids=["different-rosters", "same-roster"])
def test_two_adds_at_once_both_succeed_and_keep_every_password(study_server, tmp_path, same_roster):
    first = new_roster(tmp_path, 2, "Twin")
    second = first if same_roster else new_roster(tmp_path, 2, "Other")
    out = tmp_path / "logins.csv"
    procs = [start_add(study_server, r, out, tmp_path / f"err-{i}") for i, r in enumerate((first, second))]
    codes = [p.wait(timeout=180) for p in procs]
    assert codes == [0, 0], [said(tmp_path / f"err-{i}") for i in range(2)]
    for i in range(2):  # at most the one line that says it waits for the other
        assert all("is running on" in line for line in said(tmp_path / f"err-{i}")), said(tmp_path / f"err-{i}")
    assert len(rows_of(out)) == (2 if same_roster else 4)
    assert_every_account_signs_in(study_server, [first, second], out)


def test_ctrl_c_while_waiting_for_another_add_changes_nothing(study_server, tmp_path):
    out, roster = tmp_path / "logins.csv", new_roster(tmp_path, 2, "Wait")
    running = start_add(study_server, roster, out, tmp_path / "err-running")
    wait_until(lambda: holds_lock(study_server, running), "the first add to take the lock")
    waiting = start_add(study_server, roster, tmp_path / "other.csv", tmp_path / "err-waiting")
    wait_until(lambda: "is running on" in (tmp_path / "err-waiting").read_text(), "the second to wait")
    waiting.send_signal(signal.SIGINT)
    assert waiting.wait(timeout=60) == 130
    lines = said(tmp_path / "err-waiting")
    assert len(lines) == 2 and lines[1].startswith("codigit: interrupted: nothing was changed"), lines
    assert not (tmp_path / "other.csv").exists()
    assert running.wait(timeout=180) == 0
    assert_every_account_signs_in(study_server, [roster], out)


def add_in_background(server: Server, roster: Path, out: Path, tmp: Path) -> tuple[subprocess.Popen, Path, Path]:
    """An add started and past its start-up (it holds the lock), or already over; with its stderr and stdout."""
    err, printed = tmp / f"{out.stem}.err", tmp / f"{out.stem}.out"
    proc = start_add(server, roster, out, err, printed)
    wait_until(lambda: holds_lock(server, proc) or proc.poll() is not None, "the add to begin")
    return proc, err, printed


def test_ctrl_c_anywhere_then_a_rerun_leaves_every_password_known_and_every_form_whole(study_server, tmp_path):
    """Trials interrupt an add that makes accounts, or one into a new logins file that resets their passwords, at a
    random moment of its work (timed by an uninterrupted run of each kind); the rerun of the same command finishes
    the job."""
    rng = random.Random(13)
    roster, windows = new_roster(tmp_path, 2, "Timed"), {}
    for kind in ("create", "reset"):
        proc, _, _ = add_in_background(study_server, roster, tmp_path / f"timed-{kind}.csv", tmp_path)
        began = time.monotonic()
        assert proc.wait(timeout=120) == 0
        windows[kind] = time.monotonic() - began
    interrupted = 0
    for trial in range(6):
        kind = "reset" if trial % 3 == 2 else "create"  # a reset: the last roster, into a file without them
        roster = roster if kind == "reset" else new_roster(tmp_path, 2, f"Trial{trial}")
        out = tmp_path / f"logins-{trial}.csv"
        proc, err, printed = add_in_background(study_server, roster, out, tmp_path)
        time.sleep(rng.uniform(0, 0.9 * windows[kind]))
        proc.send_signal(signal.SIGINT)
        code, lines = proc.wait(timeout=120), said(err)
        if code == 130:
            interrupted += 1
            assert len(lines) == 1 and lines[0].startswith("codigit: interrupted: "), lines
            assert "participants done" in lines[0], lines
        else:  # it had finished before the signal, or was ending (where Python's own handler is gone: -SIGINT)
            assert code in (0, -signal.SIGINT) and lines == [], (code, lines)
            assert "credentials to hand out" in printed.read_text()
        again = codigit("participants", "add", str(roster), "--study", str(STUDY), "--out", str(out),
                        home=study_server.home)  # fmt: skip
        assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr
        assert_every_account_signs_in(study_server, [roster], out)
    assert interrupted >= 3, f"only {interrupted} of 6 trials were interrupted: the windows are mistimed"


def test_a_reset_cut_short_between_file_and_server_is_finished_by_the_rerun(study_server, tmp_path):
    """The state a Ctrl-C leaves after the new password reached the logins file and before it reached the server
    (made here on purpose, since a random signal seldom lands there): the rerun sets it, and says so."""
    roster, first, second = new_roster(tmp_path, 1, "Cut"), tmp_path / "first.csv", tmp_path / "second.csv"
    assert codigit("participants", "add", str(roster), "--study", str(STUDY), "--out", str(first),
                   home=study_server.home).returncode == 0  # fmt: skip
    row = {**rows_of(first)[0], "password": "set-in-the-file-only"}
    with second.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, list(row))
        writer.writeheader()
        writer.writerow(row)
    notes = study_server.home / RESETS_FILE
    noted = json.loads(notes.read_text()) if notes.exists() else {}
    notes.write_text(json.dumps({**noted, str(second.resolve()): [row["username"]]}))
    with pytest.raises(httpx.HTTPStatusError):
        login(study_server, row["username"], row["password"])
    again = codigit("participants", "add", str(roster), "--study", str(STUDY), "--out", str(second),
                    home=study_server.home)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert f"new passwords for {row['username']}" in again.stdout
    assert rows_of(second)[0]["password"] == "set-in-the-file-only"
    assert_every_account_signs_in(study_server, [roster], second)
    assert str(second.resolve()) not in (json.loads(notes.read_text()) if notes.exists() else {})


def test_a_half_made_private_dataset_is_completed_not_an_error(study_server, tmp_path):
    """What a Ctrl-C inside Argilla's dataset create leaves: the participant's workspace with a draft form that has
    no fields or questions. Before, every later `participants add` and `init` failed on it."""
    pseudonym = f"half-{uuid.uuid4().hex[:8]}"
    roster = tmp_path / "roster.csv"
    roster.write_text(f"name,pseudonym\nHalf Made,{pseudonym}\n", encoding="utf-8")
    owner = study_server.http()
    workspace = owner.post("/workspaces", json={"name": pseudonym}).raise_for_status().json()
    owner.post("/datasets", json={"name": FORMS.stories.dataset, "workspace_id": workspace["id"]}).raise_for_status()
    out = tmp_path / "logins.csv"
    added = codigit("participants", "add", str(roster), "--study", str(STUDY), "--out", str(out),
                    home=study_server.home)  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert_every_account_signs_in(study_server, [roster], out)  # `init` brings forms up to date the same way


def test_an_account_without_a_password_in_the_file_gets_a_new_one_and_the_output_says_so(study_server, tmp_path):
    roster = new_roster(tmp_path, 2, "Moved")
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    for out in (first, second):
        result = codigit("participants", "add", str(roster), "--study", str(STUDY), "--out", str(out),
                         home=study_server.home)  # fmt: skip
        assert result.returncode == 0, result.stderr
    assert "new passwords for" in result.stdout and str(second) in result.stdout
    assert_every_account_signs_in(study_server, [roster], second)
    for row in rows_of(first):  # the old passwords no longer work, as the output said
        with pytest.raises(httpx.HTTPStatusError):
            login(study_server, row["username"], row["password"])
    again = codigit("participants", "add", str(roster), "--study", str(STUDY), "--out", str(second),
                    home=study_server.home)  # fmt: skip
    assert again.returncode == 0 and "new passwords" not in again.stdout, again.stdout


def test_formulas_in_roster_names_are_text_in_the_logins_file(study_server, tmp_path):
    tag = uuid.uuid4().hex[:6]
    rows = [
        ('=HYPERLINK("http://x","y")', f"f-{tag}@example.org"),
        ("@cmd", f"+{tag}@example.org"),
        (f"-{tag}+3", ""),  # no email: the pseudonym comes from the name itself
    ]
    roster = write_roster(tmp_path / "roster.csv", rows)
    out = tmp_path / "logins.csv"
    for _ in range(2):  # the second run rewrites the file: still one apostrophe, not two
        result = codigit("participants", "add", str(roster), "--study", str(STUDY), "--out", str(out),
                         home=study_server.home)  # fmt: skip
        assert result.returncode == 0, result.stderr
        written = [(r["name"], r["email"]) for r in rows_of(out)]
        assert written == [("'" + name, "'" + email if email.startswith("+") else email) for name, email in rows]
    for row in rows_of(out):
        assert not row["password"].startswith(("=", "+", "-", "@")), row
        assert not row["username"].startswith(("=", "+", "-", "@", "'")), row
    assert_every_account_signs_in(study_server, [roster], out)


def test_a_login_url_that_is_not_an_address_is_one_line_and_creates_nothing(study_server, tmp_path):
    roster, out = new_roster(tmp_path, 1, "Url"), tmp_path / "logins.csv"
    result = codigit("participants", "add", str(roster), "--study", str(STUDY), "--out", str(out),
                     "--login-url", '=HYPERLINK("http://x")', home=study_server.home)  # fmt: skip
    lines = said(result.stderr)
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("codigit: error: --login-url"), lines
    assert not out.exists()
