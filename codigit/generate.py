"""`codigit generate RUN`: the base and the tuned model answer the prompt suites; one parquet of generations.

Batched decoding on Hugging Face models (`codigit.decoding`): left padding, prompts sorted by length so a batch
pads little, and each answer leaving its batch when it ends. Sampling is done per row with that row's own seeded
generator, so every (prompt, sample) output is reproducible from its recorded seed alone and identical whether it
ran in a batch or by itself. On a GPU the model runs in bf16. vLLM is an optional GPU backend (`--backend
vllm`): one engine serves base and tuned (the adapter per request), fed the same prompt token ids; its seeds are
per request too, but its sampler is its own, so a seed reproduces an answer within a backend, not across them.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import time
from pathlib import Path

from codigit.cli_types import Parents
from codigit.errors import CodigitError
from codigit.home import atomic_write
from codigit.suites import OPEN_SUITE, load_suite

# `codigit generate`'s defaults, one definition for its parser and for in-process callers (the demo, benchmarks)
SAMPLES = 1
MAX_NEW_TOKENS = 256
BATCH_SIZE = 64  # ~12x the tokens/s of one at a time on SmolLM2 here, greedy or sampled (benchmarks/generation.py)
TEMPERATURE = 0.7
TOP_P = 0.9
BACKENDS = ("hf", "vllm")  # the first is the default: vllm needs a GPU
COLUMNS = ("model", "suite", "prompt_id", "sample", "seed", "prompt", "text", "prompt_tokens", "new_tokens",
           "finished", "seconds", "meta")  # fmt: skip


def sample_seed(seed: int, prompt_id: str, sample: int) -> int:
    """A stable 63-bit seed per (run seed, prompt, sample)."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{prompt_id}/{sample}".encode()).digest()[:8], "big") >> 1


def encode_chats(tokenizer, conversations: list[list[dict]], continue_last: bool = False) -> list[list[int]]:
    """Token ids of each conversation in the tokenizer's chat template (the training format `prepare_tokenizer`
    sets), ending in the assistant header; with `continue_last`, a conversation that ends with an assistant
    message ends inside it (memorisation probes). Both backends get exactly these ids."""
    encoded = []
    for c in conversations:
        go_on = continue_last and c[-1]["role"] == "assistant"
        encoded.append(tokenizer.apply_chat_template(c, add_generation_prompt=not go_on, continue_final_message=go_on))
    return [e["input_ids"] if isinstance(e, dict) or hasattr(e, "keys") else e for e in encoded]


def _answer(tokenizer, tokens: list[int], prompt_tokens: int, finished: bool, seconds: float) -> dict:
    tokens = [t for t in tokens if t != tokenizer.pad_token_id]
    return {"text": tokenizer.decode(tokens, skip_special_tokens=True), "prompt_tokens": prompt_tokens,
            "new_tokens": len(tokens), "finished": finished, "seconds": seconds}  # fmt: skip


def hf_generate(
    model, tokenizer, conversations: list[list[dict]], seeds: list[int] | None, *, max_new_tokens: int | list[int],
    batch_size: int, temperature: float = 1.0, top_p: float = 1.0, progress=None, continue_last: bool = False,
) -> list[dict]:  # fmt: skip
    """Answer each conversation; `seeds` None means greedy. With `continue_last`, a conversation that ends with
    an assistant message is continued from it (memorisation probes). Returns text, token counts, finished,
    seconds."""
    from codigit.decoding import decode

    encoded = encode_chats(tokenizer, conversations, continue_last)
    out = decode(model, encoded, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                 max_new_tokens=max_new_tokens, batch_size=batch_size, seeds=seeds, temperature=temperature,
                 top_p=top_p, progress=progress)  # fmt: skip
    return [_answer(tokenizer, d.tokens, len(e), d.finished, d.seconds) for d, e in zip(out, encoded, strict=True)]


# vLLM compiles kernels for these LoRA ranks only (vllm.config.lora.MaxLoRARanks, 1 in newer releases too)
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


