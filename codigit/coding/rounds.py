"""`codigit coding open ROUND`: consented stories, without their authors, in a researchers-only workspace, coded
independently by several researchers with the codebook's codes and a memo.

Coders are Argilla annotators who are members of the study's `research_workspace` only: they have no workspace of
their own and are in no study workspace, so nothing of a participant's (positionality included) is within reach,
and the embedded server shows each of them their own answers only, which keeps the coding independent. The
round's record is `<data>/coding/ROUND/round.json`; every command that reads a round takes a fresh snapshot and
keeps only the stories of participants who consented and did not withdraw.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from codigit.errors import CodigitError
from codigit.specs import NAME_PATTERN, FieldSpec

if TYPE_CHECKING:
    import argilla as rg

    from codigit.coding.codebook import Codebook
    from codigit.records import Snapshot
    from codigit.study import Study

LOGINS_FILE = "researcher-logins.csv"  # in the home, 0600, like the participants' logins
FIELDS = [FieldSpec(name="prompt", title="Prompt"), FieldSpec(name="story", title="Story")]


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CodebookUsed(_File):
    name: str
    version: str
    sha256: str


class RoundInfo(_File):
    round: str
    dataset: str  # workspace/name on the server
    codebook: CodebookUsed
    coders: list[str]
    opened_at: str


class Coding(_File):
    story_id: str
    coder: str
    codes: list[str]  # may hold codebook.NONE
    memo: str = ""
    submitted_at: str


How = Literal["unanimous", "majority", "adjudicator", "unresolved", "one_coder"]


class Reconciled(_File):
    story_id: str
    codes: list[str]  # the reconciled set (may be [codebook.NONE])
    how: How
    unresolved: list[str] = []  # codes chosen by exactly half the coders, with no adjudicator's answer
    coders: int  # how many coders coded the story
    adjudicator: str | None = None


def dataset_name(round_name: str) -> str:
    return f"coding-{round_name}"


def round_dir(folder: Path, round_name: str) -> Path:
    return Path(folder) / round_name


def check_round_name(round_name: str) -> str:
    if not re.match(NAME_PATTERN, round_name):
        raise CodigitError(f"round {round_name!r}: use lowercase letters, digits, '-' or '_' (e.g. 1, pilot)")
    return round_name


def read_round(folder: Path, round_name: str) -> RoundInfo:
    path = round_dir(folder, check_round_name(round_name)) / "round.json"
    try:
        return RoundInfo.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CodigitError(f"no coding round {round_name!r} in {folder}: open it with `codigit coding open`") from None
    except (OSError, ValueError) as e:
        raise CodigitError(f"{path}: not a coding round's record ({e})") from None


def read_lines(path: Path, model: type[_File], what: str) -> list:
    """A JSON Lines file of one record type that codigit wrote; damage is one line naming the file."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        return [model.model_validate_json(line) for line in lines if line.strip()]
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as e:  # pydantic's ValidationError and UnicodeDecodeError are ValueErrors
        raise CodigitError(f"{path}: not {what} ({type(e).__name__}); rerun the command that writes it") from None


def read_json(path: Path, what: str) -> dict:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as e:
        raise CodigitError(f"{path}: not {what} ({type(e).__name__}); rerun the command that writes it") from None
    if not isinstance(data, dict):
        raise CodigitError(f"{path}: not {what}; rerun the command that writes it")
    return data


def consented_stories(snapshot: Snapshot) -> dict:
    """story id -> Story, of participants with a valid consent (a snapshot has no withdrawn participant's)."""
    consented = {c.participant for c in snapshot.consent}
    return {s.story_id: s for s in snapshot.stories if s.author in consented}


def coder_accounts(client: rg.Argilla, study: Study, home: Path, coders: list[str]) -> list[str]:
    """Make missing researcher accounts (passwords in `<home>/researcher-logins.csv`, 0600) and put every coder in
    the research workspace; returns the accounts made. Checks everything before the first change."""
    import argilla as rg

    from codigit.forms import ensure_workspace, participant_names
    from codigit.roster import new_password, read_logins, write_logins

    taken = {study.workspace, study.organiser_workspace, study.research_workspace}
    people = participant_names(client, study)
    accounts = {u.username: u for u in client.users}
    for name in coders:
        if not re.match(NAME_PATTERN, name):
            raise CodigitError(f"coder {name!r}: use lowercase letters, digits, '-' or '_'")
        if name in taken or name in people:
            raise CodigitError(f"coder {name!r} is a participant or a study workspace: coders are researchers only")
        user = accounts.get(name)
        if user is not None and str(getattr(user.role, "value", user.role)) != "annotator":
            raise CodigitError(f"coder {name!r} is an organiser's account ({user.role}); coders need their own")
    workspace, _ = ensure_workspace(client, study.research_workspace)
    if intruders := sorted({u.username for u in workspace.users} & people):
        raise CodigitError(f"participant(s) {', '.join(intruders)} are members of {study.research_workspace}: remove "
                           "them; coding rounds are for researchers only")  # fmt: skip
    path = home / LOGINS_FILE
    logins, made = read_logins(path), []
    members = {u.username for u in workspace.users}
    for name in coders:
        user = accounts.get(name)
        if user is None:
            password = new_password()
            logins[name] = {"name": name, "email": "", "username": name, "password": password,
                            "login_url": client.api_url.rstrip("/")}  # fmt: skip
            write_logins(path, logins)  # before the server has the account: an interruption loses no password
            user = rg.User(username=name, first_name=name, role="annotator", password=password, client=client).create()
            made.append(name)
        if name not in members:
            user.add_to_workspace(workspace)
    return made


