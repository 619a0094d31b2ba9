"""Whole texts contributors give for continued pretraining: through their own form (`contributions:` in the
study), or from a file an organiser imports for them (`codigit contributions import`).

An imported file lives on the server, like everything participants give: in the organisers' workspace (which no
participant joins), in `imported-texts`, cut into parts of at most `PART_CHARS` characters so that a novel is
many ordinary records rather than one huge one. `collect` joins the parts, checks the whole text against the
sha256 recorded at import, and puts it in the snapshot beside the texts given through the form.
"""

from __future__ import annotations

import argparse
import hashlib
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codigit.cli_types import Parents
from codigit.errors import CodigitError

if TYPE_CHECKING:
    import argilla as rg

    from codigit.records import Contribution, Problem
    from codigit.study import Study

IMPORT_DATASET = "imported-texts"
PART_CHARS = 500_000
MAX_IMPORT_BYTES = 200 * 1024 * 1024  # a file this big is not one person's writing; ask for it in parts
IMPORT_FIELDS = ("contributor", "title", "licence", "licence_name", "attribution_name", "keep", "sha256", "part",
                 "parts", "imported_at", "text")  # fmt: skip


def read_contributed_file(path: Path) -> str:
    """A plain-text or markdown file as text; anything else is one line naming the file."""
    try:
        size = path.stat().st_size
        if size > MAX_IMPORT_BYTES:
            raise CodigitError(f"{path}: {size / 2**20:.0f} MiB is more than one contribution may be "
                               f"({MAX_IMPORT_BYTES // 2**20} MiB); import it in parts")  # fmt: skip
        data = path.read_bytes()
    except FileNotFoundError:
        raise CodigitError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CodigitError(f"{path}: a folder, not a file; name each text file") from None
    except OSError as e:
        raise CodigitError(f"{path}: cannot read it ({e.strerror or e})") from None
    if b"\0" in data:
        raise CodigitError(f"{path}: a binary file, not text; save it as plain text or markdown (UTF-8) first")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise CodigitError(f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8 first") from None
    if not text.strip():
        raise CodigitError(f"{path}: empty")
    return text


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def import_settings():
    from codigit.forms import settings
    from codigit.specs import FieldSpec, QuestionSpec

    note = QuestionSpec(name="note", type="text", required=True, title="Organiser note (not used)")
    return settings([FieldSpec(name=n) for n in IMPORT_FIELDS], [note], "Texts imported for contributors by "
                    "`codigit contributions import`; read by `collect`.", 1)  # fmt: skip


def import_text(client: rg.Argilla, study: Study, text: str, contributor: str, title: str, licence: str,
                licence_name: str, attribution_name: str, keep: bool) -> tuple[str, int, bool]:  # fmt: skip
    """Store one text for a contributor; returns (its sha256, the number of parts, newly imported)."""
    from codigit.forms import ensure_dataset, log_records, participant_names
    from codigit.records import utc_now
    from codigit.rules import OTHER_OPEN, TITLE_LIMIT

    spec = study.contributions
    if spec is None:
        raise CodigitError("the study asks for no contributed texts: add `contributions:` to the study file first")
    licences = next(q for q in spec.questions if q.name == "licence").options()
    if licence not in licences:
        raise CodigitError(f"--licence {licence!r} is none of the study's licences {licences}")
    if licence == OTHER_OPEN and not licence_name.strip():
        raise CodigitError(f"--licence {OTHER_OPEN} needs --licence-name (the open licence's own name)")
    if not title.strip() or len(title) > TITLE_LIMIT:
        raise CodigitError(f"--title must be 1 to {TITLE_LIMIT} characters")
    if contributor not in participant_names(client, study):
        raise CodigitError(f"{contributor!r} is no participant's pseudonym: add them with `codigit participants add`")
    workspace = client.workspaces(study.organiser_workspace)
    if workspace is None:
        raise CodigitError(f"workspace {study.organiser_workspace!r} does not exist yet: run `codigit init` first")
    dataset, _ = ensure_dataset(client, workspace, IMPORT_DATASET, import_settings(), [])
    sha = sha256_text(text)
    prefix = f"import-{contributor}-{sha[:16]}-"
    parts = [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)]
    have = {r.id for r in dataset.records(with_responses=False) if r.id.startswith(prefix)}
    wanted = {f"{prefix}{n:05d}" for n in range(len(parts))}
    if wanted <= have:
        return sha, len(parts), False
    common = {
        "contributor": contributor,
        "title": " ".join(title.split()),
        "licence": licence,
        "licence_name": licence_name.strip(),
        "attribution_name": attribution_name.strip(),
        "keep": "yes" if keep else "no",
        "sha256": sha,
        "parts": str(len(parts)),
        "imported_at": utc_now(),
    }
    records = [{"id": f"{prefix}{n:05d}", **common, "part": str(n), "text": part}
               for n, part in enumerate(parts) if f"{prefix}{n:05d}" not in have]  # fmt: skip
    for start in range(0, len(records), 20):  # a few MB per request at most
        log_records(dataset, records[start : start + 20])
    return sha, len(parts), True


