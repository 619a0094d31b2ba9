"""`codigit memorisation RUN`: how much of the training stories the tuned model gives back, word for word.

For each training record the tuned model is prompted with its prompt alone and with the prompt plus the first
`prefix_words` of its story as written (greedy), and the continuation is compared with the rest of the story: the
longest common run of words and the share of the story's 8-grams that reappear. A story counts as extracted when a
continuation repeats at least `extract_words` consecutive words of it. The participants' guidelines warn that a
model can repeat their text; this is the number behind the warning.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING

from codigit.analysis.metrics import words
from codigit.cli_types import Parents, at_least
from codigit.errors import CodigitError
from codigit.generate import BATCH_SIZE
from codigit.home import atomic_write
from codigit.probe_options import add_options as add_text_options

if TYPE_CHECKING:
    from codigit.handoff import MemorisationSummary

# `codigit memorisation`'s defaults (their meaning is in its --help), also for in-process callers such as the demo
PREFIX_WORDS = 16
EXTRACT_WORDS = 24
# Tokens a continuation may take beyond its story's own length (a short preamble before the story comes back)
SLACK_TOKENS = 32


def longest_common_run(a: list[str], b: list[str]) -> int:
    """Length of the longest run of consecutive words shared by a and b (dynamic programming, O(len a · len b))."""
    best, previous = 0, [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b, start=1):
            if x == y:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


def raw_prefix(text: str, n: int) -> str:
    """The text up to the end of its n-th whitespace-separated word, exactly as written (case, punctuation and
    line breaks kept: the model was trained on that, and a normalised prefix would under-count extraction)."""
    if n <= 0:
        return ""
    found = re.match(rf"\s*(?:\S+\s+){{{n - 1}}}\S+", text)
    return found.group(0) if found else text


def ngram_overlap(generated: list[str], reference: list[str], n: int = 8) -> float:
    """Share of the reference's n-grams that appear in the generated text (nan if the reference is shorter)."""
    ref = {tuple(reference[i : i + n]) for i in range(len(reference) - n + 1)}
    if not ref:
        return float("nan")
    gen = {tuple(generated[i : i + n]) for i in range(len(generated) - n + 1)}
    return len(ref & gen) / len(ref)


