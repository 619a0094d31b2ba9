"""`codigit participants add`: annotator accounts with stable pseudonymous usernames, from a roster CSV.

Real names and emails stay on the organiser's machine: the server only ever sees the pseudonym (as username and
display name). A pseudonym is an HMAC of the person's email (or name) under a secret key kept in the home dir,
so rerunning with the same roster gives the same pseudonyms and nobody can recompute them from a guessed name.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import hmac
import io
import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from tqdm import tqdm

from codigit.collect import kept_flags
from codigit.errors import CodigitError, Interrupted
from codigit.forms import log_records, private_forms
from codigit.home import atomic_write, new_secret
from codigit.languages import choose, every_language
from codigit.records import utc_now
from codigit.server.deployed import participant_languages
from codigit.study import Study

if TYPE_CHECKING:
    import argilla as rg

ROSTER_COLUMNS = {"name", "email", "pseudonym"}
LOGINS_COLUMNS = ["name", "email", "username", "password", "login_url"]
PSEUDONYM = re.compile(r"^[a-z][a-z0-9-]{2,39}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
KEY_FILE = "pseudonym.key"
LOCK_FILE = ".participants-add.lock"
RESETS_FILE = "participants-resets.json"  # password resets begun but maybe not finished, by logins file
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as a formula (OWASP, CSV injection)


@dataclass(frozen=True)
class Person:
    row: int
    name: str
    email: str
    pseudonym: str | None  # chosen by the organiser, else derived


def read_roster(path: Path) -> list[Person]:
    """Parse and validate the whole roster; the first problem is an error naming its row. Creates nothing."""
    try:
        content = Path(path).read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise CodigitError(f"{path}: roster not found") from None
    except UnicodeDecodeError as e:
        raise CodigitError(f"{path}: not UTF-8 text (byte {e.start}); save the roster as UTF-8 CSV") from None
    except OSError as e:
        raise CodigitError(f"{path}: cannot read the roster ({e.strerror or e})") from None
    try:
        return _parse_roster(path, content)
    except csv.Error as e:
        raise CodigitError(f"{path}: not a readable CSV ({e})") from None


def _parse_roster(path: Path, content: str) -> list[Person]:
    reader = csv.DictReader(io.StringIO(content))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if "name" not in header:
        raise CodigitError(f"{path}: the header must have a `name` column (and optionally email, pseudonym)")
    if unknown := sorted(set(header) - ROSTER_COLUMNS):
        raise CodigitError(f"{path}: unknown column(s) {', '.join(unknown)}; allowed: name, email, pseudonym")
    reader.fieldnames = header
    people: list[Person] = []
    seen: dict[str, int] = {}
    for row_no, row in enumerate(reader, start=2):
        if None in row:
            raise CodigitError(f"{path}: row {row_no}: more values than columns")
        name = (row.get("name") or "").strip()
        email = (row.get("email") or "").strip().lower()
        pseudonym = (row.get("pseudonym") or "").strip() or None
        if not name and not email and not pseudonym:
            continue  # blank line
        if not name:
            raise CodigitError(f"{path}: row {row_no}: `name` is empty")
        if email and not EMAIL.match(email):
            raise CodigitError(f"{path}: row {row_no}: {email!r} is not an email address")
        if pseudonym and not PSEUDONYM.match(pseudonym):
            raise CodigitError(
                f"{path}: row {row_no}: pseudonym {pseudonym!r} must be 3-40 lowercase letters, digits or '-', "
                "starting with a letter"
            )
        identity = email or name.casefold()
        for key in (f"id:{identity}", f"ps:{pseudonym}" if pseudonym else None):
            if key and key in seen:
                raise CodigitError(f"{path}: row {row_no}: same person or pseudonym as row {seen[key]}")
            if key:
                seen[key] = row_no
        people.append(Person(row_no, name, email, pseudonym))
    if not people:
        raise CodigitError(f"{path}: the roster has no participants")
    return people


def pseudonym_key(home: Path) -> bytes:
    path = home / KEY_FILE
    if not path.exists():
        atomic_write(path, new_secret(32), mode=0o600)
    return path.read_bytes().strip()


def pseudonym_for(person: Person, key: bytes) -> str:
    if person.pseudonym:
        return person.pseudonym
    identity = (person.email or person.name.casefold()).encode()
    return "p-" + hmac.new(key, identity, hashlib.sha256).hexdigest()[:10]


class Added(NamedTuple):
    logins: Path
    reset: list[str]  # accounts whose password was reset because the logins file had none for them


@contextlib.contextmanager
def one_add_at_a_time(home: Path) -> Iterator[None]:
    """An exclusive lock on the home for a whole `participants add`. Two at once would each rewrite the logins file
    from what they had read (the later dropping the earlier's new rows) and could each make a pseudonym key; the
    second waits, and says so. The holder's pid is in the lock file, for that message."""
    fd = os.open(home / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            print(f"codigit: another `participants add` or `init` (pid {holder}) is running on {home}; waiting for it",
                  file=sys.stderr, flush=True)  # fmt: skip
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except KeyboardInterrupt:
                raise Interrupted("nothing was changed (the other command is still running)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def add_participants(
    client: rg.Argilla,
    study: Study,
    people: list[Person],
    home: Path,
    out: Path | None = None,
    login_url: str | None = None,
) -> Added:
    """Create missing accounts, each with a workspace of their own holding their forms, and add everyone to the
    shared review workspace; keep the logins CSV (0600) up to date. Safe to run twice at once (the second waits)
    and to interrupt anywhere: Ctrl-C becomes `Interrupted`, saying what was kept."""
    out = Path(out or home / "participant-logins.csv")
    login_url = (login_url or client.api_url).rstrip("/")
    if not re.match(r"^https?://\S+$", login_url):  # it goes into the logins file and to participants, as a link
        raise CodigitError(f"--login-url {login_url!r} is not an http:// or https:// address")
    done: list[str] = []
    with one_add_at_a_time(home):
        try:
            return _add(client, study, people, home, out, login_url, done)
        except KeyboardInterrupt:
            raise Interrupted(
                f"{len(done)} of {len(people)} participants done; every account made or reset so far has its "
                f"password in {out}; run the same command again to finish"
            ) from None


def _add(
    client: rg.Argilla, study: Study, people: list[Person], home: Path, out: Path, login_url: str, done: list[str]
) -> Added:
    """Everything that can be checked is checked before the first account is created. Then, per person, the
    password is in the logins file (written whole) before the server hears of it, so an interruption leaves at
    worst a row for an account not made yet, which the rerun makes with that password. An account that has no
    password in the file (made by an older codigit, or listed in another --out file) gets a new one, and the
    caller says so; the reset is noted in the home first, so that one interrupted halfway is finished here."""
    import argilla as rg

    key = pseudonym_key(home)
    workspace = client.workspaces(study.workspace)
    if workspace is None:
        raise CodigitError(f"workspace {study.workspace!r} does not exist yet: run `codigit init` first")
    usernames = [pseudonym_for(p, key) for p in people]
    for person, username in zip(people, usernames, strict=True):
        if username in (study.workspace, study.organiser_workspace):
            raise CodigitError(f"row {person.row}: pseudonym {username!r} is the name of a study workspace")
    if len(set(usernames)) != len(usernames):
        raise CodigitError("two roster rows map to the same pseudonym; give one of them an explicit pseudonym")
    accounts = {u.username: u for u in client.users}
    for person, username in zip(people, usernames, strict=True):
        user = accounts.get(username)
        if user is not None and str(getattr(user.role, "value", user.role)) != "annotator":
            role = getattr(user.role, "value", user.role)
            raise CodigitError(f"row {person.row}: username {username} belongs to an {role}, not a participant")
    logins = _read_logins(out)  # also checks now that `out` is a readable file, if it exists
    _write_logins(out, logins)  # ... and writable, before any account exists that it must record
    reset = []
    for username in sorted(_pending_resets(home, out) & accounts.keys()):  # resets an interruption cut short
        if _known_password(logins.get(username)):  # else the file never got the new one: reset again below
            _set_password(client, accounts[username], logins[username]["password"])
            reset.append(username)
    _note_resets(home, out, set())
    members = {u.username for u in workspace.users}
    texts, shown = study.guidelines(), every_language(study)
    chosen = participant_languages(home)  # the language each chose on the study home, for their forms

    progress = tqdm(
        zip(people, usernames, strict=True),
        total=len(people),
        desc="accounts",
        unit="person",
        disable=not sys.stderr.isatty(),
    )  # each new account costs the server a bcrypt hash
    for person, username in progress:
        user, row = accounts.get(username), logins.get(username, {})
        known = _known_password(row)
        password = row["password"] if known else _new_password()
        if user is not None and not known:
            _note_resets(home, out, {username})  # before the file or the server changes
        logins[username] = {**row, "name": person.name, "email": person.email, "username": username,
                            "password": password, "login_url": login_url}  # fmt: skip
        _write_logins(out, logins)
        if user is None:
            user = _create_account(client, rg.User(username=username, first_name=username, role="annotator",
                                                   password=password, client=client))  # fmt: skip
        elif not known:
            _set_password(client, user, password)
            _note_resets(home, out, set())
            reset.append(username)
        if username not in members:
            user.add_to_workspace(workspace)
        private_forms(client, study, user, texts, shown[choose(study, chosen.get(username))])
        done.append(username)
    return Added(out, reset)


def _create_account(client: rg.Argilla, user: rg.User) -> rg.User:
    """A create that an interrupted run sent just before it died may land after this run looked: then the account
    exists, made with the same password (the one in the file); set it again rather than fail."""
    from argilla._exceptions import ConflictError

    try:
        return user.create()
    except ConflictError:
        existing = client.users(user.username)
        _set_password(client, existing, user.password)
        return existing


def _known_password(row: dict[str, str] | None) -> bool:
    """Earlier codigits wrote a placeholder for an account found without a row: no password is known then."""
    password = (row or {}).get("password") or ""
    return bool(password) and not password.startswith("(")


def _new_password() -> str:
    """A generated password that no spreadsheet takes for a formula ('-' is in the url-safe alphabet)."""
    while (password := new_secret(12)).startswith(FORMULA_START):
        pass
    return password


def _set_password(client: rg.Argilla, user: rg.User, password: str) -> None:
    client.api.http_client.patch(f"/api/v1/users/{user.id}", json={"password": password}).raise_for_status()


def _pending_resets(home: Path, out: Path) -> set[str]:
    """Accounts whose new password is (or was about to be) in `out`, but perhaps not yet on the server."""
    return set(_resets_notes(home).get(str(out.resolve()), []))


def _note_resets(home: Path, out: Path, usernames: set[str]) -> None:
    notes = _resets_notes(home)
    if set(notes.get(str(out.resolve()), [])) == usernames:
        return
    notes[str(out.resolve())] = sorted(usernames)
    if notes := {k: v for k, v in notes.items() if v}:
        atomic_write(home / RESETS_FILE, json.dumps(notes, indent=1) + "\n", mode=0o600)
    else:
        (home / RESETS_FILE).unlink(missing_ok=True)


def _resets_notes(home: Path) -> dict[str, list[str]]:
    try:
        notes = json.loads((home / RESETS_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise CodigitError(f"{home / RESETS_FILE}: unreadable ({e}); move it away and rerun") from None
    if not isinstance(notes, dict):
        raise CodigitError(f"{home / RESETS_FILE}: not codigit's notes of password resets; move it away and rerun")
    return notes


def _read_logins(path: Path) -> dict[str, dict[str, str]]:
    """Rows of earlier runs by username (their passwords cannot be read back from the server)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return {r["username"]: r for r in csv.DictReader(f) if r.get("username")}
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise CodigitError(f"{path}: cannot read the logins file ({e}); move it away or pass --out") from None


def _write_logins(path: Path, logins: dict[str, dict[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, LOGINS_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    # names and emails come from the roster; a password must stay as it is (and new ones never start so)
    writer.writerows({**row, "name": text_cell(row.get("name") or ""), "email": text_cell(row.get("email") or "")}
                     for row in logins.values())  # fmt: skip
    try:
        atomic_write(path, buffer.getvalue(), mode=0o600)
    except OSError as e:
        raise CodigitError(f"{path}: cannot write the logins file ({e.strerror or e})") from None


def text_cell(value: str) -> str:
    """A spreadsheet runs a cell that starts like a formula (CSV injection: `=HYPERLINK(...)` in a roster name);
    a leading apostrophe makes it text there (OWASP's advice). Idempotent: a neutralised cell stays as it is."""
    return "'" + value if value.startswith(FORMULA_START) else value


def withdraw(client: rg.Argilla, study: Study, pseudonym: str, reason: str = "") -> tuple[str, bool, int]:
    """Append a withdrawal to the ledger in the organiser workspace, take the person's stories out of every
    review round and their reviews off other people's stories; returns (time, newly recorded, review copies
    removed). The study home's "Leave the study" runs this same function.

    Nothing of theirs is deleted from their own workspace: their answers stay on the server (the ledger is the audit
    trail), and every later `collect`, and so every later release, leaves them out. Only the anonymous copies of
    their stories in the shared review rounds go (with other participants' reviews of them, which no snapshot
    counts once the author has withdrawn), so nobody reads or reviews the text from then on. Their own reviews
    go too: no snapshot counts them, and while they stood, Argilla counted them towards each story's N reviews, so
    a story could leave everyone's queue short of the reviews that count. Without them it goes back to the queues.
    """
    user = client.users(pseudonym)
    if user is None or str(getattr(user.role, "value", user.role)) != "annotator":
        raise CodigitError(f"unknown pseudonym {pseudonym!r}: no participant account has that username")
    if len(reason) > 2000:
        raise CodigitError("--reason is longer than 2000 characters")
    workspace = client.workspaces(study.organiser_workspace)
    ledger = workspace and client.datasets(study.ledger_dataset, workspace=workspace)
    if not ledger:
        raise CodigitError(f"no ledger {study.organiser_workspace}/{study.ledger_dataset}: run `codigit init` first")
    at = None
    for record in ledger.records(with_responses=False):
        if record.fields.get("event") == "withdrawal" and record.fields.get("participant") == pseudonym:
            at = record.fields["at"]
    new = at is None
    if new:
        at = utc_now()
        fields = {"event": "withdrawal", "participant": pseudonym, "at": at, "reason": reason.strip() or "(none given)"}
        log_records(ledger, [{"id": f"withdrawal-{pseudonym}", **fields}])
    removed = _remove_from_review_rounds(client, study, pseudonym)
    if kept := kept_flags(review_datasets(client, study), user):  # before their reviews go: a flag outlives them
        log_records(ledger, kept)  # safety flags only, as anonymous counts later; stable ids, so a rerun adds nothing
    _remove_reviews_by(client, study, user)
    return at, new, removed


def review_datasets(client: rg.Argilla, study: Study) -> list[rg.Dataset]:
    shared = client.workspaces(study.workspace)
    prefix = study.review.dataset_prefix + "-"
    if shared is None:
        return []
    return [client.datasets(d.name, workspace=shared) for d in shared.datasets if d.name.startswith(prefix)]


def responses_in(client: rg.Argilla, dataset: rg.Dataset) -> list[dict]:
    """Every response in a dataset, with its id, record (and its external id) and user: the owner's view."""
    http, found, offset = client.api.http_client, [], 0
    while True:
        page = http.get(f"/api/v1/datasets/{dataset.id}/records", params={"include": "responses", "offset": offset,
                        "limit": 1000}).raise_for_status().json()  # fmt: skip
        for record in page["items"]:
            found += [{**r, "external_id": record["external_id"]} for r in record.get("responses") or []]
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            return found


def _remove_reviews_by(client: rg.Argilla, study: Study, user: rg.User) -> int:
    """Delete a withdrawn participant's responses in every review round; safe to rerun."""
    removed = 0
    for dataset in review_datasets(client, study):
        for response in responses_in(client, dataset):
            if str(response["user_id"]) == str(user.id):
                client.api.http_client.delete(f"/api/v1/responses/{response['id']}").raise_for_status()
                removed += 1
    return removed


def _remove_from_review_rounds(client: rg.Argilla, study: Study, pseudonym: str) -> int:
    """Delete the review copies of a person's stories; safe to rerun (a second withdrawal finishes the job).

    A review record's id is its story's id, which is the server id of the authoring record in the person's own
    workspace, so no author identity is needed in the review rounds to find them."""
    own = client.workspaces(pseudonym)
    stories = own and client.datasets(study.stories.dataset, workspace=own)
    if not stories:
        return 0
    theirs = {str(record._server_id) for record in stories.records(with_responses=False)}
    removed = 0
    for dataset in review_datasets(client, study):
        copies = [r for r in dataset.records(with_responses=False) if r.id in theirs]
        if copies:
            dataset.records.delete(copies)
            removed += len(copies)
    return removed
