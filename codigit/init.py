"""`codigit init`: the study's workspace, datasets and guidelines on the server, and where organisers' files go.

Its own module because `codigit.forms` (what it builds on the server) loads the study models, which `--help` must
not wait for; everything heavy is imported when the command runs.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from codigit.cli_types import Parents


def run(args: argparse.Namespace) -> None:
    from codigit.client import argilla_errors, study_and_client
    from codigit.forms import init_study, privacy_check
    from codigit.home import ensure_writable_home, resolve_home
    from codigit.participants import one_add_at_a_time
    from codigit.places import record
    from codigit.server.deployed import participant_languages, record_study

    study, client = study_and_client(args.study, args.home)
    home = ensure_writable_home(resolve_home(args.home))
    embedded = not os.environ.get("ARGILLA_API_URL")
    chosen = participant_languages(home) if embedded else {}  # on the study home
    with argilla_errors(), one_add_at_a_time(home):  # not while a `participants add` makes the same forms
        for line in init_study(client, study, chosen):
            print(line)
        for line in privacy_check(client, study):
            print(line)
    if embedded:
        record_study(home, args.study)  # the embedded server's rules and pages follow it
        print(f"the embedded server now enforces {args.study} at submit time and shows its study home at /study/")
    data = record(home, args.study, args.data)
    print(f"organisers' commands now use {Path(args.study).resolve()} and keep snapshots, releases, backups and "
          f"analyses under {data}, from any directory (each has its own option to say otherwise)")  # fmt: skip


def add_parser(sub, parents: Parents) -> None:
    p = sub.add_parser(
        "init",
        parents=[parents.home, parents.study],
        help="create the study (workspace, datasets, guidelines) on the server; safe to rerun",
        description="Targets the embedded server in --home, or an external Argilla when ARGILLA_API_URL and "
        "ARGILLA_API_KEY are set.",
    )
    p.add_argument("--data", type=Path, help="where organisers' commands keep snapshots, releases, backups and "
                   "analyses from now on (default: as recorded before, else ./data)")  # fmt: skip
    p.set_defaults(func=run)