def lora_rank(adapter: Path) -> int:
    """The largest LoRA rank in a PEFT adapter (its `r`, or a larger one from `rank_pattern`)."""
    try:
        config = json.loads((Path(adapter) / "adapter_config.json").read_text(encoding="utf-8"))
        return max([int(config["r"]), *(int(r) for r in (config.get("rank_pattern") or {}).values())])
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise CodigitError(f"{adapter}: no readable LoRA rank in adapter_config.json ({e})") from None


def vllm_engine(model: str, adapter: Path | None, max_model_len: int):
    """One vLLM engine for base and tuned answers: the adapter is applied per request (a LoRARequest), so the
    weights load once and one engine holds the GPU (vLLM reserves most of its memory). Returns (engine, lora
    request or None). Needs `pip install vllm` on a CUDA machine."""
    try:
        from vllm import LLM
        from vllm.lora.request import LoRARequest
    except ImportError:
        raise CodigitError("--backend vllm needs vLLM on a GPU machine: pip install vllm") from None
    if adapter is None:
        return LLM(model=model, max_model_len=max_model_len), None
    rank = lora_rank(adapter)
    if rank > VLLM_LORA_RANKS[-1]:
        raise CodigitError(f"{adapter}: LoRA rank {rank} is above vLLM's largest ({VLLM_LORA_RANKS[-1]})")
    llm = LLM(model=model, enable_lora=True, max_lora_rank=next(r for r in VLLM_LORA_RANKS if r >= rank),
              max_model_len=max_model_len)  # fmt: skip
    return llm, LoRARequest("tuned", 1, str(adapter))


def vllm_generate(llm, tokenizer, conversations: list[list[dict]], seeds: list[int] | None, lora=None, *,
                  max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0) -> list[dict]:  # fmt: skip
    """The GPU path: the same prompt token ids as `hf_generate` (the run's chat template, applied here, not
    vLLM's choice of template), one SamplingParams per answer with its own seed (vLLM samples per request),
    the adapter only when `lora` is given. Stops at the tokenizer's end of turn, like the HF path."""
    from vllm import SamplingParams

    encoded = encode_chats(tokenizer, conversations)
    params = [SamplingParams(max_tokens=max_new_tokens, temperature=0.0 if seeds is None else temperature,
                             top_p=1.0 if seeds is None else top_p, seed=s,
                             stop_token_ids=[tokenizer.eos_token_id])
              for s in (seeds or [None] * len(encoded))]  # fmt: skip
    began = time.perf_counter()
    outputs = llm.generate([{"prompt_token_ids": ids} for ids in encoded], params, lora_request=lora, use_tqdm=False)
    seconds = (time.perf_counter() - began) / max(len(outputs), 1)
    special = set(tokenizer.all_special_ids)
    answers = []
    for ids, o in zip(encoded, outputs, strict=True):
        tokens, finished = list(o.outputs[0].token_ids), o.outputs[0].finish_reason == "stop"
        if finished and tokens and tokens[-1] in special:  # vLLM keeps the stop token in token_ids; HF drops it
            tokens = tokens[:-1]
        answers.append(_answer(tokenizer, tokens, len(ids), finished, seconds))
    return answers


def load_model(path: str):
    """A causal LM for generation: bf16 on the GPU when there is one (the HF path's speed there), else fp32 on
    CPU (batched output is then exactly one-at-a-time output, which the tests check)."""
    import torch
    from transformers import AutoModelForCausalLM

    cuda = torch.cuda.is_available()
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16 if cuda else torch.float32,
                                                device_map="cuda" if cuda else None)  # fmt: skip


def load_tuned(path: str, adapter: Path, vocabulary: int):
    """The base model with the run's LoRA adapter (embeddings grown first if the run added collective tokens)."""
    from peft import PeftModel

    model = load_model(path)
    if vocabulary > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(vocabulary)
    return PeftModel.from_pretrained(model, adapter).eval()


def conversations(prompts: list[dict], collective_token: str | None) -> list[list[dict]]:
    head = [{"role": "system", "content": collective_token}] if collective_token else []
    return [[*head, {"role": "user", "content": p["prompt"]}] for p in prompts]


