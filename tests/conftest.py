"""Shared fixtures: a real `codigit serve` (argilla-server 2.8 on SQLite) in a temp home, driven over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from codigit.errors import CodigitError
from codigit.server.serve import free_port, spawn
from codigit.simulate import UI_QUEUE, Participant, api_client, sign_in  # noqa: F401  (tests import them from here)

REPO = Path(__file__).resolve().parents[1]
STUDY = REPO / "annotation" / "study.yaml"
ARTIFACTS = REPO / "tests" / "artifacts"

# Tests interrupt the CLI with SIGINT as ctrl-c would. A suite started in the background by a non-interactive shell
# (`make test &`) inherits SIGINT ignored, and so would every child, which then never sees the signal (seen: the
# ctrl-c tests timed out in such a run). A handler here is reset to the default in each child at exec.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# A child process's start (argilla_server reads its settings when first imported): the app as `codigit serve` builds
# it on the home in argv[1], the owner's API key, and every SQL statement run from here on in `seen`.
CHILD_APP = r"""
import asyncio, json, sqlite3, sys, uuid
from pathlib import Path
import httpx
from sqlalchemy import event
from sqlalchemy.engine import Engine
from codigit.server import app as server_app

home = Path(sys.argv[1])
url = server_app.configure(home)
server_app.prepare_database(url)
key = server_app.ensure_owner(home)["api_key"]
app = server_app.create_app(home, None)
seen = []
event.listen(Engine, "before_cursor_execute", lambda c, cur, statement, *a: seen.append(" ".join(statement.split())))
"""

# Under pytest-xdist each worker gets one core's worth of threads: torch in two workers (and in their children),
# each spinning threads for every core, contend (concurrent torch jobs have run up to 10x slower here).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """The random order's seed again at the end: the header has scrolled away by then, and `-q` hides it."""
    seed = getattr(config.option, "randomly_seed", None)
    if isinstance(seed, int) and config.pluginmanager.hasplugin("randomly"):
        terminalreporter.write_line(f"random order: --randomly-seed={seed} repeats it, -p no:randomly keeps file order")


@dataclass
class Server:
    url: str
    home: Path
    port: int
    proc: subprocess.Popen
    log: Path

    @property
    def api_key(self) -> str:
        return json.loads((self.home / "credentials.json").read_text())["api_key"]

    def http(self, api_key: str | None = None) -> httpx.Client:
        """A plain HTTP client on /api/v1 with the given key (default: the owner's)."""
        return api_client(self.url, api_key or self.api_key)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)


@pytest.fixture
def gguf_parsed_once(monkeypatch):
    """transformers parses a GGUF file once for its config and again for its weights (`gguf.GGUFReader`, ~20 s
    here for a 128k vocabulary, all of it in gguf's own Python): the second read of the same unchanged file gets
    the first one's reader. The file is still read and parsed by gguf, and a rewritten file is parsed again."""
    import gguf

    readers, parse = {}, gguf.GGUFReader

    def reader(path, *args, **kwargs):
        stat = Path(path).stat()
        key = (str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size, args, tuple(sorted(kwargs.items())))
        if key not in readers:
            readers[key] = parse(path, *args, **kwargs)
        return readers[key]

    monkeypatch.setattr(gguf, "GGUFReader", reader)


