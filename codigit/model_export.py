"""`codigit export RUN`: the copy of a trained model that contributors receive, with what they need to judge it.

RUN/export/ (or --out) holds `model/` (the merged model: base + LoRA adapter through PEFT's `merge_and_unload`,
or the run's own full model; safetensors and tokenizer), `model.<dtype>.gguf` (`codigit.gguf_file`, for
llama.cpp-based apps), `contribution_log.csv` (the corpus release's, byte for byte), `README.md` (the model card)
and `notices/<name>.md`, one per credited contributor: what they receive, which of their texts went in and what
the model may repeat of each (`memorisation_texts.json`). A run on a stories release gets the model files and the
card only. The corpus release is verified again, against the hash the run trained on, before anything is written;
the folder appears whole or not at all, and holds no pseudonym.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, get_args

from codigit.cli_types import Parents
from codigit.errors import CodigitError
from codigit.gguf_file import GGUFType
from codigit.probe_options import MIN_PREFIX

if TYPE_CHECKING:
    from codigit.memorisation_texts import MemorisationTexts, Rates, TextMemorisation

GGUF_CHOICES = (*get_args(GGUFType), "none")
GGUF_DEFAULT = "q8_0"  # half the size of f16 (8.5 GB for an 8B model), the usual choice for running one locally


def export(run: Path, out: Path | None = None, gguf: str = GGUF_DEFAULT, uses: tuple[list, list] | None = None,
           ) -> Path:  # fmt: skip
    """Write RUN's export folder (default RUN/export); returns it. Refuses an existing folder. `uses`: (the
    community's decided uses, the uses this model is offered for) from `codigit.usecases.claimed`."""
    from codigit.corpus.card import ANONYMOUS, LogRow
    from codigit.corpus.release import LOG_CSV, LOG_JSONL
    from codigit.handoff import read_memorisation, read_provenance
    from codigit.home import atomic_dir
    from codigit.memorisation_texts import read_memorisation_texts, run_corpus, run_weights

    if gguf not in GGUF_CHOICES:
        raise CodigitError(f"--gguf {gguf}: choose one of {', '.join(GGUF_CHOICES)}")
    run = Path(run)
    provenance = read_provenance(run)
    weights, folder = run_weights(run)
    out = Path(out) if out else run / "export"
    if out.exists():
        raise CodigitError(f"{out} exists: remove it or give another --out (an export is never overwritten)")
    corpus = provenance.release.kind == "corpus"
    release, manifest, log, probe = None, None, [], None
    if corpus:
        release, manifest = run_corpus(run, provenance)
        log = [LogRow.model_validate_json(line) for line in (release / LOG_JSONL).read_bytes().splitlines()]
        probe = read_memorisation_texts(run)
        if probe is not None and probe.release_hash != manifest.dataset_hash:
            raise CodigitError(f"{run}: memorisation_texts.json probed another release; run it again")
    gguf_name = None if gguf == "none" else f"model.{gguf}.gguf"
    with atomic_dir(out) as tmp:
        _write_model(run, provenance, weights, folder, tmp / "model")
        if gguf_name:
            from codigit.gguf_file import write_gguf

            write_gguf(tmp / "model", tmp / gguf_name, gguf)
        if corpus:
            shutil.copyfile(release / LOG_CSV, tmp / LOG_CSV)
            by_id = {t.id: t for t in probe.texts} if probe else {}
            names = sorted({r.contributor for r in log if r.contributor != ANONYMOUS}, key=str.casefold)
            (tmp / "notices").mkdir()
            for name, file in _file_names(names).items():
                mine = [r for r in log if r.contributor == name]
                (tmp / "notices" / file).write_text(_notice(name, mine, by_id, probe, gguf_name), encoding="utf-8")
        stories = None if corpus else read_memorisation(run)
        card = _card(run, provenance, weights, manifest, log, probe, stories, gguf_name)
        if uses is not None:  # the register as the board decided it, beside the card that quotes it
            from codigit.usecases import card_section

            card += "\n" + card_section(*uses)
            register = {"decided": [u.model_dump() for u in uses[0]], "offered_for": [u.id for u in uses[1]]}
            (tmp / "use_cases.json").write_text(json.dumps(register, indent=2, ensure_ascii=False) + "\n", "utf-8")
        (tmp / "README.md").write_text(card, encoding="utf-8")
    return out


