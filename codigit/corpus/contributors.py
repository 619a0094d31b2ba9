"""Who is in each corpus release, for `codigit release affected`: an organisers-only record written beside the
releases by `corpus release`, never inside one (a corpus release and its log ship with the model, without
pseudonyms)."""

from __future__ import annotations

from pathlib import Path

from codigit.errors import CodigitError

CONTRIBUTORS = "contributors"


def contributors_of(root: Path) -> dict[str, tuple[str, set[str]]]:
    """Corpus release version -> (its dataset hash, the pseudonyms whose texts it holds), from the
    organisers-only records `corpus release` writes."""
    import json

    out = {}
    for path in sorted((Path(root) / CONTRIBUTORS).glob("*.json")):
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            out[path.stem] = (entry["dataset_hash"], set(entry["pseudonyms"]))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CodigitError(f"{path}: damaged ({type(e).__name__}); remake it with `corpus release`") from None
    return out
