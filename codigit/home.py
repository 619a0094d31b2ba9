"""Where codigit keeps its state on this machine, and how secrets are written there."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import shutil
import stat as stat_module
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from codigit.errors import CodigitError

_LOGGER = logging.getLogger("codigit")
CREDENTIALS_FILE = "credentials.json"
SERVER_FILE = "server.json"


def resolve_home(home: str | os.PathLike | None = None) -> Path:
    """`--home`, else `$CODIGIT_HOME`, else a per-user data directory (XDG on Linux)."""
    if home:
        return Path(home).expanduser().resolve()
    if os.environ.get("CODIGIT_HOME"):
        return Path(os.environ["CODIGIT_HOME"]).expanduser().resolve()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return (Path(base) / "codigit").resolve()


def ensure_writable_home(home: Path) -> Path:
    """Create the home, or check an existing one is writable, and make it private (see `make_private`)."""
    try:
        home.mkdir(parents=True, mode=0o700, exist_ok=True)  # exist_ok: another command may create it meanwhile
        make_private(home)
        # a name of its own: two commands checking the same home at once must not remove each other's probe
        with tempfile.NamedTemporaryFile(dir=home, prefix=".write-probe-"):
            pass
    except OSError as e:
        raise CodigitError(f"home directory {home} is not writable: {e.strerror or e}") from None
    return home


def make_private(home: Path) -> None:
    """The home holds the owner's API key (in credentials.json and in the database), participants' passwords and
    writing: it is made 0700 and every file directly in it 0600 (or stricter), whatever modes they had before, e.g.
    a home created by hand with 0755. A home of another user is refused: chmod would fail there, and its owner
    could read everything anyway."""
    stat = home.stat()
    if stat.st_uid != os.getuid():
        raise CodigitError(f"home directory {home} belongs to another user (uid {stat.st_uid}); use a home of your own")
    if stat.st_mode & 0o077:
        os.chmod(home, 0o700)
        _LOGGER.info("%s can be read by other users of this machine (mode %o): made it 700", home, stat.st_mode & 0o777)
    for path in home.iterdir():
        with contextlib.suppress(FileNotFoundError):  # a temp file another command just renamed
            mode = path.lstat().st_mode
            if stat_module.S_ISREG(mode) and mode & 0o077:
                os.chmod(path, mode & 0o700)


def private_modes(home: Path) -> dict[str, int]:
    """Mode bits of the home and of each file directly in it, by name ("." for the home): what `make_private` set,
    read back for `codigit serve`'s start-up report."""
    modes = {".": home.stat().st_mode & 0o777}
    for path in home.iterdir():
        with contextlib.suppress(FileNotFoundError):
            mode = path.lstat().st_mode
            if stat_module.S_ISREG(mode):
                modes[path.name] = mode & 0o777
    return modes


def atomic_write(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    """Write to a temp file in the same directory, fsync, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """An exclusive lock for a read-check-rewrite of a file in `folder`, so that two organisers recording at the
    same moment do not lose a line. The lock is on the folder itself, so no lock file is left behind (a release
    folder must hold only the files its manifest lists)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def append_jsonl(path: Path, entry: dict, mode: int = 0o644) -> None:
    """Add one line by rewriting the file atomically: readers never see half a line. Call it under `locked`."""
    previous = path.read_text(encoding="utf-8") if path.exists() else ""
    atomic_write(path, previous + json.dumps(entry, ensure_ascii=False) + "\n", mode=mode)


@contextlib.contextmanager
def no_new_empty_folders(final: Path) -> Iterator[None]:
    """Around a write of `final`: if `final` does not exist afterwards (the write failed), the parent folders
    missing at the start, which the write may have made, are removed again (when empty)."""
    missing = [p for p in (final.parent, *final.parent.parents) if not p.exists()]  # innermost first
    try:
        yield
    finally:
        if not final.exists():
            for folder in missing:
                with contextlib.suppress(OSError):
                    folder.rmdir()


@contextlib.contextmanager
def atomic_dir(final: Path, mode: int = 0o755) -> Iterator[Path]:
    """A folder that appears whole or not at all: yields a temp folder beside `final`; on success its files are
    fsynced and it is renamed to `final`; on any failure it is removed, with any folders made for it. OSError
    becomes a CodigitError."""
    final = Path(final)
    tmp = final.parent / f".tmp-{final.name}-{secrets.token_hex(4)}"
    with no_new_empty_folders(final):
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp.mkdir(mode=mode)
            yield tmp
            for path in tmp.rglob("*"):
                if path.is_file():
                    with open(path, "rb") as f:
                        os.fsync(f.fileno())
            os.rename(tmp, final)
        except OSError as e:
            raise CodigitError(f"{final}: could not be written ({e.strerror or e}); nothing was kept") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def new_secret(nbytes: int = 24) -> str:
    return secrets.token_urlsafe(nbytes)


def read_credentials(home: Path) -> dict[str, Any]:
    path = home / CREDENTIALS_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CodigitError(
            f"no credentials in {home}: start the embedded server with `codigit serve --home {home}` first, "
            "or set ARGILLA_API_URL and ARGILLA_API_KEY for an external Argilla"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CodigitError(f"{path} is not valid JSON: {e}") from None


def write_credentials(home: Path, creds: dict[str, Any]) -> Path:
    path = home / CREDENTIALS_FILE
    atomic_write(path, json.dumps(creds, indent=2) + "\n", mode=0o600)
    return path


def record_server_url(home: Path, url: str) -> None:
    """`codigit serve` notes where it listens, so other commands find it the same way they find the home dir."""
    atomic_write(home / SERVER_FILE, json.dumps({"url": url}) + "\n", mode=0o600)
