"""`codigit`: one subcommand per stage, each a thin call into its module (imported only when it runs)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from codigit import __version__
from codigit.errors import CodigitError


def _serve(args: argparse.Namespace) -> None:
    from codigit.home import resolve_home
    from codigit.server.serve import serve

    serve(resolve_home(args.home), args.host, args.port, args.database_url, args.redis_url, args.log_level)


def _init(args: argparse.Namespace) -> None:
    from codigit.client import argilla_errors, connect
    from codigit.study import init_study, load_study

    study = load_study(args.study)
    client = connect(args.home)
    with argilla_errors():
        for line in init_study(client, study):
            print(line)


def _participants_add(args: argparse.Namespace) -> None:
    from codigit.client import argilla_errors, connect
    from codigit.home import ensure_writable_home, resolve_home
    from codigit.participants import add_participants, read_roster
    from codigit.study import load_study

    study = load_study(args.study)
    roster = read_roster(args.roster)
    client = connect(args.home)
    with argilla_errors():
        home = ensure_writable_home(resolve_home(args.home))
        out = add_participants(client, study, roster, home, args.out, args.login_url)
    print(f"{len(roster)} participants in workspace {study.workspace!r}; credentials to hand out: {out} (mode 0600)")


def _port(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a TCP port (1-65535)")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codigit", description="Participatory instruction tuning with Argilla.")
    parser.add_argument("--version", action="version", version=f"codigit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    home = argparse.ArgumentParser(add_help=False)
    home.add_argument("--home", help="codigit home (default: $CODIGIT_HOME, then ~/.local/share/codigit)")
    study = argparse.ArgumentParser(add_help=False)
    study.add_argument("--study", type=Path, default=Path("annotation/study.yaml"), help="study configuration")

    p = sub.add_parser("serve", parents=[home], help="run the embedded Argilla server and UI")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    p.add_argument("--port", type=_port, default=6900)
    p.add_argument("--database-url", help="default: SQLite in the home dir; or postgresql://…")
    p.add_argument("--redis-url", help="use a real Redis and an rq worker for background jobs")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=_serve)

    p = sub.add_parser(
        "init",
        parents=[home, study],
        help="create the study (workspace, datasets, guidelines) on the server; safe to rerun",
        description="Targets the embedded server in --home, or an external Argilla when ARGILLA_API_URL and "
        "ARGILLA_API_KEY are set.",
    )
    p.set_defaults(func=_init)

    participants = sub.add_parser("participants", help="manage participant accounts")
    psub = participants.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = psub.add_parser("add", parents=[home, study], help="create accounts from a roster CSV; safe to rerun")
    p.add_argument("roster", type=Path, help="CSV with a `name` column (optional: email, pseudonym)")
    p.add_argument("--out", type=Path, default=None, help="credentials CSV (default: <home>/participant-logins.csv)")
    p.add_argument("--login-url", help="the address participants open (default: the server's URL as codigit sees it)")
    p.set_defaults(func=_participants_add)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="codigit: %(levelname)s %(name)s: %(message)s")
    logging.getLogger("codigit").setLevel(logging.INFO)
    try:
        args.func(args)
    except CodigitError as e:
        print(f"codigit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
