"""`codigit coding agreement` and `codigit coding reconcile`: how far independent coders agree, and one code set
per story.

Agreement is Krippendorff's alpha per code (binary: each coder chose the code for a story or did not), with a
bootstrap CI over stories, from `codigit.agreement`, the same code as for peer reviews. The reconciled set of a
story is, code by code, what more than half of its coders chose; a code chosen by exactly half is unresolved. With
an adjudicator, every story the coders did not agree on goes to them in `coding-ROUND-adjudication` (the coders'
answers and memos shown, as "Coder 1", "Coder 2"), and their answer is the story's set once given. Each story's
set says how it was reached; `reconciled.jsonl` and `reconciliation.json` are the record.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from codigit.coding.rounds import Coding, Reconciled, RoundInfo
from codigit.errors import CodigitError

if TYPE_CHECKING:
    import argilla as rg

    from codigit.coding.codebook import Codebook
    from codigit.study import Study


def by_story(codings: list[Coding]) -> dict[str, dict[str, Coding]]:
    out: dict[str, dict[str, Coding]] = defaultdict(dict)
    for c in codings:
        out[c.story_id][c.coder] = c
    return dict(out)


def disputed(codings: list[Coding]) -> list[dict]:
    """Stories whose coders chose different sets, most codes in dispute first."""
    rows = []
    for story, answers in by_story(codings).items():
        sets = [set(c.codes) for c in answers.values()]
        if len(sets) >= 2 and any(s != sets[0] for s in sets):
            split = sorted(set.union(*sets) - set.intersection(*sets))
            rows.append({"story_id": story, "codes_in_dispute": split,
                         "answers": {coder: c.codes for coder, c in sorted(answers.items())}})  # fmt: skip
    return sorted(rows, key=lambda r: (-len(r["codes_in_dispute"]), r["story_id"]))


def agreement_rows(codings: list[Coding], codebook: Codebook, n_boot: int, seed: int) -> list[dict]:
    """One row per code (and "none"), in the shape of `codigit agreement`'s rows."""
    from codigit.agreement import Rating, _num, multilabel_agreement
    from codigit.coding.codebook import NONE

    ratings = [Rating(c.story_id, c.coder, frozenset(c.codes)) for c in codings]
    results = multilabel_agreement(ratings, [*codebook.names, NONE], n_boot=n_boot, seed=seed, top_disputed=0)
    return [{"question": "codes", "label": code, "level": "binary", "alpha": _num(a.alpha), "ci_low": _num(a.ci_low),
             "ci_high": _num(a.ci_high), "n_items": a.n_items, "n_raters": a.n_raters, "n_values": a.n_values,
             "disputed": []} for code, a in results.items()]  # fmt: skip


def reconcile(codings: list[Coding], adjudicated: dict[str, Coding] | None = None) -> list[Reconciled]:
    """One set per coded story: unanimous, majority per code, or the adjudicator's answer where coders differed."""
    out = []
    for story, answers in sorted(by_story(codings).items()):
        n = len(answers)
        chosen: dict[str, int] = defaultdict(int)
        for c in answers.values():
            for code in c.codes:
                chosen[code] += 1
        majority = sorted(code for code, k in chosen.items() if 2 * k > n)
        ties = sorted(code for code, k in chosen.items() if 2 * k == n)
        unanimous = all(k == n for k in chosen.values())
        if n == 1:
            out.append(Reconciled(story_id=story, codes=majority, how="one_coder", coders=1))
        elif unanimous:
            out.append(Reconciled(story_id=story, codes=majority, how="unanimous", coders=n))
        elif adjudicated and story in adjudicated:
            a = adjudicated[story]
            out.append(Reconciled(story_id=story, codes=a.codes, how="adjudicator", coders=n, adjudicator=a.coder))
        else:
            out.append(Reconciled(story_id=story, codes=majority, how="unresolved" if ties else "majority",
                                  unresolved=ties, coders=n))  # fmt: skip
    return out


def adjudication_name(info: RoundInfo) -> str:
    return info.dataset.split("/", 1)[1] + "-adjudication"


