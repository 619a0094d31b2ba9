"""The CLI: thin, fast to start, and every user mistake is one clear line with a non-zero exit."""

from __future__ import annotations

import csv
import socket
import stat
import subprocess
import sys

import pytest
from conftest import REPO, STUDY, codigit, free_port, start_server

from codigit.cli import INTERRUPTED

HEAVY = ("torch", "transformers", "trl", "datasets")


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)  # the CLI's exit status for `codigit: error:`
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("codigit: error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_help_imports_nothing_heavy():
    code = "import sys; from codigit.cli import build_parser; build_parser(); print(sorted(set(sys.modules) & %r))"
    out = subprocess.run([sys.executable, "-c", code % (set(HEAVY),)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert codigit("--help").returncode == 0


@pytest.mark.slow
def test_server_app_does_not_import_the_ml_stack(tmp_path):
    """argilla-server itself imports `datasets` (its hub export), but nothing pulls torch/transformers/trl."""
    code = (
        "import sys; from pathlib import Path; from codigit.server import app; "
        f"url = app.configure(Path({str(tmp_path)!r})); app.prepare_database(url); "
        f"app.create_app(Path({str(tmp_path)!r}), Path({str(tmp_path)!r}) / 'snapshots'); "
        "print(sorted(set(sys.modules) & {'torch', 'transformers', 'trl'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("workspace: codigit\nstories: {}\ncolour: blue\n", "colour: unknown key"),
        ("workspace: codigit\nstories:\n  datset: x\n", "stories.datset: unknown key"),
        ("workspace: [unclosed\n", "not valid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        ("workspace: Not Valid!\n", "workspace: String should match pattern"),
    ],
)
def test_bad_study_yaml(tmp_path, yaml_text, expected):
    bad = tmp_path / "study.yaml"
    bad.write_text(yaml_text)
    line = one_line_error(codigit("init", "--study", str(bad), home=tmp_path))
    assert str(bad) in line and expected in line


def test_study_yaml_invalid_field_key_names_the_path(tmp_path):
    text = STUDY.read_text().replace("      use_markdown: true", "      use_markdown: true\n      widht: 3", 1)
    (tmp_path / "study.yaml").write_text(text)
    line = one_line_error(codigit("init", "--study", str(tmp_path / "study.yaml"), home=tmp_path))
    assert "stories.fields.0.widht: unknown key" in line


def test_init_without_a_server_says_how_to_start_one(tmp_path):
    line = one_line_error(codigit("init", "--study", str(STUDY), home=tmp_path / "empty"))
    assert "codigit serve" in line


@pytest.mark.slow
def test_init_is_idempotent_and_works_by_url_and_key(study_server, tmp_path):
    again = codigit("init", "--study", str(STUDY), home=study_server.home)
    assert again.returncode == 0, again.stderr
    assert "exists: workspace codigit" in again.stdout and "codigit-organisers/ledger: up to date" in again.stdout
    # any Argilla 2.x by URL + key, here the same server reached as an external one from an unrelated home
    env = {"ARGILLA_API_URL": study_server.url, "ARGILLA_API_KEY": study_server.api_key}
    external = codigit("init", "--study", str(STUDY), home=tmp_path / "elsewhere", env=env)
    assert external.returncode == 0, external.stderr
    assert "codigit-organisers/ledger: up to date" in external.stdout


def users(server) -> set[str]:
    return {u["username"] for u in server.http().get("/users").json()["items"]}


@pytest.mark.parametrize(
    ("roster", "expected"),
    [
        ("name,email\nAnn,ann@example.org\n,nobody@example.org\n", "row 3: `name` is empty"),
        ("name,email\nAnn,ann@example.org\nBen,not-an-email\n", "row 3: 'not-an-email' is not an email"),
        ("name,email\nAnn,ann@example.org\nAnn Again,ann@example.org\n", "row 3: same person or pseudonym as row 2"),
        ("name,pseudonym\nAnn,Bad Name\n", "row 2: pseudonym 'Bad Name'"),
        ("email\nann@example.org\n", "must have a `name` column"),
        ("name,age\nAnn,41\n", "unknown column(s) age"),
        ("name\n", "no participants"),
        ("name,email\nAnn,ann@example.org,extra\n", "row 2: more values than columns"),
    ],
)
def test_bad_roster_creates_nothing(study_server, tmp_path, roster, expected):
    before = users(study_server)
    path = tmp_path / "roster.csv"
    path.write_text(roster)
    line = one_line_error(codigit("participants", "add", str(path), "--study", str(STUDY), home=study_server.home))
    assert expected in line
    assert users(study_server) == before


def test_non_utf8_roster(study_server, tmp_path):
    path = tmp_path / "roster.csv"
    path.write_bytes("name\nJosé\n".encode("latin-1"))
    assert "not UTF-8" in one_line_error(codigit("participants", "add", str(path), home=study_server.home))


@pytest.mark.slow
def test_participants_add_is_idempotent_and_pseudonymous(study_server, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("name,email,pseudonym\nCara Real-Name,cara@example.org,\nDev Real-Name,,dev-chosen\n")
    out = tmp_path / "logins.csv"
    args = ("participants", "add", str(roster), "--study", str(STUDY), "--out", str(out))
    first = codigit(*args, home=study_server.home)
    assert first.returncode == 0, first.stderr
    rows1 = list(csv.DictReader(out.open()))
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert rows1[1]["username"] == "dev-chosen" and rows1[0]["username"].startswith("p-")
    assert all(len(r["password"]) >= 12 for r in rows1)

    second = codigit(*args, home=study_server.home)
    assert second.returncode == 0, second.stderr
    assert list(csv.DictReader(out.open())) == rows1  # same pseudonyms, passwords kept

    server_users = study_server.http().get("/users").json()["items"]
    mine = [u for u in server_users if u["username"] in {r["username"] for r in rows1}]
    assert len(mine) == 2 and all(u["role"] == "annotator" for u in mine)
    assert "Real-Name" not in str(mine)  # real names never reach the server
    workspace = next(w for w in study_server.http().get("/me/workspaces").json()["items"] if w["name"] == "codigit")
    members = {u["username"] for u in study_server.http().get(f"/workspaces/{workspace['id']}/users").json()["items"]}
    assert {r["username"] for r in rows1} <= members


def test_credentials_are_private_and_never_logged(study_server):
    creds = study_server.home / "credentials.json"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    log = study_server.log.read_text()
    assert str(creds) in log
    secrets = __import__("json").loads(creds.read_text())
    assert secrets["password"] not in log and secrets["api_key"] not in log


def test_port_in_use(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line_error(codigit("serve", "--home", str(tmp_path / "h"), "--port", str(port), timeout=60))
    assert f"127.0.0.1:{port}" in line and "--port" in line


def test_home_not_writable(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = one_line_error(codigit("serve", "--home", str(blocker / "home"), "--port", str(free_port()), timeout=60))
    assert "not writable" in line


def test_two_commands_checking_one_home_at_once_both_find_it_writable(tmp_path):
    """Each check writes and removes a probe file of its own (a shared name: one removed the other's, and the other
    said the home was not writable; seen with two `participants add` at once)."""
    from concurrent.futures import ThreadPoolExecutor

    from codigit.home import ensure_writable_home

    home = tmp_path / "home"
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: ensure_writable_home(home), range(400)))
    assert results == [home] * 400 and list(home.iterdir()) == []


@pytest.mark.slow
def test_corrupt_database(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "argilla.db").write_bytes(b"this is not a database" * 100)
    line = one_line_error(codigit("serve", "--home", str(home), "--port", str(free_port()), timeout=60))
    assert "corrupt" in line and "argilla.db" in line


@pytest.mark.slow
def test_non_loopback_bind_warns(tmp_path):
    server = start_server(tmp_path / "home", extra=("--host", "0.0.0.0"))
    try:
        assert "not loopback" in server.log.read_text()
        assert listening_addresses(server.port) == {"0.0.0.0"}
    finally:
        assert server.stop() == 0


def listening_addresses(port: int) -> set[str]:
    """Local addresses listening on port, from the kernel's socket table (no traffic needed)."""
    found = set()
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if int(hex_port, 16) == port and state == "0A":  # 0A = LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def test_default_bind_is_loopback_only(study_server):
    assert listening_addresses(study_server.port) == {"127.0.0.1"}


@pytest.mark.slow
def test_a_later_roster_keeps_earlier_logins(study_server, tmp_path):
    out = tmp_path / "logins.csv"
    first, later = tmp_path / "first.csv", tmp_path / "later.csv"
    first.write_text("name,email\nEarly One,early1@example.org\nEarly Two,early2@example.org\n")
    later.write_text("name,email\nLate Three,late3@example.org\n")
    for roster in (first, later):
        result = codigit(
            "participants",
            "add",
            str(roster),
            "--study",
            str(STUDY),
            "--out",
            str(out),
            "--login-url",
            "https://workshop.example.org",
            home=study_server.home,
        )
        assert result.returncode == 0, result.stderr
    rows = {r["email"]: r for r in csv.DictReader(out.open())}
    assert set(rows) == {"early1@example.org", "early2@example.org", "late3@example.org"}
    assert all(len(r["password"]) >= 12 and r["login_url"] == "https://workshop.example.org" for r in rows.values())


@pytest.mark.slow
def test_roster_clashing_with_a_non_participant_creates_nothing(study_server, tmp_path):
    before = users(study_server)
    roster = tmp_path / "roster.csv"
    roster.write_text("name,pseudonym\nNew Person,new-person-x\nNot Owner,owner\n")
    line = one_line_error(codigit("participants", "add", str(roster), "--study", str(STUDY), home=study_server.home))
    assert "row 3" in line and "owner" in line
    assert users(study_server) == before


def test_wrong_api_key_is_one_line(study_server, tmp_path):
    env = {"ARGILLA_API_URL": study_server.url, "ARGILLA_API_KEY": "not-the-key"}
    assert "refused the API key" in one_line_error(codigit("init", "--study", str(STUDY), home=tmp_path, env=env))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--database-url", "sqlite://"), "not a usable database URL"),
        (("--database-url", "nonsense"), "not a usable database URL"),
    ],
)
def test_bad_database_url(tmp_path, args, expected):
    line = one_line_error(codigit("serve", "--home", str(tmp_path / "h"), "--port", str(free_port()), *args))
    assert expected in line


def test_bad_port_and_unreadable_inputs(tmp_path):
    result = codigit("serve", "--home", str(tmp_path / "h"), "--port", "70000")
    assert result.returncode == 2 and "not a TCP port" in result.stderr and "Traceback" not in result.stderr
    assert "cannot read the roster" in one_line_error(codigit("participants", "add", str(tmp_path), home=tmp_path))
    assert "cannot read the study" in one_line_error(codigit("init", "--study", str(tmp_path), home=tmp_path))


def test_ctrl_c_inside_a_librarys_constructor_is_still_one_line():
    """An interrupt can land while tqdm builds a progress bar (argilla's, when records are logged): the half-built
    bar raises as it is collected, after codigit has said what was kept. That complaint is not shown."""
    script = (
        "import sys, tqdm.std\n"
        "from codigit import cli\n"
        "def cut_short(*args):\n"
        "    raise KeyboardInterrupt\n"
        "tqdm.std.tqdm._get_free_pos = staticmethod(cut_short)  # the moment the interrupt arrives\n"
        "cli.resolve_defaults = lambda args: tqdm.std.tqdm(range(3))\n"
        "sys.exit(cli.main(['serve']))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 130, out.stderr
    assert out.stderr.strip().splitlines() == [f"codigit: interrupted: {INTERRUPTED}"]
