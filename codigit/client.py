"""One narrow seam to the Argilla server: the embedded one in the home dir, or an external one by URL + key."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from codigit.errors import CodigitError
from codigit.home import SERVER_FILE, read_credentials, resolve_home

if TYPE_CHECKING:
    import argilla as rg

    from codigit.study import Study


def server_location(home: str | Path | None = None, embedded: bool = False) -> tuple[str, str]:
    """(api_url, api_key): ARGILLA_API_URL/ARGILLA_API_KEY if both set (unless `embedded`), else the embedded
    server's."""
    url, key = (None, None) if embedded else (os.environ.get("ARGILLA_API_URL"), os.environ.get("ARGILLA_API_KEY"))
    if url and key:
        return url, key
    if url or key:
        raise CodigitError("set both ARGILLA_API_URL and ARGILLA_API_KEY for an external Argilla, or neither")
    home = resolve_home(home)
    creds = read_credentials(home)
    try:
        url = json.loads((home / SERVER_FILE).read_text())["url"]
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        raise CodigitError(
            f"no embedded server has run in {home}: start it with `codigit serve --home {home}`"
        ) from None
    return url, creds["api_key"]


def connect(home: str | Path | None = None, embedded: bool = False) -> rg.Argilla:
    """An argilla SDK client as the owner; a clear error if the server is not answering."""
    import argilla as rg
    import httpx

    # The SDK warns on every lookup that finds nothing ("Workspace ... not found"): codigit asks on purpose.
    warnings.filterwarnings("ignore", message=".* not found", module="argilla")
    logging.getLogger("argilla.sdk").setLevel(logging.ERROR)
    url, key = server_location(home, embedded)
    # private: listed in codigit/upstream.py
    try:
        client = rg.Argilla(api_url=url, api_key=key, timeout=60)
        client.me  # noqa: B018  the SDK connects lazily; fail here, not halfway through a command
    except rg._exceptions.ArgillaCredentialsError:
        raise CodigitError(f"Argilla at {url} refused the API key: check ARGILLA_API_KEY or the home dir") from None
    except (httpx.HTTPError, rg._exceptions.ArgillaError, ConnectionError) as e:
        raise CodigitError(f"cannot reach Argilla at {url} ({type(e).__name__}): is `codigit serve` running?") from None
    return client


def study_and_client(study: Path, home: str | Path | None) -> tuple[Study, rg.Argilla]:
    """The study file, then the server: a bad study is reported before any connection is tried."""
    from codigit.study import load_study

    return load_study(study), connect(home)


@contextlib.contextmanager
def argilla_errors() -> Iterator[None]:
    """A server that fails or goes away in the middle of a command is a one-line error, not a traceback."""
    import argilla as rg
    import httpx

    try:
        yield
    except (httpx.HTTPError, rg._exceptions.ArgillaError) as e:
        raise CodigitError(f"the Argilla server failed mid-command ({type(e).__name__}: {e}); rerun it") from None
