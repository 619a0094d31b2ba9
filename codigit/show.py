"""`codigit story STORY_ID`: one story as the organisers' files hold it, for the personal-data decision and for
questions about a story: its text, consent, every review with its flags, flags kept from withdrawn reviewers,
what the personal-data scan finds, and any decision already recorded. Read-only."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from codigit.cli_types import Parents
from codigit.errors import CodigitError
from codigit.places import Recorded


def describe(story_id: str, snapshot_path: Path, releases: Path, roster: Path | None) -> list[str]:
    """The lines `codigit story` prints."""
    from codigit.records import counted_reviews, read_snapshot
    from codigit.release.manage import read_decisions
    from codigit.release.pii import names_pattern, roster_names, scan
    from codigit.rules import text_sha

    snapshot = read_snapshot(snapshot_path)
    story = next((s for s in snapshot.stories if s.story_id == story_id), None)
    if story is None:
        raise CodigitError(f"no story {story_id!r} in snapshot {snapshot.meta.snapshot_id} (`codigit collect` first?)")
    consent = next((c for c in snapshot.consent if c.participant == story.author), None)
    reviews = [r for r in snapshot.reviews if r.story_id == story_id]
    counted = {id(r) for r in counted_reviews(reviews)}

    def block(text: str) -> list[str]:
        return [textwrap.indent(line, "  ") for line in textwrap.wrap(text, 100, break_on_hyphens=False)] or ["  —"]

    changed = " · changed after a review round" if story.changed_after_review else ""
    lines = [
        f"story {story.story_id} (snapshot {snapshot.meta.snapshot_id})",
        f"author {story.author} · invitation {story.invitation} · submitted {story.submitted_at}{changed}",
    ]
    if consent is None:
        lines.append("consent: none given (the story cannot be released)")
    else:
        credit = f", credited as {consent.attribution_name!r}" if consent.attribution_name else ", not credited"
        lines.append(f"consent {consent.version}: training {'yes' if consent.training else 'no'}, public "
                     f"{'yes' if consent.public else 'no'}{credit}")  # fmt: skip
    lines += ["prompt:", *block(story.prompt), "story:", *block(story.story)]
    lines.append(f"reviews: {len(reviews)} ({len(counted)} counted: a reviewer's latest in each round, not the "
                 "author's own)" if reviews else "reviews: none yet")  # fmt: skip
    for r in sorted(reviews, key=lambda r: (r.round, r.submitted_at)):
        notes = [
            f"flags {', '.join(r.flags)}" if r.flags else "",
            f"themes {', '.join(r.themes)}" if r.themes else "",
            "" if id(r) in counted else "not counted",
            "" if r.current_text else "saw an earlier text",
        ]
        lines.append(" · ".join([f"  {r.round}", r.reviewer, f"rating {r.rating}", r.decision, *filter(None, notes)]))
        if r.comment:
            lines += [f"    {line}" for line in textwrap.wrap(repr(r.comment), 96)]
    if story.withdrawn_flags:
        kept = ", ".join(f"{flag} ×{n}" for flag, n in sorted(story.withdrawn_flags.items()))
        lines.append(f"flags kept from reviewers who withdrew: {kept}")
    names = names_pattern(roster_names(roster)) if roster else None
    found = scan(f"{story.prompt}\n{story.story}", names)
    scanned = "with" if roster else "without"
    lines.append(f"personal-data scan ({scanned} the roster's names): {'; '.join(found) if found else 'nothing found'}")
    decision = read_decisions(releases).get(story_id)  # no decisions file yet: none
    if decision:
        current = decision["text_sha"] == text_sha(story.prompt, story.story)
        state = "" if current else " (for an earlier text: the story changed since, so it no longer applies)"
        lines.append(f"decision: {decision['decision']} by {decision['by']} at {decision.get('at', '?')}{state}")
    return lines


def run(args: argparse.Namespace) -> None:
    from codigit.home import resolve_home

    roster = None if args.no_roster else args.roster or resolve_home(args.home) / "participant-logins.csv"
    if roster is not None and args.roster is None and not roster.exists():
        roster = None  # the default roster is optional here: the line says the scan ran without names
    print("\n".join(describe(args.story_id, args.snapshot, args.releases, roster)))


def add_parser(sub, parents: Parents) -> None:
    p = sub.add_parser("story", parents=[parents.home],
                       help="show one story by id: text, consent, reviews, flags, decision")  # fmt: skip
    p.add_argument("story_id", help="the story's id (as `release` and `agreement` print it)")
    p.add_argument("--snapshot", type=Path, default=Recorded("snapshots"), help="snapshot (default: the latest)")
    p.add_argument("--releases", type=Path, default=Recorded("releases"),
                   help="where personal-data decisions are recorded (default: %(default)s)")  # fmt: skip
    p.add_argument("--roster", type=Path, help="names for the personal-data scan (default: the home's logins, if any)")
    p.add_argument("--no-roster", action="store_true", help="scan without participants' names")
    p.set_defaults(func=run)