def _write_model(run: Path, provenance, weights: str, folder: Path, dest: Path) -> None:
    """The run's model as one `from_pretrained` folder: base + adapter merged in the base's own dtype on the CPU
    (an 8B model in bf16 needs ~16 GB of memory), or the run's full model as it was saved."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if weights == "lora":
        from peft import PeftModel

        from codigit.train.models import resolve_model

        model = AutoModelForCausalLM.from_pretrained(resolve_model(provenance.recipe.model["model_name_or_path"]),
                                                     dtype="auto")  # fmt: skip
        if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:  # the run added collective tokens
            model.resize_token_embeddings(len(tokenizer))
        model = PeftModel.from_pretrained(model, folder).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype="auto")
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)


def slug(name: str) -> str:
    """A file name for a credit name: ASCII letters and digits joined by hyphens (a name with none: a hash)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    made = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:60].strip("-")
    return made or "contributor-" + hashlib.sha256(name.encode()).hexdigest()[:8]


def _file_names(names: list[str]) -> dict[str, str]:
    """Credit name -> its notice's file name; names with the same slug get -2, -3 … in sorted order."""
    files: dict[str, str] = {}
    for name in names:
        base, n = slug(name), 1
        while (file := f"{base}{'' if n == 1 else f'-{n}'}.md") in files.values():
            n += 1
        files[name] = file
    return files


