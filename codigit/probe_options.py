"""`codigit memorisation --texts`'s options, apart from the probe itself (`codigit.memorisation_texts`), so that
building the command line loads none of the probe's models or pydantic records."""

from __future__ import annotations

import argparse

from codigit.cli_types import at_least

WINDOWS, PREFIX_TOKENS, NEW_TOKENS = 8, 64, 48  # `--windows`, `--prefix-tokens`, `--new-tokens`
MIN_PREFIX = 16  # a text too short for a full prefix is probed once with all it has before its last N tokens


def add_options(p: argparse.ArgumentParser) -> None:
    """`codigit memorisation`'s options for `--texts` (a corpus run), beside its stories options."""
    g = p.add_argument_group("with --texts (a run on a corpus release)")
    g.add_argument("--windows", type=at_least(1), default=WINDOWS, help="windows per text (fewer in a short text)")
    g.add_argument("--prefix-tokens", type=at_least(1), default=PREFIX_TOKENS,
                   help="tokens of the text given before each window")  # fmt: skip
    g.add_argument("--new-tokens", type=at_least(1), default=NEW_TOKENS, help="tokens generated and compared")
    g.add_argument("--seed", type=int, default=0, help="seeds each window's sampled continuation")
