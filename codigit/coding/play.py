"""A coding round played by simulated researchers through the server, as `codigit demo` shows it: the same
functions `codigit coding open|agreement|reconcile` call, and coders acting through the annotation UI's endpoints
with their own keys (`codigit.simulate`)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from codigit.specs import load_yaml

if TYPE_CHECKING:
    from codigit.records import Snapshot
    from codigit.study import Study

ROUND = "1"


class DemoCoding(BaseModel):
    model_config = ConfigDict(extra="forbid")

    coders: dict[str, float] = Field(min_length=2)  # username -> attention (0-1)
    adjudicator: str
    cues: dict[str, list[str]]  # code -> cue words


def play_coding_round(url: str, home: Path, study: Study, snapshot: Snapshot, folder: Path, demo_file: Path,
                      seed: int) -> dict:  # fmt: skip
    """Open round 1, let the simulated coders code every story, measure agreement, send the disputed stories to
    the adjudicator, and reconcile; returns what the demo prints."""
    from codigit.client import connect
    from codigit.coding.codebook import load_codebook
    from codigit.coding.reconcile import ask_adjudicator, record_agreement, record_reconciliation
    from codigit.coding.rounds import (
        LOGINS_FILE,
        coder_accounts,
        consented_stories,
        open_round,
        read_codings,
        read_round,
    )
    from codigit.roster import read_logins
    from codigit.simulate import Participant, api_client, code_as_a_reader, sign_in

    demo = load_yaml(demo_file, DemoCoding, "the demo's coding round")
    codebook = load_codebook(study.root / "codebook.yaml")
    if unknown := set(demo.cues) - set(codebook.names):
        raise ValueError(f"{demo_file}: cues for codes the codebook lacks: {sorted(unknown)}")
    client, rng = connect(home), random.Random(seed)
    coder_accounts(client, study, home, [*demo.coders, demo.adjudicator])
    open_round(client, study, snapshot, ROUND, codebook, list(demo.coders), folder, home)
    logins = read_logins(home / LOGINS_FILE)

    def signed_in(name: str) -> Participant:
        return Participant(name, api_client(url, sign_in(url, name, logins[name]["password"])))

    for name, attention in demo.coders.items():
        coder = signed_in(name)
        for record in coder.queue(coder.dataset_id(f"coding-{ROUND}", study.research_workspace)):
            codes = code_as_a_reader(record["fields"]["story"], demo.cues, attention, rng)
            coder.submit(record["id"], {"codes": codes}).raise_for_status()
    info, stories = read_round(folder, ROUND), consented_stories(snapshot)
    codings = [c for c in read_codings(client, study, info) if c.story_id in stories]
    report = record_agreement(folder, info, codebook, codings, len(stories), 1000, seed)
    ask_adjudicator(client, study, info, codebook, codings, stories, demo.adjudicator, home)
    adjudicator = signed_in(demo.adjudicator)
    for record in adjudicator.queue(adjudicator.dataset_id(f"coding-{ROUND}-adjudication", study.research_workspace)):
        codes = code_as_a_reader(record["fields"]["story"], demo.cues, 1.0, rng)  # the careful one
        adjudicator.submit(record["id"], {"codes": codes}).raise_for_status()
    adjudicated = ask_adjudicator(client, study, info, codebook, codings, stories, demo.adjudicator, home)
    summary = record_reconciliation(folder, info, codings, adjudicated, demo.adjudicator)
    return {
        "rows": report["codes"],
        "disputed": len(report["disputed"]),
        "stories": summary["stories"],
        "how": summary["how"],
    }
