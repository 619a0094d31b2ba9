"""Several collectives in one study: the roster's `collective` column puts each participant in one, `participants
add` notes it in the organisers' ledger (which no participant can read), `collect` gives each story its author's
collective, and a release carries it as a column, any collective of fewer than the policy's k authors pooled as
"other" so that a small group is not singled out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argilla as rg

    from codigit.study import Study

EVENT = "collective"  # the ledger event; its `reason` field holds the collective's name (the ledger's fields are fixed)
OTHER = "other"


def record_collectives(client: rg.Argilla, study: Study, members: dict[str, str]) -> int:
    """Note pseudonym -> collective in the ledger; a record per person (a stable id), so a changed roster moves
    them and a rerun adds nothing. Returns how many were noted."""
    from codigit.forms import log_records
    from codigit.records import utc_now

    if not members:
        return 0
    workspace = client.workspaces(study.organiser_workspace)
    ledger = client.datasets(study.ledger_dataset, workspace=workspace)
    at = utc_now()
    log_records(ledger, [{"id": f"{EVENT}-{p}", "event": EVENT, "participant": p, "at": at, "reason": name}
                         for p, name in sorted(members.items())])  # fmt: skip
    return len(members)


def from_ledger(entries: list[dict]) -> dict[str, str]:
    """Pseudonym -> collective, from the ledger's fields (the latest entry per person counts)."""
    out = {}
    for e in entries:
        if e.get("event") == EVENT and e.get("participant") and e.get("reason"):
            out[e["participant"]] = e["reason"]
    return out


def pooled(authors_by_collective: dict[str | None, set[str]], k: int) -> dict[str | None, str | None]:
    """Collective -> the label a release shows: its own name with k or more authors, else "other"."""
    return {c: (c if c is None or len(a) >= k else OTHER) for c, a in authors_by_collective.items()}
