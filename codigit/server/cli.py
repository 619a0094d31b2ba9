"""`codigit serve`: its parser and thin handler (the server's modules load only when it runs: uvicorn is slow)."""

from __future__ import annotations

import argparse
from pathlib import Path

from codigit.cli_types import Parents, port, redis_url


def run(args: argparse.Namespace) -> None:
    from codigit.home import resolve_home
    from codigit.server.serve import serve

    serve(resolve_home(args.home), args.host, args.port, args.database_url, args.redis_url, args.log_level,
          args.snapshots)  # fmt: skip


def add_parser(sub, parents: Parents) -> None:
    p = sub.add_parser("serve", parents=[parents.home], help="run the embedded Argilla server and UI")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to bind (default: loopback only; 0.0.0.0 or :: for every interface)")  # fmt: skip
    p.add_argument("--port", type=port, default=6900)
    p.add_argument("--database-url", help="default: SQLite in the home dir; or postgresql://…")
    p.add_argument("--redis-url", type=redis_url, help="use a real Redis and an rq worker for background jobs")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--snapshots", type=Path, help="withdrawals made in the browser are noted here for releases "
                   "(default: the snapshots folder `codigit init` records, else ./data/snapshots)")  # fmt: skip
    p.set_defaults(func=run)