def memorisation(run: Path, prefix_words: int = PREFIX_WORDS, extract_words: int = EXTRACT_WORDS, max_records: int = 0,
                 batch_size: int = BATCH_SIZE, max_new_tokens: int = 0) -> MemorisationSummary:  # fmt: skip
    """`max_new_tokens`: how far each continuation goes (0: far enough to repeat its own story whole, with
    `SLACK_TOKENS` to spare; a budget per story, so short stories do not run as long as the longest)."""
    import pandas as pd
    from transformers import AutoTokenizer

    from codigit import handoff
    from codigit.generate import at_least_one, hf_generate, load_tuned
    from codigit.handoff import MemorisationSummary, read_provenance
    from codigit.train.models import resolve_model
    from codigit.train.recipe import CodigitArgs
    from codigit.train.run import load_release

    at_least_one(prefix_words=prefix_words, extract_words=extract_words, batch_size=batch_size)
    run = Path(run)
    provenance = read_provenance(run)
    # the training records as the run saw them (collective token included), verified against the hash it trained on
    used = {k: v for k, v in provenance.recipe.codigit.items() if k in CodigitArgs.__dataclass_fields__}
    args = CodigitArgs(**{**used, "release": provenance.release.path, "release_hash": provenance.release.dataset_hash,
                          "release_split": provenance.release.split, "max_records": max_records})  # fmt: skip
    data, _, _ = load_release(args)
    tokenizer = AutoTokenizer.from_pretrained(run / "adapter")
    model = load_tuned(resolve_model(provenance.recipe.model["model_name_or_path"]), run / "adapter", len(tokenizer))

    records = [row["messages"] for row in data]
    stories = [words(m[-1]["content"]) for m in records]
    chats, prefixes, rests = [], [], []
    for messages in records:
        asked, text = messages[:-1], messages[-1]["content"]
        chats.append(asked)  # the prompt alone
        prefix = raw_prefix(text, prefix_words)
        chats.append([*asked, {"role": "assistant", "content": prefix}])  # prompt + start of the story
        prefixes.append(prefix)
        rests.append(words(text[len(prefix) :]))  # what the continuation could give back
    budgets = [min(len(tokenizer(m[-1]["content"], add_special_tokens=False).input_ids) + SLACK_TOKENS, 1024)
               for m in records]  # fmt: skip
    per_chat = [b for b in budgets for _ in (0, 1)]  # a record's two chats: prompt alone, prompt + prefix
    answers = hf_generate(model, tokenizer, chats, None, max_new_tokens=max_new_tokens or per_chat,
                          batch_size=batch_size, continue_last=True)  # fmt: skip
    rows = []
    for k, (story, rest) in enumerate(zip(stories, rests, strict=True)):
        alone, continued = words(answers[2 * k]["text"]), words(answers[2 * k + 1]["text"])
        run_alone, run_prefix = longest_common_run(alone, story), longest_common_run(continued, rest)
        rows.append({"record": k, "story_words": len(story), "lcs_prompt_only": run_alone,
                     "lcs_with_prefix": run_prefix, "ngram8_prompt_only": ngram_overlap(alone, story),
                     "ngram8_with_prefix": ngram_overlap(continued, rest),
                     "extracted": max(run_alone, run_prefix) >= extract_words,
                     "prompt": records[k][-2]["content"], "prefix": prefixes[k],
                     "generated": answers[2 * k + 1]["text"]})  # fmt: skip
    frame = pd.DataFrame(rows)
    out = run / "analysis"
    out.mkdir(exist_ok=True)
    atomic_write(out / "memorisation.csv", frame.to_csv(index=False))
    summary = MemorisationSummary(
        records=len(frame),
        extraction_rate=float(frame["extracted"].mean()) if len(frame) else float("nan"),
        extract_words=extract_words,
        prefix_words=prefix_words,
        median_lcs_with_prefix=float(frame["lcs_with_prefix"].median()) if len(frame) else float("nan"),
        worst=frame.sort_values("lcs_with_prefix", ascending=False).head(5)[
            ["record", "lcs_with_prefix", "ngram8_with_prefix"]].to_dict("records"),
    )  # fmt: skip
    handoff.write(out / "memorisation.json", summary)
    return summary


def run(args: argparse.Namespace) -> None:
    from codigit.generate import at_least_one
    from codigit.handoff import read_provenance

    # a mistyped option is said before anything is read, as for every command (--texts' own are argparse types)
    at_least_one(prefix_words=args.prefix_words, extract_words=args.extract_words, batch_size=args.batch_size)
    corpus = read_provenance(args.run).release.kind == "corpus"  # stories by story, a corpus's texts by window
    if corpus and not args.texts:
        raise CodigitError(f"{args.run}: trained on a corpus release: probe its texts with `codigit memorisation "
                           f"{args.run} --texts`")  # fmt: skip
    if args.texts and not corpus:
        raise CodigitError(f"{args.run}: --texts needs a run on a corpus release; this one trained on stories")
    if args.texts:
        from codigit.memorisation_texts import run_texts

        return run_texts(args)
    s = memorisation(args.run, args.prefix_words, args.extract_words, args.max_records, args.batch_size)
    print(f"{s.records} training stories: extraction rate {s.extraction_rate:.1%} (a run of "
          f"{s.extract_words}+ words repeated), median longest run after a {s.prefix_words}-word prefix "
          f"{s.median_lcs_with_prefix:.0f} words; details in {args.run / 'analysis'}/memorisation.csv")  # fmt: skip


def add_parser(sub, parents: Parents) -> None:
    p = sub.add_parser("memorisation", help="how much of the training stories (--texts: contributed texts) it repeats")
    p.add_argument("run", type=Path)
    p.add_argument("--prefix-words", type=int, default=PREFIX_WORDS, help="words of the story given after the prompt")
    p.add_argument("--extract-words", type=at_least(1), default=EXTRACT_WORDS,
                   help="a repeated run this long counts as extracted")  # fmt: skip
    p.add_argument("--max-records", type=at_least(0), default=0,
                   help="probe only the first N training records (0: all)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--texts", action="store_true",
                   help="a run on a corpus release: per contributed text, verbatim and near-verbatim extraction "
                        "rates, greedy and sampled -> RUN/analysis/memorisation_texts.json")  # fmt: skip
    add_text_options(p)
    p.set_defaults(func=run)