def at_least_one(**flags: int) -> None:
    """Counts given on the command line (`max_new_tokens=0` is `--max-new-tokens 0`): one line for any below 1."""
    for name, value in flags.items():
        if value < 1:
            raise CodigitError(f"--{name.replace('_', '-')} {value}: use 1 or more")


def check_options(samples: int, max_new_tokens: int, batch_size: int, temperature: float, top_p: float,
                  greedy: bool) -> None:  # fmt: skip
    """Bad numbers are a one-line error before any model loads (torch would fail deep inside sampling)."""
    at_least_one(samples=samples, max_new_tokens=max_new_tokens, batch_size=batch_size)
    if greedy:
        return
    if not temperature > 0:  # also NaN
        raise CodigitError(f"--temperature {temperature}: use a value above 0 (or --greedy for deterministic answers)")
    if not 0 < top_p <= 1:
        raise CodigitError(f"--top-p {top_p}: use a value above 0 and at most 1")


def generate_run(run: Path, suites: list[Path], samples: int = SAMPLES, seed: int = 0, greedy: bool = False,
                 max_new_tokens: int = MAX_NEW_TOKENS, batch_size: int = BATCH_SIZE, temperature: float = TEMPERATURE,
                 top_p: float = TOP_P, models: tuple[str, ...] = ("base", "tuned"), out: Path | None = None,
                 backend: str = BACKENDS[0]) -> Path:  # fmt: skip
    """Base and tuned generations for a training run (its provenance names the base model and its adapter), or
    for a sweep of seeds (`codigit train --seeds`): the base once, then each seed's tuned model, on the same
    sampling seeds; the sweep's parquet has a `train_seed` column, the run's seed on its tuned rows."""
    import io

    import pandas as pd

    check_options(samples, max_new_tokens, batch_size, temperature, top_p, greedy)
    run = Path(run)
    prompts = [(str(s).removeprefix("builtin:") if str(s).startswith("builtin:") else Path(s).stem, p)
               for s in suites for p in load_suite(s)]  # fmt: skip
    options = {"samples": 1 if greedy else samples, "seed": seed, "greedy": greedy, "max_new_tokens": max_new_tokens,
               "batch_size": batch_size, "temperature": temperature, "top_p": top_p, "backend": backend}  # fmt: skip
    from codigit.train.seeds import SWEEP, sweep_runs

    if (run / SWEEP).is_file() and not (run / "provenance.json").exists():
        if backend == "vllm":  # one engine per seed would hold the GPU K times over in one process
            raise CodigitError(f"{run}: a sweep of seeds is generated with --backend hf; --backend vllm takes one run")
        rows, columns = [], [*COLUMNS, "train_seed"]
        for k, (train_seed, seed_run) in enumerate(sweep_runs(run)):  # checked: one recipe and release, all done
            own = tuple(m for m in models if m != "base" or k == 0)  # the base is the same model in every run
            rows += [{**r, "train_seed": train_seed if r["model"] == "tuned" else None}
                     for r in answer_rows(seed_run, prompts, own, **options)]  # fmt: skip
    else:
        rows, columns = answer_rows(run, prompts, models, **options), list(COLUMNS)
    frame = pd.DataFrame(rows, columns=columns)
    if "train_seed" in columns:
        frame["train_seed"] = frame["train_seed"].astype("Int64")  # a whole number, missing on base rows
    out = Path(out or run / "generations.parquet")
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    atomic_write(out, buffer.getvalue())
    return out