def from_rows(form_rows: list[tuple], import_rows: list[dict], withdrawn: set[str], study: Study,
              ) -> tuple[list[Contribution], list[Problem], dict[str, int]]:  # fmt: skip
    """The snapshot's contributions from the form's submitted answers (record id, author, slot, answers, time) and
    the import records' fields; with the problems found and counts of what was left out, by why."""
    from codigit.records import Problem
    from codigit.rules import contribution_rule

    out, problems, excluded = [], [], defaultdict(int)
    spec = study.contributions
    for record_id, author, _slot, values, at in sorted(form_rows):
        if author in withdrawn:
            excluded["contributions_withdrawn"] += 1
            continue
        if spec is None:
            continue
        if broken := contribution_rule(values, spec):
            problems.append(Problem(participant=author, what="contribution", id=str(record_id),
                                    message=broken.organiser_message()))  # fmt: skip
            excluded["contributions_invalid"] += 1
            continue
        out.append(_contribution(str(record_id), author, values, "form", at))
    parts: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for fields in import_rows:
        parts[(fields.get("contributor", ""), fields.get("sha256", ""))].append(fields)
    for (author, sha), pieces in sorted(parts.items()):
        if author in withdrawn:
            excluded["contributions_withdrawn"] += 1
            continue
        pieces.sort(key=lambda f: int(f.get("part") or 0))
        text = "".join(f.get("text") or "" for f in pieces)
        if len(pieces) != int(pieces[0].get("parts") or 0) or sha256_text(text) != sha:
            message = "an imported text is incomplete on the server: import it again"
            problems.append(Problem(participant=author, what="contribution", id=f"import-{sha[:16]}", message=message))
            excluded["contributions_invalid"] += 1
            continue
        values = {**pieces[0], "text": text}
        out.append(_contribution(f"import-{sha[:16]}", author, values, "import", pieces[0].get("imported_at", "")))
    return out, problems, dict(excluded)


def _contribution(cid: str, author: str, values: dict[str, Any], source: str, at: str) -> Contribution:
    from codigit.records import Contribution
    from codigit.rules import clean_text

    return Contribution(
        contribution_id=cid, author=author, title=" ".join(clean_text(values.get("title")).split()),
        text=clean_text(values.get("text")), licence=str(values.get("licence")),
        licence_name=clean_text(values.get("licence_name")),
        attribution_name=" ".join(clean_text(values.get("attribution_name")).split()) or None,
        keep=values.get("keep") == "yes", source=source, submitted_at=at,
    )  # fmt: skip


def run_import(args: argparse.Namespace) -> None:
    from codigit.client import argilla_errors, study_and_client

    texts = [(path, read_contributed_file(path)) for path in args.files]  # every file checked before any import
    study, client = study_and_client(args.study, args.home)
    with argilla_errors():
        for path, text in texts:
            title = args.title or path.stem.replace("_", " ").replace("-", " ")
            sha, parts, new = import_text(
                client,
                study,
                text,
                args.contributor,
                title,
                args.licence,
                args.licence_name or "",
                args.attribution or "",
                args.keep == "yes",
            )
            state = "imported" if new else "already imported"
            print(f"{path}: {state} for {args.contributor} ({len(text):,} characters, {parts} part"
                  f"{'s' if parts > 1 else ''}, sha256 {sha[:12]}); `collect` takes it")  # fmt: skip


def add_parser(sub, parents: Parents) -> None:
    c = sub.add_parser("contributions", help="contributed texts (continued pretraining): import files")
    csub = c.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = csub.add_parser("import", parents=[parents.home, parents.study],
                        help="add plain-text or markdown files a contributor gave, attributed to them")  # fmt: skip
    p.add_argument("files", nargs="+", type=Path, help="UTF-8 text or markdown files")
    p.add_argument("--contributor", required=True, help="the contributor's pseudonym (their account's username)")
    p.add_argument("--title", help="the title (default: from the file name; one title for every file given)")
    p.add_argument("--licence", required=True, help="own_work, or one of the study's open licences")
    p.add_argument("--licence-name", help="the licence's own name, with --licence other_open")
    p.add_argument("--attribution", help="the name to credit them by in the contribution log (default: anonymous)")
    p.add_argument("--keep", required=True, choices=["yes", "no"],
                   help="they confirmed it may be kept for future events (no: `retention` deletes it)")  # fmt: skip
    p.set_defaults(func=run_import)