def _cell(text: str) -> str:
    """Free text (a title, a name) inside markdown: no table break, no HTML."""
    text = " ".join(text.split()).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|").replace("`", "'")


def _pct(rate: float) -> str:
    return f"{rate:.0%}"


def _rates_cells(t: TextMemorisation | None, probe: MemorisationTexts | None) -> str:
    if probe is None:
        return "not measured | not measured"
    if t is None or t.rates is None:
        return f"too short to probe (under {probe.new_tokens + MIN_PREFIX} tokens) | –"
    r = t.rates
    return (f"{_pct(r.greedy_verbatim)} / {_pct(r.greedy_near)} | {_pct(r.sampled_verbatim)} / "
            f"{_pct(r.sampled_near)} (of {t.windows} windows)")  # fmt: skip


def _probe_method(probe: MemorisationTexts) -> str:
    return (f"Each text was probed at up to {probe.windows} places: the model was given the {probe.prefix_tokens} "
            f"tokens before a place and asked for the next {probe.new_tokens}, once greedy (its most likely "
            f"continuation) and once sampled (temperature {probe.temperature}, top-p {probe.top_p}, fixed seeds). "
            f"*Verbatim*: the continuation is exactly the text's own (Carlini et al. 2023). *Near-verbatim*: at "
            f"least {probe.near_threshold:.0%} of it is the text's own, allowing a few changed tokens (token edit "
            "similarity; after Ippolito et al. 2023); it includes verbatim.")  # fmt: skip


def _files(gguf_name: str | None, corpus: bool, notices: bool = False) -> str:
    lines = ["- `model/`: the trained model (weights as safetensors, and its tokenizer), for `transformers`."]
    if gguf_name:
        lines.append(f"- `{gguf_name}`: the same model as one GGUF file, for llama.cpp-based apps.")
    if corpus:
        lines.append("- `contribution_log.csv`: every contributed text, included or not, as the corpus release "
                     "lists it.")  # fmt: skip
    lines.append("- `README.md`: the model card.")
    if notices:
        lines.append("- `notices/`: a notice for each credited contributor, like this card for their own texts.")
    return "\n".join(lines)


def _notice(name: str, rows: list, by_id: dict, probe: MemorisationTexts | None, gguf_name: str | None) -> str:
    used = [r for r in rows if r.included == "yes"]
    table = "\n".join(f"| {_cell(r.title)} | {r.tokens:,} | {_rates_cells(by_id.get(r.id), probe)} |" for r in used)
    left = "".join(f"- {_cell(r.title)}: {r.reason.replace('_', ' ')}\n" for r in rows if r.included != "yes")
    if left:
        left = f"\nNot used in this model (the contribution log says why):\n\n{left}"
    measured = _probe_method(probe) if probe else "How much the model repeats each text has not been measured yet."
    return f"""# For {_cell(name)}: your copy of the model

You contributed writing under the name **{_cell(name)}** to the corpus this model was trained on. You receive:

{_files(gguf_name, True)}

## Your texts in this model

| title | tokens | greedy: verbatim / near-verbatim | sampled: verbatim / near-verbatim |
| --- | --- | --- | --- |
{table or "| (none of your texts went in) | 0 | – | – |"}
{left}
## What the model may repeat

Language models can repeat their training text word for word, to anyone who uses them. {measured} A percentage
is the share of probed places where the model gave your text back; 0% means it did not at those places, not that
it never will.
"""


def _card(run: Path, provenance, weights: str, manifest, log: list, probe: MemorisationTexts | None, stories,
          gguf_name: str | None) -> str:  # fmt: skip
    used, model = provenance.release, provenance.recipe.model
    base = model.get("model_name_or_path")
    how = f"LoRA (r={model.get('lora_r')}), merged into the base" if weights == "lora" else "all weights"
    loss = "" if provenance.train_loss is None else f", final training loss {provenance.train_loss:.4f}"
    rows = [f"| base model | `{base}` |", f"| training | {how}; {provenance.global_step} steps{loss} |",
            f"| release | {used.kind or 'stories'} release {used.version} |",
            f"| dataset hash | `{used.dataset_hash}` |"]  # fmt: skip
    if only := provenance.recipe.codigit.get("only_collective"):  # one adapter of a community garden
        rows.append(f"| collective | trained on collective {only}'s records only |")
    elif provenance.recipe.codigit.get("voices"):
        voices = ", ".join(provenance.recipe.codigit.get("collectives") or [])
        rows.append(f"| voices | a token per collective ({voices}): `<|collective:NAME|>` opens a conversation |")
    if manifest is not None:
        more, data = _corpus_data(manifest, log)
        memo, limitation = _corpus_memo(probe, {r.id: r for r in log}, run), CONTINUES
    else:
        more, data, memo, limitation = [], STORIES_DATA.format(version=used.version), _stories_memo(stories, run), TUNED
    name = gguf_name or f"model.{GGUF_DEFAULT}.gguf"
    no_gguf = "" if gguf_name else f"\nNo GGUF file was written (`--gguf none`); `--gguf {GGUF_DEFAULT}` makes one.\n"
    table = "\n".join(rows + more)
    return f"""---
base_model: {base}
library_name: transformers
tags: [codigit, {"continued-pretraining" if manifest is not None else "instruction-tuning"}, gguf]
---

# {_cell(run.name)}: a model trained with codigit

| | |
| --- | --- |
{table}

## Files

{_files(gguf_name, manifest is not None, notices=manifest is not None)}

## What it was trained on

{data}

## Running it
{no_gguf}
In a llama.cpp-based app (LM Studio, Ollama, GPT4All and others that open GGUF files), open `{name}`; with
llama.cpp's own command-line tool: `llama-cli -m {name} -p "The first line of a story"`. With transformers:

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("model")
model = AutoModelForCausalLM.from_pretrained("model")  # or (".", gguf_file="{name}")
```

## Memorisation

Language models can repeat their training text word for word, including to people who never saw it. Do not
present what this model writes as its own or your own without checking it against the training texts.

{memo}

## Limitations

- A small model or a small corpus teaches style and vocabulary more than knowledge; the base model's biases,
  errors and licence terms carry over (the weights are a derivative of `{base}`).
- {limitation}
- A GGUF file in q8_0 or f16 gives slightly different next-token scores from `model/` (codigit tests the
  difference against a bound for each precision).
