"""`codigit`: the registry of subcommands. Each stage owns its parser and a `run(args)` (a module's `add_parser`);
this module orders them, gives them the shared options, and turns a user's mistake into one line and an exit code.

Building the parser imports every stage module, so each keeps its heavy imports (torch, pandas, argilla, the
study's pydantic models) inside the functions that need them: `codigit --help` stays fast.
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from codigit import (
    __version__,
    agreement,
    backup,
    collect,
    compare,
    contributions,
    demo,
    generate,
    init,
    memorisation,
    model_export,
    participants,
    retention,
    review,
    show,
    usecases_cli,
)
from codigit.analysis import cli as analysis_cli
from codigit.cli_types import Parents
from codigit.coding import cli as coding_cli
from codigit.corpus import cli as corpus_cli
from codigit.errors import CodigitError, Interrupted
from codigit.places import Recorded, resolve_defaults
from codigit.release import cli as release_cli
from codigit.release.cli import RELEASE_ACTIONS
from codigit.server import cli as server_cli
from codigit.train import cli as train_cli

# in `codigit --help` order: the study's life from server to report, then the demo and the shipped models
STAGES: list[Callable[..., None]] = [
    server_cli.add_parser,  # serve
    init.add_parser,
    participants.add_parser,  # participants add|withdraw
    contributions.add_parser,  # contributions import
    collect.add_parser,
    review.add_parser,  # review open|close
    agreement.add_parser,
    coding_cli.add_parser,  # coding open|agreement|reconcile|export|codebook
    release_cli.add_parser,  # release make|verify|diff|decide|approve|publish|affected
    usecases_cli.add_parser,  # usecases [decide]
    corpus_cli.add_parser,  # corpus release|decide|verify
    retention.add_parser,
    show.add_parser,  # story
    train_cli.add_parser,  # train
    generate.add_parser,
    analysis_cli.add_parser,  # analyze
    memorisation.add_parser,
    model_export.add_parser,  # export
    analysis_cli.add_positionality_parser,
    compare.add_parser,  # compare open|results
    backup.add_parser,  # backup, restore
    demo.add_parser,
    train_cli.add_model_parser,  # model prepare
]


class OneLineParser(argparse.ArgumentParser):
    """argparse prints usage and the error on two lines; codigit says every user mistake in one."""

    def error(self, message: str):
        raise CodigitError(f"{message} (see `{self.prog} --help`)")


def shared_options() -> Parents:
    home = argparse.ArgumentParser(add_help=False)
    home.add_argument("--home", help="codigit home (default: $CODIGIT_HOME, then ~/.local/share/codigit)")
    study = argparse.ArgumentParser(add_help=False)
    study.add_argument("--study", type=Path, default=Recorded("study"), help="study configuration (%(default)s)")
    database = argparse.ArgumentParser(add_help=False)
    database.add_argument("--database-url", help="an external Argilla's database (default: the embedded one)")
    return Parents(home, study, database)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="codigit", description="Participatory instruction tuning with Argilla.")
    parser.add_argument("--version", action="version", version=f"codigit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parents = shared_options()
    for add_parser in STAGES:
        add_parser(sub, parents)
    return parser


# every file codigit writes goes to a temporary name first and is renamed when whole (codigit.home.atomic_write)
INTERRUPTED = "files already written are whole and kept; nothing half-written was left; run the same command again"
# the machine refusing a write (full disk, quota, read-only or forbidden place): the user's to fix, in one line
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["release"] and not set(argv[1:]) & {*RELEASE_ACTIONS, "-h", "--help"} and len(argv) > 1:
        argv.insert(1, "make")  # `codigit release 0.1.0` is `codigit release make 0.1.0`
    logging.basicConfig(level=logging.WARNING, format="codigit: %(levelname)s %(name)s: %(message)s")
    logging.getLogger("codigit").setLevel(logging.INFO)
    try:
        args = build_parser().parse_args(argv)
        resolve_defaults(args)
        args.func(args)
    except CodigitError as e:
        print(f"codigit: error: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted) as e:
        kept = str(e) if isinstance(e, Interrupted) else INTERRUPTED
        print(f"codigit: interrupted: {kept}", file=sys.stderr)
        # Ctrl-C can land inside a library's constructor (tqdm's progress bar, say): the half-built object then
        # raises as it is collected, once this returns. The user has been told what was kept; that is not news.
        sys.unraisablehook = lambda unraisable: None
        return 130
    except OSError as e:
        if e.errno not in ENVIRONMENT_ERRNOS:
            raise  # not the user's machine refusing: a bug, whose traceback is wanted
        print(f"codigit: error: {e.filename or 'a file'}: {e.strerror} (files codigit writes appear whole or not at "
              "all; run the command again once there is room or access)", file=sys.stderr)  # fmt: skip
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
