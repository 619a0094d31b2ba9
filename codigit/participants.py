"""`codigit participants add`: annotator accounts with stable pseudonymous usernames, from a roster CSV.

Real names and emails stay on the organiser's machine: the server only ever sees the pseudonym (as username and
display name). A pseudonym is an HMAC of the person's email (or name) under a secret key kept in the home dir,
so rerunning with the same roster gives the same pseudonyms and nobody can recompute them from a guessed name.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from codigit.errors import CodigitError
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


def add_participants(
    client: rg.Argilla,
    study: Study,
    people: list[Person],
    home: Path,
    out: Path | None = None,
    login_url: str | None = None,
) -> Path:
    """Create missing accounts, each with a workspace of their own holding their forms, and add everyone to the
    shared review workspace; keep the logins CSV (0600) up to date.

    Everything that can be checked is checked before the first account is created. The logins file keeps the
    rows of earlier runs (passwords cannot be read back from the server) and is rewritten after each new
    account, so an interruption never leaves an account whose password nobody has.
    """
    import argilla as rg

    key = pseudonym_key(home)
    out = out or home / "participant-logins.csv"
    login_url = (login_url or client.api_url).rstrip("/")

    workspace = client.workspaces(study.workspace)
    if workspace is None:
        raise CodigitError(f"workspace {study.workspace!r} does not exist yet: run `codigit init` first")
    usernames = [pseudonym_for(p, key) for p in people]
    for person, username in zip(people, usernames, strict=True):
        if username in (study.workspace, study.organiser_workspace):
            raise CodigitError(f"row {person.row}: pseudonym {username!r} is the name of a study workspace")
    if len(set(usernames)) != len(usernames):
        raise CodigitError("two roster rows map to the same pseudonym; give one of them an explicit pseudonym")
    existing = {}
    for person, username in zip(people, usernames, strict=True):
        user = client.users(username)
        if user is not None and str(getattr(user.role, "value", user.role)) != "annotator":
            role = getattr(user.role, "value", user.role)
            raise CodigitError(f"row {person.row}: username {username} belongs to an {role}, not a participant")
        existing[username] = user
    logins = _read_logins(out)  # also checks now that `out` is a readable file, if it exists
    _write_logins(out, logins)  # ... and writable, before any account exists that it must record
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
        user = existing[username]
        row = logins.get(username, {"password": "(unchanged: set before)"})
        if user is None:
            row = {"password": new_secret(12)}
            user = rg.User(
                username=username, first_name=username, role="annotator", password=row["password"], client=client
            ).create()
        logins[username] = {
            **row,
            "name": person.name,
            "email": person.email,
            "username": username,
            "login_url": login_url,
        }
        _write_logins(out, logins)
        if username not in members:
            user.add_to_workspace(workspace)
        private_forms(client, study, user, texts, shown[choose(study, chosen.get(username))])
    return out


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
    writer.writerows(logins.values())
    try:
        atomic_write(path, buffer.getvalue(), mode=0o600)
    except OSError as e:
        raise CodigitError(f"{path}: cannot write the logins file ({e.strerror or e})") from None


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
