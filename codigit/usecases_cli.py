"""`codigit usecases [decide ID approve|decline --by NAME --reason TEXT]`: the use-case register the board governs
(parser and handler; the register is `codigit.usecases`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from codigit.cli_types import Parents


def run(args: argparse.Namespace) -> None:
    from codigit.home import resolve_home
    from codigit.usecases import FILE, decide, register

    home = resolve_home(args.home)
    if args.action == "decide":
        from codigit.release.policy import load_policy

        by = load_policy(args.policy).board_member(args.by)
        use = decide(home, args.id, args.decision, by, args.reason)
        print(f"use case {use.id} ({use.title!r}): {use.state} by {by}; every member sees it on their study home")
        return
    uses = register(home)
    if not uses:
        print(f"no use has been proposed yet ({home / FILE})")
    for use, _ in uses:
        decided = f" by {use.decided_by} on {use.decided_at[:10]}: {use.reason}" if use.decided_by else ""
        print(f"{use.id}  {use.state}{decided}\n  {use.title}\n  who: {use.who}\n  for: {use.purpose}\n"
              f"  not for: {use.not_for}")  # fmt: skip


def add_parser(sub, parents: Parents) -> None:
    from codigit.places import Recorded

    p = sub.add_parser("usecases", parents=[parents.home], help="the use-case register the board governs")
    p.set_defaults(func=run, action="list")
    act = p.add_subparsers(dest="action", metavar="ACTION")
    d = act.add_parser("decide", parents=[parents.home], help="the board approves or declines a proposed use")
    d.add_argument("id", help="the use's id, as `codigit usecases` lists it")
    d.add_argument("decision", choices=["approve", "decline"])
    d.add_argument("--by", required=True, help="the board member deciding (one of the policy's `board`)")
    d.add_argument("--reason", required=True, help="why: members see it on their study home")
    d.add_argument("--policy", type=Path, default=Recorded("policy"), help="the policy whose board decides")
    d.set_defaults(func=run)
