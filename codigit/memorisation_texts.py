"""`codigit memorisation RUN --texts`: per contributed text of a corpus run, how much the trained model repeats it.

For each text of the run's corpus release, K windows at fixed positions spread over the text: the model is given
the P tokens before a window and generates N tokens, greedy and sampled (temperature 0.8, top-p 0.95, one seed per
window). A window is **verbatim** when the continuation equals the text's next N token ids: extraction with a
prefix as Carlini et al. (2023, "Quantifying Memorization Across Neural Language Models", ICLR) define it, who
prompt with a 50-500-token prefix and compare a 50-token suffix. It is **near-verbatim** (verbatim included) when
the token-level edit similarity is at least 0.75, after Ippolito et al. (2023, "Preventing Generation of Verbatim
Memorization in Language Models Gives a False Sense of Privacy", INLG), who count approximate copies (BLEU >= 0.75
there) because small edits - a changed word, case, spacing - evade a verbatim check yet hand back the text.

The edit similarity (1 - Levenshtein / N over token ids) is used rather than the longest common run: one changed
token in the middle of a 48-token window leaves a longest run of 24 (not near at 0.75 x 48 = 36) but a similarity
of 47/48, and it is such small changes that Ippolito et al. show make a copy look new.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from codigit.errors import CodigitError
from codigit.generate import BATCH_SIZE, sample_seed
from codigit.probe_options import MIN_PREFIX, NEW_TOKENS, PREFIX_TOKENS, WINDOWS

NEAR = 0.75
TEMPERATURE, TOP_P = 0.8, 0.95
FILE = "memorisation_texts.json"
PAGE = "memorisation_texts.html"  # the same numbers as a page (codigit.memorisation_page)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rates(_Model):
    """Shares of windows (0-1) repeated verbatim / near-verbatim (verbatim included), greedy and sampled."""

    greedy_verbatim: float
    greedy_near: float
    sampled_verbatim: float
    sampled_near: float


class TextMemorisation(_Model):
    id: str  # the text's key in the corpus release and its contribution log
    title: str
    tokens: int  # as probed (with the run's collective token, if it had one)
    windows: int  # 0: shorter than MIN_PREFIX + new_tokens, not probed
    prefix_tokens: int  # the prefix its windows got (shorter than the run's setting only for a short text)
    rates: Rates | None


class MemorisationTexts(_Model):
    """RUN/analysis/memorisation_texts.json: numbers, text keys and titles; never a text's content."""

    release_version: str
    release_hash: str
    weights: Literal["lora", "full"]  # base + the run's LoRA adapter, or the run's own full model
    windows: int
    prefix_tokens: int
    new_tokens: int
    near_threshold: float
    temperature: float
    top_p: float
    seed: int
    texts: list[TextMemorisation]
    mean: Rates | None  # over the probed texts, each text weighing the same
    worst: list[str]  # ids of up to 5 texts with the highest near-verbatim rate above 0


