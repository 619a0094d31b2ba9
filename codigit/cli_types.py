"""What every stage's parser shares: the parent parsers it may take and the argparse types for checked numbers.

Kept apart from `codigit.cli`, which imports every stage to register it: a stage importing these from there would
be an import cycle.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NamedTuple


class Parents(NamedTuple):
    """Options several subcommands take, each defined once (argparse `parents=`)."""

    home: argparse.ArgumentParser  # --home
    study: argparse.ArgumentParser  # --study
    database: argparse.ArgumentParser  # --database-url of an external Argilla


def port(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a TCP port (1-65535)")
    return int(value)


def redis_url(value: str) -> str:
    if not value.startswith(("redis://", "rediss://", "unix://")):  # what redis-py accepts; else a traceback later
        raise argparse.ArgumentTypeError(f"{value!r} is not a Redis URL (redis://HOST:PORT, rediss://… or unix://…)")
    return value


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number no smaller than `minimum` (e.g. --n-boot 0 would give no interval)."""

    def whole(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {number}")
        return number

    return whole
