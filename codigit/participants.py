"""`codigit participants add|withdraw`: annotator accounts with stable pseudonymous usernames, from a roster CSV
(read in `codigit.roster`), and a participant's withdrawal.

Real names and emails stay on the organiser's machine: the server only ever sees the pseudonym (as username and
display name). A pseudonym is an HMAC of the person's email (or name) under a secret key kept in the home dir,
so rerunning with the same roster gives the same pseudonyms and nobody can recompute them from a guessed name.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from codigit.cli_types import Parents
from codigit.errors import CodigitError, Interrupted
from codigit.places import Recorded
from codigit.roster import (
    Person,
    new_password,
    note_resets,
    pending_resets,
    pseudonym_for,
    pseudonym_key,
    read_logins,
    write_logins,
)

if TYPE_CHECKING:
    import argparse

    import argilla as rg

    from codigit.study import Study

LOCK_FILE = ".participants-add.lock"


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
    from tqdm import tqdm

    from codigit.forms import private_forms
    from codigit.languages import choose, every_language
    from codigit.server.deployed import participant_languages

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
    logins = read_logins(out)  # also checks now that `out` is a readable file, if it exists
    write_logins(out, logins)  # ... and writable, before any account exists that it must record
    reset = []
    for username in sorted(pending_resets(home, out) & accounts.keys()):  # resets an interruption cut short
        if _known_password(logins.get(username)):  # else the file never got the new one: reset again below
            _set_password(client, accounts[username], logins[username]["password"])
            reset.append(username)
    note_resets(home, out, set())
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
        password = row["password"] if known else new_password()
        if user is not None and not known:
            note_resets(home, out, {username})  # before the file or the server changes
        logins[username] = {**row, "name": person.name, "email": person.email, "username": username,
                            "password": password, "login_url": login_url}  # fmt: skip
        write_logins(out, logins)
        if user is None:
            user = _create_account(client, rg.User(username=username, first_name=username, role="annotator",
                                                   password=password, client=client))  # fmt: skip
        elif not known:
            _set_password(client, user, password)
            note_resets(home, out, set())
            reset.append(username)
        if username not in members:
            user.add_to_workspace(workspace)
        private_forms(client, study, user, texts, shown[choose(study, chosen.get(username))])
        done.append(username)
    from codigit.collectives import record_collectives

    record_collectives(client, study, {u: p.collective for p, u in zip(people, usernames, strict=True) if p.collective})
    return Added(out, reset)


def _create_account(client: rg.Argilla, user: rg.User) -> rg.User:
    """A create that an interrupted run sent just before it died may land after this run looked: then the account
    exists, made with the same password (the one in the file); set it again rather than fail."""
    # private: listed in codigit/upstream.py
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


def _set_password(client: rg.Argilla, user: rg.User, password: str) -> None:
    client.api.http_client.patch(f"/api/v1/users/{user.id}", json={"password": password}).raise_for_status()


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
    from codigit.forms import log_records
    from codigit.records import utc_now
    from codigit.snapshot import kept_flags

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
    """Every review round's dataset: the stories' and, when the study reviews them, the contributed texts'."""
    shared = client.workspaces(study.workspace)
    if shared is None:
        return []
    return [client.datasets(d.name, workspace=shared) for d in shared.datasets if study.review_round(d.name)]


def _remove_reviews_by(client: rg.Argilla, study: Study, user: rg.User) -> int:
    """Delete a withdrawn participant's responses in every review round; safe to rerun."""
    from codigit.forms import responses_in

    removed = 0
    for dataset in review_datasets(client, study):
        for response in responses_in(client, dataset):
            if str(response["user_id"]) == str(user.id):
                client.api.http_client.delete(f"/api/v1/responses/{response['id']}").raise_for_status()
                removed += 1
    return removed


def story_ids_of(client: rg.Argilla, study: Study, pseudonym: str, texts: bool = False) -> set[str]:
    """The ids of a person's stories (or, `texts`, of their contributed texts): such an id is the server id of its
    authoring record in their workspace."""
    own = client.workspaces(pseudonym)
    name = study.contributions.dataset if texts else study.stories.dataset
    stories = own and client.datasets(name, workspace=own)
    # private: listed in codigit/upstream.py
    return {str(record._server_id) for record in stories.records(with_responses=False)} if stories else set()


