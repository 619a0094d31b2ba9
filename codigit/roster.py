"""The organiser's two CSV files about people: the roster codigit reads and the logins file it writes (0600), with
the home's notes of password resets not yet known to be on the server.

Both files stay on the organiser's machine; the server only ever sees the pseudonyms made here.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

from codigit.errors import CodigitError
from codigit.home import atomic_write, new_secret

ROSTER_COLUMNS = {"name", "email", "pseudonym", "collective"}
COLLECTIVE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")  # it becomes a token, <|collective:NAME|>
LOGINS_COLUMNS = ["name", "email", "username", "password", "login_url"]
PSEUDONYM = re.compile(r"^[a-z][a-z0-9-]{2,39}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
KEY_FILE = "pseudonym.key"
RESETS_FILE = "participants-resets.json"  # password resets begun but maybe not finished, by logins file
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as a formula (OWASP, CSV injection)


@dataclass(frozen=True)
class Person:
    row: int
    name: str
    email: str
    pseudonym: str | None  # chosen by the organiser, else derived
    collective: str | None = None  # the collective they write with, in a study of several (`codigit.collectives`)


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
        raise CodigitError(f"{path}: unknown column(s) {', '.join(unknown)}; allowed: name, email, pseudonym, "
                           "collective")  # fmt: skip
    reader.fieldnames = header
    people: list[Person] = []
    seen: dict[str, int] = {}
    for row_no, row in enumerate(reader, start=2):
        if None in row:
            raise CodigitError(f"{path}: row {row_no}: more values than columns")
        name = (row.get("name") or "").strip()
        email = (row.get("email") or "").strip().lower()
        pseudonym = (row.get("pseudonym") or "").strip() or None
        collective = (row.get("collective") or "").strip() or None
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
        if collective and not COLLECTIVE.match(collective):
            raise CodigitError(f"{path}: row {row_no}: collective {collective!r} must be 1-40 lowercase letters, "
                               "digits, '-' or '_', starting with a letter")  # fmt: skip
        identity = email or name.casefold()
        for key in (f"id:{identity}", f"ps:{pseudonym}" if pseudonym else None):
            if key and key in seen:
                raise CodigitError(f"{path}: row {row_no}: same person or pseudonym as row {seen[key]}")
            if key:
                seen[key] = row_no
        people.append(Person(row_no, name, email, pseudonym, collective))
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


def read_logins(path: Path) -> dict[str, dict[str, str]]:
    """Rows of earlier runs by username (their passwords cannot be read back from the server)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return {r["username"]: r for r in csv.DictReader(f) if r.get("username")}
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise CodigitError(f"{path}: cannot read the logins file ({e}); move it away or pass --out") from None


def write_logins(path: Path, logins: dict[str, dict[str, str]]) -> None:
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


def pending_resets(home: Path, out: Path) -> set[str]:
    """Accounts whose new password is (or was about to be) in `out`, but perhaps not yet on the server."""
    return set(_resets_notes(home).get(str(out.resolve()), []))


def note_resets(home: Path, out: Path, usernames: set[str]) -> None:
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


def new_password() -> str:
    """A generated password that no spreadsheet takes for a formula ('-' is in the url-safe alphabet)."""
    while (password := new_secret(12)).startswith(FORMULA_START):
        pass
    return password
