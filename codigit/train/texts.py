"""Continued pretraining: `codigit train` on a corpus release (`kind: corpus` in its manifest) of whole texts.

The run is the SFT run with three differences. The release is verified by `verify_corpus` (every hash, as a
stories release is verified, and the recipe's `release_hash`). The data is the `text` column as language
modelling: TRL appends the tokenizer's eos (the model family's end-of-document token, `prepare_text_tokenizer`)
to every text and, with no assistant or completion mask, every token is a label. And the recipe must pack with a
strategy that keeps every token (`bfd_split`, which continues a text longer than `max_length` in another row, or
`wrapped`): TRL's default `bfd` and unpacked training both cut each text at `max_length`.
"""

from __future__ import annotations

import json
from pathlib import Path

from codigit.errors import CodigitError
from codigit.train.formats import collective_token
from codigit.train.recipe import CodigitArgs, Recipe, require_pinned

KEEPS_EVERY_TOKEN = ("bfd_split", "wrapped")  # TRL's packing strategies that drop nothing past max_length


def release_kind(path: str | Path) -> str:
    """`corpus` or `stories`, as the release folder's manifest.json says. Only a hint for which loader to use:
    that loader reads the manifest again and verifies everything (and says what is wrong with a bad one)."""
    try:
        raw = json.loads((Path(path).expanduser() / "manifest.json").read_bytes())
    except (OSError, ValueError):
        return "stories"
    return "corpus" if isinstance(raw, dict) and raw.get("kind") == "corpus" else "stories"


def check_corpus_recipe(recipe: Recipe, where: str) -> None:
    """The recipe settings that cannot apply to plain text, each a one-line error naming its key."""
    args, sft, _ = recipe
    for key in ("assistant_only_loss", "completion_only_loss"):
        if getattr(sft, key):
            raise CodigitError(f"{where}: {key}: true does not apply to a corpus release (plain texts: no assistant "
                               "turns, no completions; every token is trained); remove it")  # fmt: skip
    if sft.dataset_text_field != "text":
        raise CodigitError(f"{where}: dataset_text_field {sft.dataset_text_field!r}: a corpus release's texts are "
                           "in its `text` column; remove the key")  # fmt: skip
    if args.release_split != "train":
        raise CodigitError(f"{where}: release_split {args.release_split!r}: a corpus release has one split, train")
    if args.eval_split:
        raise CodigitError(f"{where}: eval_split {args.eval_split!r}: a corpus release has one split, train, and "
                           "holds nothing out to evaluate on")  # fmt: skip
    if not sft.packing:
        raise CodigitError(f"{where}: packing: false would cut every text at max_length ({sft.max_length} tokens); "
                           "a corpus trains on whole texts: packing: true, packing_strategy: bfd_split")  # fmt: skip
    if sft.packing_strategy not in KEEPS_EVERY_TOKEN:
        raise CodigitError(f"{where}: packing_strategy {sft.packing_strategy} cuts every text at max_length "
                           f"({sft.max_length} tokens); a corpus trains on whole texts: use bfd_split")  # fmt: skip


def verified_corpus(args: CodigitArgs):
    """The recipe's corpus release (`CorpusManifest`, folder), after checking every hash in it and the recipe's
    pinned dataset hash."""
    from codigit.corpus.release import read_corpus_manifest, verify_corpus

    path = Path(args.release).expanduser()
    verify_corpus(path)
    manifest = read_corpus_manifest(path)
    require_pinned(args, path, manifest.dataset_hash)
    return manifest, path


def corpus_texts(args: CodigitArgs, path: Path):
    """A verified corpus release's texts as a `datasets.Dataset` with one column, `text`, as the run sees them."""
    from datasets import load_dataset

    from codigit.corpus.release import DATA_FILE

    data = load_dataset("parquet", data_files=str(path / DATA_FILE), split="train").select_columns(["text"])
    if args.max_records:
        data = data.select(range(min(args.max_records, len(data))))
    if args.collective:  # the collective's token opens every text, as it opens every conversation in SFT
        token = collective_token(args.collective)
        data = data.map(lambda row: {"text": token + row["text"]})
    return data
