"""`codigit release …`: the subcommands' parsers and thin handlers (each imports its module when it runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from codigit.cli_types import Parents
from codigit.errors import CodigitError
from codigit.places import Recorded

RELEASE_ACTIONS = ("make", "verify", "diff", "decide", "approve", "publish", "affected")


def _release_make(args: argparse.Namespace) -> None:
    from codigit.home import resolve_home
    from codigit.records import counts_line
    from codigit.release.manage import make_release
    from codigit.release.policy import load_policy
    from codigit.study import load_study

    study = load_study(args.study)
    policy = load_policy(args.policy, study)  # checked against the study: a misspelt flag blocks nothing
    roster = None if args.no_roster else args.roster or resolve_home(args.home) / "participant-logins.csv"
    path, manifest, plan = make_release(args.version, args.snapshot, policy, study, args.out, roster)
    if plan.blocked:
        for story_id, findings in plan.blocked:
            print(f"codigit: personal data? story {story_id}: {'; '.join(findings)}", file=sys.stderr)
        raise CodigitError(
            f"{len(plan.blocked)} stories need an organiser's decision before release {args.version}: "
            "`codigit release decide STORY_ID keep|exclude --by NAME [--note TEXT]`"
        )
    counts = manifest.counts
    print(f"release {args.version} at {path}: {counts['train']} train, {counts['test']} test "
          f"({counts['public']} public), dataset hash {manifest.dataset_hash}")  # fmt: skip
    left = {k: n for k, n in manifest.excluded.items() if n}
    if left:
        print("left out: " + counts_line(left))


def _release_verify(args: argparse.Namespace) -> None:
    from codigit.release.manage import verify

    manifest = verify(args.path)
    print(f"{args.path}: release {manifest.version} verified, dataset hash {manifest.dataset_hash}")


def _release_diff(args: argparse.Namespace) -> None:
    from codigit.release.manage import diff

    def where(name: str) -> Path:  # a version under --out first, else a folder
        return args.out / name if (args.out / name).is_dir() else Path(name)

    result = diff(where(args.a), where(args.b))
    print(result["changelog"].split("\n", 2)[2].rstrip())
    if "pseudonyms_added" in result:  # a public view names no authors
        print(f"authors: {result['pseudonyms_added']} added, {result['pseudonyms_removed']} removed")


def _release_decide(args: argparse.Namespace) -> None:
    from codigit.release.manage import decide

    record = decide(args.out, args.snapshot, args.story_id, args.decision, args.by, args.note or "")
    print(f"story {record['story_id']}: {record['decision']} (by {record['by']}, {record['at']}); "
          f"recorded in {args.out / 'decisions.jsonl'}")  # fmt: skip


def _release_approve(args: argparse.Namespace) -> None:
    from codigit.release.manage import approve
    from codigit.release.policy import load_policy

    have, new, needed = approve(args.out / args.version, args.by, load_policy(args.policy))
    state = "approved" if new else "had already approved"
    print(f"{args.by.strip()} {state} release {args.version}: {len(have)} of {needed} approvals")


def _release_publish(args: argparse.Namespace) -> None:
    from codigit.release.manage import publish
    from codigit.release.policy import load_policy

    print(publish(args.out / args.version, args.push_to_hub, load_policy(args.policy), args.snapshots, args.dry_run_to))


def _release_affected(args: argparse.Namespace) -> None:
    from codigit.release.manage import affected

    hit, runs, unreadable = affected(args.pseudonym, args.out, args.runs, args.corpus)
    for problem in unreadable:
        print(f"codigit: warning: {problem}", file=sys.stderr)
    if not hit:
        print(f"no release under {args.out} contains text by {args.pseudonym}")
    for r in hit:
        print(f"release {r['version']} ({r['dataset_hash'][:12]}): {r['path']}")
    for r in runs:
        print(f"run {r['run']} trained on release {r['release']}: {r['path']}")


def add_parser(sub, parents: Parents) -> None:
    home, study = parents.home, parents.study
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", type=Path, default=Recorded("releases"), help="releases (default: %(default)s)")
    policy = argparse.ArgumentParser(add_help=False)
    policy.add_argument("--policy", type=Path, default=Recorded("policy"), help="release policy (%(default)s)")
    snapshot = argparse.ArgumentParser(add_help=False)
    snapshot.add_argument("--snapshot", type=Path, default=Recorded("snapshots"), help="snapshot (default: latest)")

    release = sub.add_parser("release", help="versioned dataset releases (`codigit release VERSION` makes one)")
    rsub = release.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = rsub.add_parser("make", parents=[home, study, common, policy, snapshot], help="make release VERSION")
    p.add_argument("version", help="semantic version, e.g. 0.1.0")
    p.add_argument("--roster", type=Path, help="names for the personal-data scan (default: the home's logins CSV)")
    p.add_argument("--no-roster", action="store_true", help="scan without participants' names (not recommended)")
    p.set_defaults(func=_release_make)
    p = rsub.add_parser("verify", help="recompute a release's hashes; fails on any change")
    p.add_argument("path", type=Path)
    p.set_defaults(func=_release_verify)
    p = rsub.add_parser("diff", parents=[common], help="what changed between two releases")
    p.add_argument("a", help="version or folder")
    p.add_argument("b", help="version or folder")
    p.set_defaults(func=_release_diff)
    p = rsub.add_parser("decide", parents=[common, snapshot], help="decide on a story the personal-data gate stopped")
    p.add_argument("story_id")
    p.add_argument("decision", choices=["keep", "exclude"])
    p.add_argument("--by", required=True, help="the organiser deciding")
    p.add_argument("--note", help="why (kept in decisions.jsonl and the manifest)")
    p.set_defaults(func=_release_decide)
    p = rsub.add_parser("approve", parents=[common, policy], help="a board member approves a release")
    p.add_argument("version")
    p.add_argument("--by", required=True)
    p.set_defaults(func=_release_approve)
    p = rsub.add_parser("publish", parents=[common, policy], help="push the public records to the Hugging Face Hub")
    p.add_argument("version")
    p.add_argument("--push-to-hub", required=True, metavar="REPO", help="e.g. my-org/codigit-stories")
    p.add_argument("--dry-run-to", type=Path, help="copy what would be uploaded to this (new) folder instead")
    p.add_argument("--snapshots", type=Path, default=Recorded("snapshots"), help="where withdrawals are seen")
    p.set_defaults(func=_release_publish)
    p = rsub.add_parser("affected", parents=[common], help="releases and runs that contain a participant's text")
    p.add_argument("pseudonym")
    p.add_argument("--runs", type=Path, default=Path("runs"), help="training runs folder (default: %(default)s)")
    p.add_argument("--corpus", type=Path, default=Recorded("corpus"), help="corpus releases (default: %(default)s)")
    p.set_defaults(func=_release_affected)