def check_round(folder: Path, round_name: str, codebook: Codebook, coders: list[str]) -> CodebookUsed:
    """Everything `open` can check before it changes anything (accounts included)."""
    from codigit.coding.codebook import kept_versions

    check_round_name(round_name)
    if len(set(coders)) < 2:
        raise CodigitError("a coding round needs at least two different coders (--coders a,b) for agreement")
    used = CodebookUsed(name=codebook.name, version=codebook.version, sha256=codebook.sha256())
    if (round_dir(folder, round_name) / "round.json").exists():
        before = read_round(folder, round_name)
        if before.codebook != used:
            raise CodigitError(f"round {round_name} is coded with codebook {before.codebook.name} version "
                               f"{before.codebook.version}; open a new round for another codebook")  # fmt: skip
        if sorted(before.coders) != sorted(set(coders)):
            raise CodigitError(f"round {round_name} has coders {', '.join(before.coders)}; coders cannot change "
                               "within a round: open a new round")  # fmt: skip
    kept_versions(Path(folder) / "codebooks", codebook.name)  # readable, before `keep` compares against them
    return used


def open_round(client: rg.Argilla, study: Study, snapshot: Snapshot, round_name: str, codebook: Codebook,
               coders: list[str], folder: Path, home: Path) -> dict:  # fmt: skip
    """Create or extend the round: new consented stories in, stories no longer consented out."""
    from codigit.coding.codebook import keep
    from codigit.forms import ensure_dataset, settings
    from codigit.home import atomic_write
    from codigit.records import utc_now
    from codigit.server.deployed import set_round_coders

    used = check_round(folder, round_name, codebook, coders)
    info_path = round_dir(folder, round_name) / "round.json"
    keep(codebook, Path(folder) / "codebooks")
    coders = sorted(set(coders))
    stories = consented_stories(snapshot)
    records = [{"id": s.story_id, "prompt": s.prompt, "story": s.story} for s in stories.values()]
    wanted = settings(FIELDS, codebook.questions(), codebook.guidelines(), len(coders))
    workspace = client.workspaces(study.research_workspace)
    set_round_coders(home, dataset_name(round_name), coders)  # before anyone can answer (embedded server)
    dataset, line = ensure_dataset(client, workspace, dataset_name(round_name), wanted, records)
    gone = [r for r in dataset.records(with_responses=False) if r.id not in stories]
    if gone:  # withdrawn, or their consent is no longer valid: out of the researchers' sight
        dataset.records.delete(gone)
    if not info_path.exists():
        info = RoundInfo(round=round_name, dataset=f"{study.research_workspace}/{dataset.name}",
                         codebook=used, coders=coders, opened_at=utc_now())  # fmt: skip
        atomic_write(info_path, info.model_dump_json(indent=2) + "\n")
    return {"line": line, "stories": len(records), "removed": len(gone)}


def read_codings(client: rg.Argilla, study: Study, info: RoundInfo, dataset: str | None = None) -> list[Coding]:
    """Every coder's submitted answer in the round (or in its adjudication dataset)."""
    from codigit.forms import responses_in
    from codigit.snapshot import _time

    workspace = client.workspaces(study.research_workspace)
    name = dataset or info.dataset.split("/", 1)[1]
    found = workspace and client.datasets(name, workspace=workspace)
    if not found:
        raise CodigitError(f"no dataset {study.research_workspace}/{name} on this server")
    usernames = {str(u.id): u.username for u in client.users}
    out = []
    for r in responses_in(client, found):
        if r["status"] != "submitted":
            continue
        values = {k: v.get("value") for k, v in (r.get("values") or {}).items()}
        out.append(Coding(story_id=r["external_id"], coder=usernames.get(str(r["user_id"]), str(r["user_id"])),
                          codes=sorted(values.get("codes") or []), memo=(values.get("memo") or "").strip(),
                          submitted_at=_time(r.get("updated_at") or r.get("inserted_at"))))  # fmt: skip
    return sorted(out, key=lambda c: (c.story_id, c.coder))


def forget_stories(folder: Path, story_ids: set[str]) -> list[str]:
    """After a withdrawal: take the person's stories out of every round's files on disk (codings, with their memos,
    and reconciled sets) and delete any export that held them (rebuilt by `coding export`); returns what was done.
    The copies on the server are removed by `participants.withdraw`."""
    from codigit.home import atomic_write

    done: list[str] = []
    if not story_ids or not Path(folder).is_dir():
        return done
    for info in sorted(Path(folder).glob("*/round.json")):
        here = info.parent
        held = False
        for name, model in (("codings.jsonl", Coding), ("reconciled.jsonl", Reconciled)):
            path = here / name
            if path.exists():
                rows = read_lines(path, model, name)
                kept = [row for row in rows if row.story_id not in story_ids]
                if len(kept) < len(rows):
                    atomic_write(path, "".join(row.model_dump_json() + "\n" for row in kept))
                    held = True
        if held:
            done.append(f"round {here.name}: their stories taken out of its codings and reconciled sets")
            if (here / "export").is_dir():
                import shutil

                shutil.rmtree(here / "export")
                done.append(f"round {here.name}: its export held their stories and was deleted; run `codigit coding "
                            f"export {here.name}` again")  # fmt: skip
    return done
