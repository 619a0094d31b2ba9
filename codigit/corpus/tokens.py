"""Token counts for the corpus: how much each contributor gave, in the units a model trains on.

Counts are of the text alone, without the begin/end-of-text tokens a training run adds around each document.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from codigit.errors import CodigitError

DEFAULT = "llama3"


def _llama3() -> tuple[Callable[[str], int], str]:
    """Meta's Llama-3 ids from the `quicktok-v1` tables codigit already builds its tokenizer from
    (`codigit.train.llama3`): the same ids, offline, without building a transformers tokenizer first."""
    import importlib.metadata

    import quicktok

    enc = quicktok.get_encoding("llama3")
    name = f"llama3 (Llama-3.1 ids, quicktok-v1 {importlib.metadata.version('quicktok-v1')}, text tokens only)"
    return (lambda text: len(enc.encode_ordinary(text))), name  # ordinary: "<|eot_id|>" in a text is just text


def token_counter(tokenizer: Any = None) -> tuple[Callable[[str], int], str]:
    """(text -> number of tokens, the tokenizer's name for the manifest). `tokenizer` is None or "llama3" (the
    default), a folder holding a saved transformers tokenizer, a transformers tokenizer, or any callable
    text -> list of ids (named by its qualified name)."""
    if tokenizer is None or tokenizer == DEFAULT:
        return _llama3()
    if isinstance(tokenizer, str):
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(tokenizer, local_files_only=True)
        except (OSError, ValueError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise CodigitError(f"tokenizer {tokenizer!r}: not a saved tokenizer folder ({first})") from None
    if hasattr(tokenizer, "encode") and hasattr(tokenizer, "name_or_path"):  # a transformers tokenizer
        name = f"{type(tokenizer).__name__} {tokenizer.name_or_path or '(in memory)'} (text tokens only)"
        return (lambda text: len(tokenizer.encode(text, add_special_tokens=False))), name
    if callable(tokenizer):
        module = getattr(tokenizer, "__module__", None)  # None for a builtin method such as str.split
        qualname = getattr(tokenizer, "__qualname__", type(tokenizer).__name__)
        name = f"{module}.{qualname}" if module else qualname
        return (lambda text: len(tokenizer(text))), name
    raise CodigitError(f"tokenizer: {type(tokenizer).__name__} is neither a tokenizer nor a callable text -> ids")