def ask_adjudicator(client: rg.Argilla, study: Study, info: RoundInfo, codebook: Codebook, codings: list[Coding],
                    stories: dict, adjudicator: str, home: Path) -> dict[str, Coding]:  # fmt: skip
    """Put the disputed stories (consented ones only) before the adjudicator; returns their answers so far."""
    from codigit.coding.rounds import FIELDS, read_codings
    from codigit.forms import ensure_dataset, settings
    from codigit.server.deployed import set_round_coders
    from codigit.specs import FieldSpec

    names = {coder: f"Coder {k}" for k, coder in enumerate(info.coders, 1)}
    records = []
    for row in disputed(codings):
        story = stories[row["story_id"]]
        answers = "\n".join(
            f"- **{names.get(coder, coder)}**: {', '.join(c.codes)}" + (f". Memo: {c.memo}" if c.memo else "")
            for coder, c in sorted(by_story(codings)[row["story_id"]].items())
        )
        records.append({"id": row["story_id"], "prompt": story.prompt, "story": story.story, "answers": answers})
    fields = [*FIELDS, FieldSpec(name="answers", title="The coders' answers", use_markdown=True)]
    guidelines = (
        f"Adjudication of coding round {info.round}: the coders chose different codes for these stories. "
        "Choose the codes that apply; your answer is the story's reconciled set.\n\n" + codebook.guidelines()
    )
    workspace = client.workspaces(study.research_workspace)
    set_round_coders(home, adjudication_name(info), [adjudicator])  # the adjudicator's answer alone counts there
    dataset, _ = ensure_dataset(client, workspace, adjudication_name(info), settings(fields, codebook.questions(),
                                guidelines, 1), records)  # fmt: skip
    if gone := [r for r in dataset.records(with_responses=False) if r.id not in stories]:
        dataset.records.delete(gone)
    answers = read_codings(client, study, info, adjudication_name(info))
    return {c.story_id: c for c in answers if c.coder == adjudicator and c.story_id in stories}


def kept_codebook(folder: Path, info: RoundInfo) -> Codebook:
    from codigit.coding.codebook import Codebook, kept_path

    path = kept_path(Path(folder) / "codebooks", info.codebook.name, info.codebook.version)
    try:
        codebook = Codebook.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # ValidationError and UnicodeDecodeError too
        raise CodigitError(f"{path}: the codebook round {info.round} used is missing or unreadable ({e})") from None
    if codebook.sha256() != info.codebook.sha256:
        raise CodigitError(f"{path} is not the codebook round {info.round} was coded with (its hash differs)")
    return codebook


def _write_jsonl(path: Path, rows) -> None:
    from codigit.home import atomic_write

    atomic_write(path, "".join(r.model_dump_json() + "\n" for r in rows))


def record_agreement(folder: Path, info: RoundInfo, codebook: Codebook, codings: list[Coding], consented: int,
                     n_boot: int, seed: int) -> dict:  # fmt: skip
    """Alpha per code and the disputed stories, written to ROUND/agreement.json (with the codings read)."""
    import json

    from codigit.coding.rounds import round_dir
    from codigit.home import atomic_write

    report = {"round": info.round, "codebook": info.codebook.model_dump(), "coders": info.coders,
              "stories_coded": len({c.story_id for c in codings}), "consented_stories": consented, "n_boot": n_boot,
              "codes": agreement_rows(codings, codebook, n_boot, seed), "disputed": disputed(codings)}  # fmt: skip
    _write_jsonl(round_dir(folder, info.round) / "codings.jsonl", codings)
    atomic_write(round_dir(folder, info.round) / "agreement.json", json.dumps(report, indent=2) + "\n")
    return report


def record_reconciliation(folder: Path, info: RoundInfo, codings: list[Coding], adjudicated: dict[str, Coding] | None,
                          adjudicator: str | None) -> dict:  # fmt: skip
    """Reconcile and write ROUND/reconciled.jsonl and ROUND/reconciliation.json; returns the latter's content."""
    import json
    from collections import Counter

    from codigit.coding.rounds import round_dir
    from codigit.home import atomic_write
    from codigit.records import utc_now

    reconciled = reconcile(codings, adjudicated)
    summary = {"round": info.round, "codebook": info.codebook.model_dump(), "coders": info.coders,
               "adjudicator": adjudicator, "decided_at": utc_now(), "stories": len(reconciled),
               "how": dict(sorted(Counter(r.how for r in reconciled).items()))}  # fmt: skip
    _write_jsonl(round_dir(folder, info.round) / "codings.jsonl", codings)
    _write_jsonl(round_dir(folder, info.round) / "reconciled.jsonl", reconciled)
    atomic_write(round_dir(folder, info.round) / "reconciliation.json", json.dumps(summary, indent=2) + "\n")
    return summary
