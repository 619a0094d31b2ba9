"""`codigit corpus release|decide|verify`: a versioned corpus of contributed texts, with its contribution log
(parsers and thin handlers; the corpus code loads only when one runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from codigit.cli_types import Parents, at_least
from codigit.corpus.contributors import CONTRIBUTORS
from codigit.errors import CodigitError
from codigit.places import Recorded

DECISIONS = "decisions.jsonl"  # in the corpus folder: an organiser's keep/exclude on texts the personal-data scan held


def read_decisions(root: Path) -> dict[str, str]:
    """Text key (or contribution id) -> the latest decision on it."""
    from codigit.release.manage import read_jsonl

    return {
        d["text"]: d["decision"] for d in read_jsonl(Path(root) / DECISIONS, "corpus decisions", ("text", "decision"))
    }


def run_release(args: argparse.Namespace) -> None:
    from codigit.corpus.prepare import CorpusSettings
    from codigit.corpus.release import plan_corpus, write_corpus_release
    from codigit.records import counts_line
    from codigit.release.pii import roster_names
    from codigit.retention import deleted_hashes
    from codigit.study import load_study

    study = load_study(args.study)
    texts = study.contributions.review if study.contributions else None
    min_reviews = args.min_reviews if args.min_reviews is not None else texts.reviews_per_text if texts else 0
    settings = CorpusSettings(languages=args.languages.split(","), min_words=args.min_words,
                              near_duplicate_threshold=args.near_duplicate, min_reviews=min_reviews)  # fmt: skip
    names = roster_names(args.roster) if args.roster else None
    plan = plan_corpus(args.snapshot, settings, read_decisions(args.out), names, deleted_hashes(args.data))
    if waiting := plan.preparation.awaiting_decision():
        for item in waiting:
            print(f"personal data? text {item.key} ({item.detail}): `codigit corpus decide {item.key} keep|exclude "
                  f"--by NAME`; left out until then")  # fmt: skip
    path = write_corpus_release(args.version, plan, settings, args.out, args.tokenizer)
    _record_contributors(Path(args.out), args.version, path, {p.contribution.author for p in plan.preparation.included})
    excluded = counts_line(plan.preparation.excluded()) or "nothing"
    print(f"corpus release {args.version}: {len(plan.preparation.included)} texts in {path} (left out: {excluded}); "
          f"its contribution log: {path / 'contribution_log.csv'}")  # fmt: skip


def _record_contributors(root: Path, version: str, path: Path, pseudonyms: set[str]) -> None:
    import json

    from codigit.corpus.release import read_corpus_manifest
    from codigit.home import atomic_write

    entry = {"dataset_hash": read_corpus_manifest(path).dataset_hash, "pseudonyms": sorted(pseudonyms)}
    atomic_write(root / CONTRIBUTORS / f"{version}.json", json.dumps(entry, indent=2) + "\n", mode=0o600)


def run_decide(args: argparse.Namespace) -> None:
    from codigit.home import append_jsonl, locked
    from codigit.records import utc_now

    if not args.by.strip():
        raise CodigitError("--by needs the name of the organiser deciding")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    with locked(Path(args.out)):
        append_jsonl(Path(args.out) / DECISIONS, {"text": args.text, "decision": args.decision, "by": args.by.strip(),
                                                  "note": args.note or "", "at": utc_now()})  # fmt: skip
    print(f"recorded: {args.decision} text {args.text} (by {args.by.strip()}); the next `corpus release` applies it")


def run_verify(args: argparse.Namespace) -> None:
    from codigit.corpus.release import verify_corpus
    from codigit.retention import deleted_hashes

    m = verify_corpus(args.path, deleted_hashes(args.data))
    print(f"{args.path}: corpus release {m['version']} verified (dataset hash {m['dataset_hash'][:16]}…, "
          f"{m['counts']['included']} texts, {m['counts']['tokens']:,} tokens)")  # fmt: skip


def add_parser(sub, parents: Parents) -> None:
    corpus = sub.add_parser("corpus", help="a versioned corpus of contributed texts, with its contribution log")
    csub = corpus.add_subparsers(dest="action", required=True, metavar="ACTION")
    out = argparse.ArgumentParser(add_help=False)
    out.add_argument("--out", type=Path, default=Recorded("corpus"), help="corpus releases (default: %(default)s)")
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("--data", type=Path, default=Recorded("data"),
                      help="data folder: its retention/deletions.jsonl (default: %(default)s)")  # fmt: skip

    p = csub.add_parser("release", parents=[out, data, parents.study],
                        help="preprocess a snapshot's contributed texts into a release")  # fmt: skip
    p.add_argument("version", help="semantic version, e.g. 0.1.0")
    p.add_argument("--snapshot", type=Path, default=Recorded("snapshots"), help="snapshot (default: the latest)")
    p.add_argument("--languages", default="en", help="languages a text may be in, comma-separated (default: en)")
    p.add_argument("--min-words", type=at_least(0), default=50, help="shorter texts are left out (default: 50)")
    p.add_argument("--near-duplicate", type=float, default=0.8,
                   help="word-shingle Jaccard from which a text is a near copy (default: 0.8)")  # fmt: skip
    p.add_argument("--min-reviews", type=at_least(0),
                   help="reviews a text given through the form needs (default: the study's contributions.review."
                        "reviews_per_text, or 0 when its texts are not reviewed)")  # fmt: skip
    p.add_argument("--roster", type=Path, help="roster CSV whose names the personal-data scan looks for")
    p.add_argument("--tokenizer", help="a tokenizer folder for the token counts (default: Llama-3's, offline)")
    p.set_defaults(func=run_release)

    p = csub.add_parser("decide", parents=[out], help="keep or exclude a text the personal-data scan held")
    p.add_argument("text", help="the text's key (from the release's output or contribution log)")
    p.add_argument("decision", choices=["keep", "exclude"])
    p.add_argument("--by", required=True, help="the organiser deciding")
    p.add_argument("--note", help="why (kept with the decision)")
    p.set_defaults(func=run_decide)

    p = csub.add_parser("verify", parents=[data], help="recompute every hash of a corpus release")
    p.add_argument("path", type=Path)
    p.set_defaults(func=run_verify)