def answer_rows(run: Path, prompts: list[tuple[str, dict]], models: tuple[str, ...], *, samples: int, seed: int,
                greedy: bool, max_new_tokens: int, batch_size: int, temperature: float, top_p: float,
                backend: str) -> list[dict]:  # fmt: skip
    """The rows of generations.parquet for one run: `prompts` as (suite, prompt), answered by each of `models`."""
    import sys

    import torch
    from tqdm import tqdm

    from codigit.handoff import read_provenance

    recipe = read_provenance(run).recipe
    base_name, collective = recipe.model["model_name_or_path"], recipe.codigit.get("collective") or ""
    if not (run / "adapter").is_dir():
        raise CodigitError(f"{run}: no adapter/ (has the run finished?)")

    from transformers import AutoTokenizer

    from codigit.train.formats import collective_token, prepare_tokenizer
    from codigit.train.models import resolve_model

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(run / "adapter")  # the tuned vocabulary (collective tokens too)
    base_tokenizer = AutoTokenizer.from_pretrained(resolve_model(base_name))
    prepare_tokenizer(base_tokenizer)
    if backend == "vllm" and len(tokenizer) != len(base_tokenizer):  # the run's `collectives` grew the vocabulary
        raise CodigitError("--backend vllm cannot add collective-identity tokens to the vocabulary; use --backend hf")
    items = [p for _, p in prompts]
    if backend == "vllm":  # one engine for every job; the context only as long as the longest answer needs
        longest = max(len(ids) for ids in encode_chats(tokenizer, conversations(items, None)))
        llm, lora = vllm_engine(resolve_model(base_name), run / "adapter", longest + max_new_tokens)
    else:
        model = load_tuned(resolve_model(base_name), run / "adapter", len(tokenizer))

    rows = []
    # a run trained in several collectives' voices answers every prompt in each voice, with the same seeds
    voices = list(recipe.codigit.get("collectives") or []) if recipe.codigit.get("voices") else [collective or None]
    jobs = [(m, k, v) for m in models for k in range(samples) for v in (voices if m == "tuned" else [None])]
    progress = tqdm(total=len(jobs) * len(prompts), desc="generating", unit="answer", disable=not sys.stderr.isatty())
    for name, sample, voice in jobs:
        seeds = [sample_seed(seed, p["id"], sample) for p in items]
        tuned = name == "tuned"
        token = collective_token(voice) if tuned and voice else None
        options = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p}
        chats, own_tokenizer = conversations(items, token), tokenizer if tuned else base_tokenizer
        if backend == "vllm":
            answers = vllm_generate(llm, own_tokenizer, chats, None if greedy else seeds, lora if tuned else None,
                                    **options)  # fmt: skip
            progress.update(len(items))
        else:
            with contextlib.nullcontext() if tuned else model.disable_adapter():  # base: same weights, no LoRA
                answers = hf_generate(model, own_tokenizer, chats, None if greedy else seeds, batch_size=batch_size,
                                      progress=progress, **options)  # fmt: skip
        for (suite, p), s, a in zip(prompts, seeds, answers, strict=True):
            meta = {k: v for k, v in p.items() if k not in ("id", "prompt")}
            if tuned and len(voices) > 1:
                meta["collective"] = voice
            rows.append({"model": name, "suite": suite, "prompt_id": p["id"], "sample": sample,
                         "seed": None if greedy else s, "prompt": p["prompt"], **a,
                         "meta": json.dumps(meta, ensure_ascii=False)})  # fmt: skip
    progress.close()
    return rows


def run(args: argparse.Namespace) -> None:
    out = generate_run(args.run, args.suite or [OPEN_SUITE], args.samples, args.seed, args.greedy, args.max_new_tokens,
                       args.batch_size, args.temperature, args.top_p, backend=args.backend)  # fmt: skip
    print(f"generations: {out}")


def add_parser(sub, parents: Parents) -> None:
    p = sub.add_parser("generate", help="base and tuned answers to the prompt suites -> RUN/generations.parquet")
    p.add_argument("run", type=Path, help="a finished training run folder (runs/NAME), or a sweep (train --seeds)")
    p.add_argument("--suite", action="append",
                   help="prompt suite JSONL, or builtin:occupations, builtin:bbq, builtin:gb-creative(-full) "
                        "(repeatable; default: the open suite)")  # fmt: skip
    p.add_argument("--samples", type=int, default=SAMPLES, help="samples per prompt and model (each with its own seed)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--greedy", action="store_true", help="greedy decoding (one sample)")
    p.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS)
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--temperature", type=float, default=TEMPERATURE)
    p.add_argument("--top-p", type=float, default=TOP_P)
    p.add_argument("--backend", choices=BACKENDS, default=BACKENDS[0], help="vllm: GPU only, pip install vllm")
    p.set_defaults(func=run)