def wait_for(predicate, timeout: float = 60.0, every: float = 0.2):
    """`predicate()`'s first truthy value, asked every `every` s; an AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met in {timeout}s")


def codigit(*args: str, home: Path | None = None, env: dict | None = None, timeout: float = 300):
    """Run the real CLI in a subprocess; returns the CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    if home is not None:
        full_env["CODIGIT_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "codigit.cli", *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_server(home: Path, port: int | None = None, extra: tuple[str, ...] = (), wait: float = 120) -> Server:
    port = port or free_port()
    home.mkdir(parents=True, exist_ok=True)
    log = home.parent / f"{home.name}-serve-{port}.log"
    try:
        proc = spawn(home, port, log, extra, wait)
    except CodigitError as e:
        raise RuntimeError(f"{e}:\n{log.read_text()}") from None
    return Server(f"http://127.0.0.1:{port}", home, port, proc, log)


@contextlib.contextmanager
def own_study_server(home: Path, study: Path = STUDY):
    """A server of a test's own (so snapshots hold only that test's data) with the study (`study`) initialised."""
    srv = start_server(home)
    try:
        init = codigit("init", "--study", str(study), home=srv.home)
        assert init.returncode == 0, init.stderr
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def served(request, tmp_path):
    """For a browser test: a server of its own with its module's STUDY initialised."""
    from browser import playwright_or_fail

    playwright_or_fail()
    with own_study_server(tmp_path / "home", request.module.STUDY) as server:
        yield server


@contextlib.contextmanager
def feedback_study_server(tmp: Path):
    """A server of a test's own, started with `--snapshots` in `tmp`, serving a copy of the study whose authors see
    feedback after a round closes, set up by the real `codigit init`; yields (server, study file, snapshots)."""
    annotation = tmp / "annotation"
    shutil.copytree(STUDY.parent, annotation)
    study_file = annotation / "study.yaml"
    text = study_file.read_text(encoding="utf-8")
    study_file.write_text(text.replace("feedback_to_authors: false", "feedback_to_authors: true"), encoding="utf-8")
    snapshots = tmp / "snapshots"
    srv = start_server(tmp / "home", extra=("--snapshots", str(snapshots)))
    try:
        init = codigit("init", "--study", str(study_file), home=srv.home)
        assert init.returncode == 0 and "enforces" in init.stdout, init.stderr
        yield srv, study_file, snapshots
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    srv = start_server(tmp_path_factory.mktemp("codigit") / "home")
    yield srv
    if srv.proc.poll() is None:
        srv.stop()


@pytest.fixture(scope="session")
def study_server(server: Server) -> Server:
    """The session server with the study initialised by the real `codigit init`."""
    result = codigit("init", "--study", str(STUDY), home=server.home)
    assert result.returncode == 0, result.stderr
    return server


@pytest.fixture(scope="module")
def owner(server: Server) -> httpx.Client:
    """The owner's HTTP client on the session server (one per test module)."""
    with server.http() as client:
        yield client


def login(server: Server, username: str, password: str) -> str:
    """Sign in as a participant does (password form) and return their API key."""
    return sign_in(server.url, username, password)


def add_participants(server: Server, roster: dict[str, str], tmp: Path) -> dict[str, Participant]:
    """Accounts for {key: real name} through the real `codigit participants add`, signed in by password."""
    path = tmp / "roster.csv"
    path.write_text("name,email\n" + "".join(f"{name},{key}@example.org\n" for key, name in roster.items()))
    logins = tmp / "logins.csv"
    result = codigit("participants", "add", str(path), "--out", str(logins), home=server.home)
    assert result.returncode == 0, result.stderr
    import csv

    with logins.open(newline="", encoding="utf-8") as f:
        rows = {r["email"].split("@")[0]: r for r in csv.DictReader(f)}
    return {
        key: Participant(row["username"], server.http(login(server, row["username"], row["password"])))
        for key, row in rows.items()
    }


def make_dataset(client, name: str):
    """An argilla SDK dataset of 3 records ("r0".."r2") in workspace "jobs", needing 2 submissions per record."""
    import argilla as rg

    workspace = client.workspaces("jobs") or rg.Workspace(name="jobs", client=client).create()
    settings = rg.Settings(
        fields=[rg.TextField(name="text")],
        questions=[rg.LabelQuestion(name="ok", labels=["yes", "no"])],
        distribution=rg.TaskDistribution(min_submitted=2),
    )
    dataset = rg.Dataset(name=name, workspace=workspace, settings=settings, client=client).create()
    dataset.records.log([{"id": f"r{i}", "text": f"record number {i}"} for i in range(3)])
    return dataset


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """For the training and generation tests: a tiny Llama built from config (the real offline Llama-3 tokenizer)
    and a real release of 40 stories of different lengths, made by `make_release`."""
    from release_data import base, snapshot

    from codigit.records import write_snapshot
    from codigit.release.manage import make_release
    from codigit.release.policy import load_policy
    from codigit.study import load_study
    from codigit.train.llama3 import save_random_llama

    root = tmp_path_factory.mktemp("train")
    save_random_llama(root / "tiny", hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True)  # fmt: skip
    stories, reviews, consent = base(40)
    stories = [s.model_copy(update={"story": " ".join([s.story] * (1 + i % 5))}) for i, s in enumerate(stories)]
    snap = write_snapshot(snapshot(stories, reviews, consent), root / "snaps")  # stories of different lengths
    policy, study = load_policy(REPO / "annotation/policy.yaml"), load_study(REPO / "annotation/study.yaml")
    release, manifest, _ = make_release("0.1.0", snap, policy, study, root / "releases", None)
    return {"root": root, "model": root / "tiny", "release": release, "hash": manifest.dataset_hash}


def recipe(world: dict, name: str, **extra) -> Path:
    """A CPU training recipe on `world` (6 fp32 steps of LoRA, seed 1), run folder world/runs/<name>."""
    import yaml

    values = {
        "release": str(world["release"]), "release_hash": world["hash"], "model_name_or_path": str(world["model"]),
        "dtype": "float32", "use_peft": True, "lora_r": 8, "lora_alpha": 16,
        "lora_target_modules": ["q_proj", "v_proj"],
        "output_dir": str(world["root"] / "runs" / name), "seed": 1, "max_steps": 6, "learning_rate": 1e-2,
        "per_device_train_batch_size": 4, "max_length": 256, "assistant_only_loss": True, "packing": False,
        "logging_steps": 1, "save_steps": 3, "report_to": "none", "use_cpu": True, "disable_tqdm": True,
        **extra,
    }  # fmt: skip
    path = world["root"] / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def wal_database(path: Path) -> Path:
    """A SQLite file in WAL mode with Argilla's tables, as the server leaves its database: enough for `backup`
    and `restore`, without a server."""
    import sqlite3

    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        for table in ("users", "workspaces", "datasets", "records", "responses"):
            db.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, body TEXT)")
        db.execute("INSERT INTO records (body) VALUES ('a story')")
    return path