def _remove_from_review_rounds(client: rg.Argilla, study: Study, pseudonym: str) -> int:
    """Delete the review and coding copies of a person's stories; safe to rerun (a second withdrawal finishes the job).

    A review record's id is its story's id, which is the server id of the authoring record in the person's own
    workspace, so no author identity is needed in the review rounds to find them."""
    theirs = story_ids_of(client, study, pseudonym)
    if study.contributions is not None:  # the review copies of their texts too
        theirs |= story_ids_of(client, study, pseudonym, texts=True)
    if not theirs:
        return 0
    removed = 0
    research = client.workspaces(study.research_workspace)  # researchers' coding rounds hold copies too
    coding = [client.datasets(d.name, workspace=research) for d in research.datasets] if research else []
    for dataset in [*review_datasets(client, study), *coding]:
        copies = [r for r in dataset.records(with_responses=False) if r.id in theirs]
        if copies:
            dataset.records.delete(copies)
            removed += len(copies)
    return removed


def run_add(args: argparse.Namespace) -> None:
    from codigit.client import argilla_errors, connect
    from codigit.home import ensure_writable_home, resolve_home
    from codigit.roster import read_roster
    from codigit.study import load_study

    study = load_study(args.study)
    roster = read_roster(args.roster)
    client = connect(args.home)
    with argilla_errors():
        home = ensure_writable_home(resolve_home(args.home))
        out, reset = add_participants(client, study, roster, home, args.out, args.login_url)
    print(f"{len(roster)} participants in workspace {study.workspace!r}; credentials to hand out: {out} (mode 0600)")
    if reset:
        print(f"new passwords for {', '.join(reset)}: their accounts had none in {out} (any older password for them "
              "no longer works; hand out the new one)")  # fmt: skip


def run_withdraw(args: argparse.Namespace) -> None:
    from codigit.client import argilla_errors, study_and_client
    from codigit.coding.rounds import forget_stories
    from codigit.records import mirror_withdrawal

    study, client = study_and_client(args.study, args.home)
    with argilla_errors():
        at, new, removed = withdraw(client, study, args.pseudonym, args.reason or "")
        theirs = story_ids_of(client, study, args.pseudonym)
    mirror = mirror_withdrawal(args.snapshots, args.pseudonym, at)
    for line in forget_stories(args.coding, theirs):
        print(line)
    print(f"{args.pseudonym} {'withdrawn' if new else 'was already withdrawn'} at {at}; "
          f"{removed} cop{'y' if removed == 1 else 'ies'} of their stories removed from review and coding rounds; "
          f"no later collect or release includes their text or answers (noted in {mirror})")  # fmt: skip


def add_parser(sub, parents: Parents) -> None:
    participants = sub.add_parser("participants", help="manage participant accounts")
    psub = participants.add_subparsers(dest="action", required=True, metavar="ACTION")
    home_study = [parents.home, parents.study]
    p = psub.add_parser("add", parents=home_study, help="create accounts from a roster CSV; safe to rerun")
    p.add_argument("roster", type=Path, help="CSV with a `name` column (optional: email, pseudonym)")
    p.add_argument("--out", type=Path, default=None, help="credentials CSV (default: <home>/participant-logins.csv)")
    p.add_argument("--login-url", help="the address participants open (default: the server's URL as codigit sees it)")
    p.set_defaults(func=run_add)
    p = psub.add_parser(
        "withdraw", parents=home_study, help="record a withdrawal in the ledger; later snapshots leave them out"
    )
    p.add_argument("pseudonym")
    p.add_argument("--reason", help="kept in the ledger on the server (optional)")
    p.add_argument("--snapshots", type=Path, default=Recorded("snapshots"),
                   help="snapshots folder whose releases must honour it at once (default: %(default)s)")  # fmt: skip
    p.add_argument("--coding", type=Path, default=Recorded("coding"),
                   help="coding rounds whose files must forget their stories (default: %(default)s)")  # fmt: skip
    p.set_defaults(func=run_withdraw)
