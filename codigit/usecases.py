"""The use-case register: members propose uses of the community's model (who would use it, what for, what not) on
their study home; the release board (the policy's `board`) approves or declines each with a reason; every member
sees the register, `codigit usecases` lists it, and `codigit export` writes it into the model card, refusing to
claim a use the board has not approved.

The register is one file in the server's home, `usecases.jsonl` (mode 0600: it links proposals to pseudonyms),
appended to under a lock by the server (proposals) and by `codigit usecases decide` (decisions); the latest
decision on a use counts, earlier ones stay on record. What anyone else sees never holds a pseudonym.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from codigit.errors import CodigitError

FILE = "usecases.jsonl"
FIELDS = ("title", "who", "purpose", "not_for")


class UseCasesSpec(BaseModel):
    """`use_cases:` of a study file: members may propose uses of the model on their study home."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_title_chars: int = Field(default=120, ge=1)
    max_text_chars: int = Field(default=1000, ge=1)  # each of who / what for / what not


class UseCase(BaseModel):
    """One use as everyone sees it: no pseudonym."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    title: str
    who: str
    purpose: str
    not_for: str
    proposed_at: str
    state: Literal["proposed", "approved", "declined"] = "proposed"
    reason: str = ""
    decided_by: str = ""
    decided_at: str = ""


def problem(values: dict, spec: UseCasesSpec) -> tuple[str, dict] | None:
    """The rule a proposal breaks, as (participant-texts key, its values), or None."""
    for name in FIELDS:
        text = values.get(name)
        if not isinstance(text, str) or not text.strip():
            return "rules.usecase_empty", {}
        limit = spec.max_title_chars if name == "title" else spec.max_text_chars
        if len(text.strip()) > limit:
            return "rules.usecase_too_long", {"limit": limit}
    return None


def _entries(home: Path) -> list[dict]:
    import json

    path = Path(home) / FILE
    if not path.exists():
        return []
    try:
        entries = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CodigitError(f"{path}: the use-case register is damaged ({type(e).__name__}); restore it from a "
                           "backup of the home") from None  # fmt: skip
    if not all(isinstance(e, dict) and {"event", "id"} <= set(e) for e in entries):
        raise CodigitError(f"{path}: the use-case register has an entry without event and id")
    return entries


def propose(home: Path, by: str, values: dict) -> str:
    """Record a proposal (checked with `problem` first); returns its id."""
    from codigit.home import append_jsonl, locked
    from codigit.records import utc_now

    at = utc_now()
    fields = {name: " ".join(values[name].split()) if name == "title" else values[name].strip() for name in FIELDS}
    uid = "u-" + hashlib.sha256(f"{by}\n{at}\n{fields}".encode()).hexdigest()[:10]
    with locked(Path(home)):
        append_jsonl(Path(home) / FILE, {"event": "proposed", "id": uid, "by": by, "at": at, **fields}, mode=0o600)
    return uid


def register(home: Path) -> list[tuple[UseCase, str]]:
    """Every use with its latest decision, oldest proposal first, each with its proposer's pseudonym."""
    uses: dict[str, tuple[UseCase, str]] = {}
    for e in _entries(home):
        if e["event"] == "proposed":
            uses[e["id"]] = (UseCase(id=e["id"], proposed_at=e["at"], **{k: e[k] for k in FIELDS}), e["by"])
        elif e["event"] == "decided" and e["id"] in uses:
            use, by = uses[e["id"]]
            state = "approved" if e["decision"] == "approve" else "declined"
            uses[e["id"]] = (use.model_copy(update={"state": state, "reason": e["reason"], "decided_by": e["by"],
                                                    "decided_at": e["at"]}), by)  # fmt: skip
    return list(uses.values())


def decide(home: Path, uid: str, decision: str, by: str, reason: str) -> UseCase:
    """The board's decision on a use (`by` already checked against the board); the use as it now stands."""
    from codigit.home import append_jsonl, locked
    from codigit.records import utc_now

    if not reason.strip():
        raise CodigitError("--reason is needed: members see why the board approved or declined their proposal")
    with locked(Path(home)):
        known = {use.id: use for use, _ in register(home)}
        if uid not in known:
            raise CodigitError(f"no use case {uid!r} in {Path(home) / FILE}; `codigit usecases` lists them")
        entry = {"event": "decided", "id": uid, "decision": decision, "by": by, "reason": reason.strip(),
                 "at": utc_now()}  # fmt: skip
        append_jsonl(Path(home) / FILE, entry, mode=0o600)
    return next(use for use, _ in register(home) if use.id == uid)


def claimed(home: Path, claims: list[str]) -> tuple[list[UseCase], list[UseCase]]:
    """(every decided use, the claimed ones) for a model card; a claim the board has not approved is an error."""
    uses = {use.id: use for use, _ in register(home)}
    for uid in claims:
        use = uses.get(uid)
        if use is None or use.state != "approved":
            why = (
                "is not in the register"
                if use is None
                else (f"was declined by the board ({use.reason})" if use.state == "declined" else "awaits the board")
            )
            raise CodigitError(f"use case {uid} {why}: a model card claims only uses the board approved")  # fmt: skip
    return [u for u in uses.values() if u.state != "proposed"], [uses[u] for u in claims]


def card_section(decided: list[UseCase], claims: list[UseCase]) -> str:
    """The model card's section on uses, from the register."""

    def cell(text: str) -> str:
        return " ".join(text.split()).replace("|", "\\|")

    lines = ["## Uses", ""]
    if claims:
        lines += ["This model is offered for these uses, which the community's board approved:", ""]
        lines += [f"- **{cell(u.title)}** ({u.id}): {cell(u.purpose)}. Who: {cell(u.who)}. "
                  f"Not for: {cell(u.not_for)}." for u in claims]  # fmt: skip
        lines.append("")
    approved = [u for u in decided if u.state == "approved"]
    declined = [u for u in decided if u.state == "declined"]
    lines += ["The community's use-case register (`codigit usecases`), as the board decided it:", ""]
    lines += ["| use | state | who | what for | not for | the board's reason |", "|---|---|---|---|---|---|"]
    lines += [f"| {cell(u.title)} ({u.id}) | {u.state} | {cell(u.who)} | {cell(u.purpose)} | {cell(u.not_for)} | "
              f"{cell(u.reason)} |" for u in approved + declined] or ["| (none decided yet) | | | | | |"]  # fmt: skip
    if declined:
        lines += ["", "Do not use this model for the declined uses: the community said no to them."]
    return "\n".join(lines) + "\n"
