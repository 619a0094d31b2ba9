"""`codigit serve`: the real Argilla server and UI in one process, on SQLite, without Docker, ES or Redis."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import uvicorn

from codigit.errors import CodigitError
from codigit.home import CREDENTIALS_FILE, ensure_writable_home, record_server_url

_LOGGER = logging.getLogger("codigit.server")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_host(host: str) -> bool:
    """Refuse a --host that means every interface without saying so ("" to uvicorn, "0" to the resolver); True
    when it says so (0.0.0.0 or ::), which is allowed: the organiser asked for it."""
    if not host.strip():
        raise CodigitError(
            "--host is empty, which would listen on every interface; leave it out for 127.0.0.1 (this machine only), "
            "or write 0.0.0.0 or :: to mean every interface"
        )
    if host in ("0.0.0.0", "::"):
        return True
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    except (socket.gaierror, UnicodeError):
        return False  # check_port_free reports it
    if any(ipaddress.ip_address(a.split("%")[0]).is_unspecified for a in addresses):
        raise CodigitError(f"--host {host!r} means every interface; write 0.0.0.0 or :: if that is what you want")
    return False


def check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind((host, port))
        except OSError as e:
            raise CodigitError(f"cannot listen on {host}:{port}: {e.strerror}; choose another with --port") from None


def free_port() -> int:
    """A TCP port nothing listens on now (on 127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn(home: Path, port: int, log: Path, extra: tuple[str, ...] = (), wait: float = 180) -> subprocess.Popen:
    """`codigit serve` for `home` in a child process (output to `log`), returned once it answers on 127.0.0.1:port
    with the home's owner key. If it exits or does not answer within `wait` seconds: a CodigitError naming the
    log's last line (the child is killed)."""
    import httpx

    from codigit.home import read_credentials

    url = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "codigit.cli", "serve", "--home", str(home), "--port", str(port), *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + wait
    while proc.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, CodigitError, OSError, KeyError):
            headers = {"X-Argilla-Api-Key": read_credentials(home)["api_key"]}
            if httpx.get(f"{url}/api/v1/me", headers=headers, timeout=5).is_success:
                return proc
        time.sleep(0.3)
    last = (log.read_text(errors="replace").strip().splitlines() or ["(no output)"])[-1]
    if proc.poll() is None:
        proc.kill()
        raise CodigitError(f"the server did not answer on {url} within {wait:.0f} s ({last}; log: {log})")
    raise CodigitError(f"the server stopped: {last} (log: {log})")


# private: listed in codigit/upstream.py
class _Server(uvicorn.Server):
    """uvicorn's server, but a graceful shutdown on SIGINT/SIGTERM ends the process with status 0.

    uvicorn stops accepting, lets running requests finish and runs the app's shutdown, then re-raises the signal,
    so the process would be reported as killed. A finished shutdown is a clean exit.
    """

    @contextlib.contextmanager
    def capture_signals(self):
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve(
    home: Path,
    host: str,
    port: int,
    database_url: str | None,
    redis_url: str | None,
    log_level: str,
    snapshots: Path | None,
) -> None:
    """Start the embedded server and block until SIGINT/SIGTERM (the defaults are `codigit serve`'s options)."""
    every_interface = check_host(host)
    # Files this process creates (the database and the -wal/-shm files SQLite adds later, logs, exports) are the
    # owner's alone, whatever the shell's umask.
    os.umask(0o077)
    ensure_writable_home(home)
    check_port_free(host, port)
    if not is_loopback(host):
        _LOGGER.warning(
            "listening on %s, not loopback%s: reachable from other machines; anyone who can reach this one can "
            "reach the login page; use HTTPS in front of it and strong passwords",
            host,
            " (every interface)" if every_interface else "",
        )

    from codigit.server import app as server_app

    url = server_app.configure(home, database_url, redis_url)
    server_app.prepare_database(url)
    server_app.ensure_owner(home)
    # None: where `codigit init` records the data folder, looked up at each withdrawal (init may run after serve)
    application = server_app.create_app(home, snapshots and snapshots.resolve(), in_process_jobs=redis_url is None)

    worker = None
    if redis_url is not None:
        worker = subprocess.Popen([sys.executable, "-m", "codigit.server.worker"])
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else f"[{host}]" if ":" in host else host
    record_server_url(home, f"http://{shown}:{port}")
    for line in privacy_report(home, host, port, url, every_interface):
        print(f"codigit: privacy: {line}", flush=True)
    print(
        f"codigit: Argilla is at http://{shown}:{port}  (owner login and API key: {home / CREDENTIALS_FILE})",
        flush=True,
    )
    config = uvicorn.Config(application, host=host, port=port, log_level=log_level, access_log=False)
    try:
        _Server(config).run()
    finally:
        if worker is not None:
            worker.terminate()  # rq: a warm shutdown, the current job finishes first
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
        from argilla_server.database import sync_engine

        sync_engine.dispose()
        server_app.remove_ui_copy(application)
    print("codigit: server stopped", flush=True)


def privacy_report(home: Path, host: str, port: int, database_url: str, every_interface: bool) -> list[str]:
    """Which privacy guarantees hold for this start, each read back from the running setup (not restated)."""
    from argilla_server.api.routes import api_v1
    from sqlalchemy import make_url

    from codigit.home import private_modes
    from codigit.server import privacy
    from codigit.server.app import docs_pages, sqlite_path
    from codigit.server.search import text_ranking

    reach = "loopback only" if is_loopback(host) else "every interface" if every_interface else "not loopback"
    reach += "" if is_loopback(host) else ", reachable from other machines"
    lines = [f"listening on {host}:{port}: {reach}"]
    modes = private_modes(home)
    readable = sorted(name for name, mode in modes.items() if name != "." and mode & 0o077)
    lines.append(f"home {home}: mode {modes['.']:o}; files other users can read: {', '.join(readable) or 'none'}")
    database = sqlite_path(database_url)
    if database is not None:
        files = [p for p in (database, Path(f"{database}-wal"), Path(f"{database}-shm")) if p.exists()]
        lines.append("database files: " + ", ".join(f"{p.name} {p.stat().st_mode & 0o777:o}" for p in files))
    mask = os.umask(0o077)
    os.umask(mask)
    lines.append(f"new files: mode {0o666 & ~mask:o} (umask {mask:03o})")
    lines.append(f"text search: {text_ranking(make_url(database_url).get_backend_name())}")
    pages = docs_pages(api_v1)
    lines.append(f"API docs pages: {', '.join(pages) if pages else 'none (they load scripts from a CDN)'}")
    lines.append("annotators get only their own answers and progress from " + ", ".join(privacy.scoped_routes(api_v1)))
    return lines