def window_starts(length: int, prefix: int, new: int, k: int) -> list[int]:
    """Where each window's continuation starts: up to `k` non-overlapping continuations after a full prefix,
    evenly spread from the first possible to the last; one with a shorter prefix for a short text."""
    fits = (length - prefix) // new if length >= prefix + new else 0
    if fits == 0:
        return [length - new] if length - new >= MIN_PREFIX else []
    k = min(k, fits)
    if k == 1:
        return [prefix]
    return [prefix + i * (length - prefix - new) // (k - 1) for i in range(k)]


def edit_similarity(a: list[int], b: list[int]) -> float:
    """1 - Levenshtein distance / the longer length, over token ids (1.0 for two empty sequences)."""
    if not a and not b:
        return 1.0
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return 1 - previous[-1] / max(len(a), len(b))


def rates(greedy: list[tuple[list[int], list[int]]], sampled: list[tuple[list[int], list[int]]]) -> Rates:
    """(generated, true continuation) pairs of one text's windows under each decoding -> its rates."""

    def share(pairs, near: bool) -> float:
        hits = [edit_similarity(g, t) >= NEAR if near else g == t for g, t in pairs]
        return sum(hits) / len(hits)

    return Rates(greedy_verbatim=share(greedy, False), greedy_near=share(greedy, True),
                 sampled_verbatim=share(sampled, False), sampled_near=share(sampled, True))  # fmt: skip


def nearest(r: Rates) -> float:
    """The higher near-verbatim rate of the two decodings: how a text's exposure is ranked."""
    return max(r.greedy_near, r.sampled_near)


def run_weights(run: Path) -> tuple[Literal["lora", "full"], Path]:
    """The run's trained weights: its LoRA adapter (applied to the base model its provenance names), or a full
    model (`adapter/` of a run without LoRA holds one; `merged/` if only that is left)."""
    if (run / "adapter" / "adapter_config.json").is_file():
        return "lora", run / "adapter"
    for folder in (run / "adapter", run / "merged", run / "model"):
        if (folder / "config.json").is_file():
            return "full", folder
    raise CodigitError(f"{run}: no adapter/ or model weights (has the run finished?)")


def run_corpus(run: Path, provenance):
    """The corpus release a run trained on, re-verified, with the hash the run recorded: (folder, manifest)."""
    from codigit.corpus.release import read_corpus_manifest, verify_corpus

    used = provenance.release
    if used.kind != "corpus":
        raise CodigitError(f"{run}: trained on stories release {used.version}, not on a corpus release")
    path = Path(used.path).expanduser()
    try:
        verify_corpus(path)
    except CodigitError as e:
        raise CodigitError(f"{run}: its corpus release {used.version} no longer verifies ({e})") from None
    manifest = read_corpus_manifest(path)
    if manifest.dataset_hash != used.dataset_hash:
        raise CodigitError(f"{run}: {path} holds corpus release {manifest.version} with dataset hash "
                           f"{manifest.dataset_hash[:12]}…, not {used.dataset_hash[:12]}… as trained")  # fmt: skip
    return path, manifest


def continue_ids(model, tokenizer, prompts: list[list[int]], seeds: list[int] | None, new_tokens: int,
                 batch_size: int) -> list[list[int]]:  # fmt: skip
    """Generated token ids after each prompt (up to end of text), with `hf_generate`'s decoding and seeded
    sampling, on token ids in and out: it takes chats and returns text, and a probe must compare ids."""
    from codigit.decoding import decode

    out = decode(model, prompts, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                 max_new_tokens=new_tokens, batch_size=batch_size, seeds=seeds, temperature=TEMPERATURE,
                 top_p=TOP_P)  # fmt: skip
    return [d.tokens for d in out]


def memorisation_texts(run: Path, windows: int = WINDOWS, prefix_tokens: int = PREFIX_TOKENS,
                       new_tokens: int = NEW_TOKENS, seed: int = 0, batch_size: int = BATCH_SIZE,
                       ) -> MemorisationTexts:  # fmt: skip
    """Probe every text the run trained on; writes RUN/analysis/memorisation_texts.json and returns it."""
    import pyarrow.parquet as pq
    from transformers import AutoTokenizer

    from codigit import handoff
    from codigit.corpus.release import DATA_FILE
    from codigit.generate import at_least_one, load_model, load_tuned
    from codigit.train.formats import collective_token
    from codigit.train.models import resolve_model

    at_least_one(windows=windows, prefix_tokens=prefix_tokens, new_tokens=new_tokens, batch_size=batch_size)
    run = Path(run)
    provenance = handoff.read_provenance(run)
    path, manifest = run_corpus(run, provenance)
    weights, folder = run_weights(run)
    rows = pq.read_table(path / DATA_FILE, columns=["id", "title", "text"]).to_pylist()
    recipe = provenance.recipe.codigit
    if recipe.get("max_records"):  # the run trained on the first N texts only (`corpus_texts`)
        rows = rows[: recipe["max_records"]]
    head = collective_token(recipe["collective"]) if recipe.get("collective") else ""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if weights == "lora":
        model = load_tuned(resolve_model(provenance.recipe.model["model_name_or_path"]), folder, len(tokenizer))
    else:
        model = load_model(str(folder)).eval()

    probes = []  # (text index, prompt, true continuation, seed)
    encoded = [tokenizer(head + r["text"], add_special_tokens=False)["input_ids"] for r in rows]
    for n, (row, ids) in enumerate(zip(rows, encoded, strict=True)):
        for s in window_starts(len(ids), prefix_tokens, new_tokens, windows):
            probes.append((n, ids[max(0, s - prefix_tokens) : s], ids[s : s + new_tokens],
                           sample_seed(seed, f"{row['id']}/{s}", 0)))  # fmt: skip
    prompts = [p[1] for p in probes]
    greedy = continue_ids(model, tokenizer, prompts, None, new_tokens, batch_size)
    sampled = continue_ids(model, tokenizer, prompts, [p[3] for p in probes], new_tokens, batch_size)

    texts = []
    for n, (row, ids) in enumerate(zip(rows, encoded, strict=True)):
        mine = [k for k, p in enumerate(probes) if p[0] == n]
        pairs = [[(out[k], probes[k][2]) for k in mine] for out in (greedy, sampled)]
        texts.append(TextMemorisation(id=row["id"], title=row["title"], tokens=len(ids), windows=len(mine),
                                      prefix_tokens=min((len(probes[k][1]) for k in mine), default=0),
                                      rates=rates(*pairs) if mine else None))  # fmt: skip
    probed = [t.rates for t in texts if t.rates is not None]
    means = {f: sum(getattr(r, f) for r in probed) / len(probed) for f in Rates.model_fields} if probed else None
    near = sorted((t for t in texts if t.rates and nearest(t.rates) > 0),
                  key=lambda t: (-nearest(t.rates), -t.rates.greedy_verbatim, t.id))  # fmt: skip
    result = MemorisationTexts(
        release_version=manifest.version, release_hash=manifest.dataset_hash, weights=weights, windows=windows,
        prefix_tokens=prefix_tokens, new_tokens=new_tokens, near_threshold=NEAR, temperature=TEMPERATURE,
        top_p=TOP_P, seed=seed, texts=texts, mean=means and Rates(**means), worst=[t.id for t in near[:5]],
    )  # fmt: skip
    handoff.write(run / "analysis" / FILE, result)
    from codigit.home import atomic_write
    from codigit.memorisation_page import render

    atomic_write(run / "analysis" / PAGE, render(result))  # the same numbers as a page to read
    return result


def read_memorisation_texts(run: Path) -> MemorisationTexts | None:
    """The run's per-text probe, or None when it has not been run."""
    from codigit.handoff import read

    path = Path(run) / "analysis" / FILE
    if not path.is_file():
        return None
    return read(MemorisationTexts, path, f"{path}: unreadable ({{why}}); run `codigit memorisation RUN --texts` again")


def run_texts(args: argparse.Namespace) -> None:
    m = memorisation_texts(args.run, args.windows, args.prefix_tokens, args.new_tokens, args.seed, args.batch_size)
    probed = sum(t.rates is not None for t in m.texts)
    if m.mean is None:
        print(f"no text of corpus release {m.release_version} is long enough to probe ({m.new_tokens}+"
              f"{MIN_PREFIX} tokens)")  # fmt: skip
        return
    print(f"{probed} of {len(m.texts)} texts probed ({m.windows} windows, {m.prefix_tokens}-token prefix, "
          f"{m.new_tokens} tokens): verbatim {m.mean.greedy_verbatim:.1%} greedy / {m.mean.sampled_verbatim:.1%} "
          f"sampled, near-verbatim {m.mean.greedy_near:.1%} / {m.mean.sampled_near:.1%}; "
          f"the page: {Path(args.run) / 'analysis' / PAGE}, the numbers: {FILE} beside it")  # fmt: skip