"""


CONTINUES = "A continued-pretraining model continues text; it was not tuned to follow instructions or to refuse."
TUNED = "It was tuned on a small set of stories; expect it to echo their themes and style."
STORIES_DATA = (
    "Instruction tuning on stories release {version} (prompt–story pairs). A stories release has no contribution "
    "log of texts: this export has no `contribution_log.csv` and no `notices/`; the release's own card says who "
    "contributed."
)


def _corpus_data(manifest, log: list) -> tuple[list[str], str]:
    """The card's rows and section on a corpus release: texts, tokens, licences, who gets a notice."""
    from codigit.corpus.card import ANONYMOUS

    included = [r for r in log if r.included == "yes"]
    anonymous = sum(r.contributor == ANONYMOUS for r in included)
    credited = len({r.contributor for r in log if r.contributor != ANONYMOUS})
    rows = [f"| texts | {len(included)} of {manifest.counts['contributions']} contributed, {anonymous} anonymous |",
            f"| tokens | {manifest.counts['tokens']:,}, counted with {manifest.tokenizer} |"]  # fmt: skip
    licences = "\n".join(f"| {_cell(k)} | {v} |" for k, v in manifest.licences.items())
    section = f"""Continued pretraining on corpus release {manifest.version}: whole texts given by their writers.

| licence | texts |
| --- | --- |
{licences}

Each text keeps its own licence (`contribution_log.csv` lists them with their credit names). `notices/` holds a
notice for each of the {credited} credited contributors. The {anonymous} texts given anonymously have no notice:
nobody is named to receive one."""
    return rows, section


def _stories_memo(stories, run: Path) -> str:
    if stories is None:
        return f"**Not measured yet**: run `codigit memorisation {run}`, then export again."
    return (f"`codigit memorisation`: {stories.extraction_rate:.1%} of {stories.records} training stories were "
            f"extracted (a run of {stories.extract_words}+ words repeated after a {stories.prefix_words}-word "
            "prefix).")  # fmt: skip


NOTHING = "\n\nAt no probed place did it repeat a text, even approximately."


def _corpus_memo(probe: MemorisationTexts | None, log: dict, run: Path) -> str:
    if probe is None:
        return f"**Not measured yet**: run `codigit memorisation {run} --texts`, then export again."
    if probe.mean is None:
        return "No text was long enough to probe."
    m: Rates = probe.mean
    probed = sum(t.rates is not None for t in probe.texts)
    worst = [t for t in probe.texts if t.id in probe.worst]
    named = "\n".join(f"| {_cell(log[t.id].title if t.id in log else t.title)} | {_rates_cells(t, probe)} |"
                      for t in sorted(worst, key=lambda t: probe.worst.index(t.id)))  # fmt: skip
    head = "| title | greedy: verbatim / near | sampled: verbatim / near |\n| --- | --- | --- |"
    worst_table = f"\n\nThe texts it repeats most:\n\n{head}\n{named}" if named else NOTHING
    return (f"{_probe_method(probe)}\n\nOver {probed} of {len(probe.texts)} texts (each weighing the same): "
            f"verbatim {_pct(m.greedy_verbatim)} greedy, {_pct(m.sampled_verbatim)} sampled; near-verbatim "
            f"{_pct(m.greedy_near)} greedy, {_pct(m.sampled_near)} sampled.{worst_table}")  # fmt: skip


def run(args: argparse.Namespace) -> None:
    from codigit.home import resolve_home
    from codigit.usecases import FILE, claimed

    home = resolve_home(args.home)
    uses = claimed(home, args.claim) if args.claim or (home / FILE).exists() else None  # a refused claim: no export
    out = export(args.run, args.out, args.gguf, uses)
    print(f"export: {out}")


def add_parser(sub, parents: Parents) -> None:
    p = sub.add_parser("export", parents=[parents.home],
                       help="a run's model for its contributors: merged model, GGUF, contribution log, model card, "
                            "a notice per credited contributor")  # fmt: skip
    p.add_argument("run", type=Path, help="a finished training run folder (runs/NAME)")
    p.add_argument("--out", type=Path, help="where to write it (default: RUN/export; must not exist)")
    p.add_argument("--gguf", choices=GGUF_CHOICES, default=GGUF_DEFAULT, help="GGUF precision (none: no GGUF)")
    p.add_argument("--claim", action="append", default=[], metavar="USE_ID",
                   help="a use the board approved that the card offers the model for (repeatable; `codigit "
                        "usecases` lists them); the card lists the home's use-case register in any case")  # fmt: skip
    p.set_defaults(func=run)
