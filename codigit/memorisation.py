"""`codigit memorisation RUN`: how much of the training stories the tuned model gives back, word for word.

For each training record the tuned model is prompted with its prompt alone and with the prompt plus the first
`prefix_words` of its story as written (greedy), and the continuation is compared with the rest of the story: the
longest common run of words and the share of the story's 8-grams that reappear. A story counts as extracted when a
continuation repeats at least `extract_words` consecutive words of it. The participants' guidelines warn that a
model can repeat their text; this is the number behind the warning.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from codigit.analysis.metrics import words
from codigit.errors import CodigitError
from codigit.home import atomic_write


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


def memorisation(run: Path, prefix_words: int = 16, extract_words: int = 24, max_records: int = 0,
                 batch_size: int = 16) -> dict:  # fmt: skip
    import pandas as pd
    from transformers import AutoTokenizer

    from codigit.generate import at_least_one, hf_generate, load_tuned
    from codigit.train.formats import collective_token
    from codigit.train.models import resolve_model
    from codigit.train.recipe import CodigitArgs
    from codigit.train.run import load_release

    at_least_one(prefix_words=prefix_words, extract_words=extract_words, batch_size=batch_size)
    run = Path(run)
    try:
        provenance = json.loads((run / "provenance.json").read_text(encoding="utf-8"))
        recipe = provenance["recipe"]
    except (OSError, KeyError, json.JSONDecodeError) as e:
        raise CodigitError(f"{run}: not a finished codigit run (provenance.json: {e})") from None
    args = CodigitArgs(release=provenance["release"]["path"], release_hash=provenance["release"]["dataset_hash"],
                       release_split=provenance["release"]["split"], max_records=max_records)  # fmt: skip
    data, _, _ = load_release(args)  # verified against the hash the run trained on
    tokenizer = AutoTokenizer.from_pretrained(run / "adapter")
    model = load_tuned(resolve_model(recipe["model"]["model_name_or_path"]), run / "adapter", len(tokenizer))
    collective = recipe["codigit"].get("collective")
    head = [{"role": "system", "content": collective_token(collective)}] if collective else []

    records = [row["messages"] for row in data]
    stories = [words(m[-1]["content"]) for m in records]
    chats, prefixes, rests = [], [], []
    for messages in records:
        user, text = messages[-2], messages[-1]["content"]
        chats.append([*head, user])  # the prompt alone
        prefix = raw_prefix(text, prefix_words)
        chats.append([*head, user, {"role": "assistant", "content": prefix}])  # prompt + start of the story
        prefixes.append(prefix)
        rests.append(words(text[len(prefix) :]))  # what the continuation could give back
    longest = max((len(s) for s in stories), default=0)
    answers = hf_generate(model, tokenizer, chats, None, max_new_tokens=min(2 * longest + 16, 1024),
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
    summary = {
        "records": len(frame),
        "extraction_rate": float(frame["extracted"].mean()) if len(frame) else float("nan"),
        "extract_words": extract_words,
        "prefix_words": prefix_words,
        "median_lcs_with_prefix": float(frame["lcs_with_prefix"].median()) if len(frame) else float("nan"),
        "worst": frame.sort_values("lcs_with_prefix", ascending=False).head(5)[
            ["record", "lcs_with_prefix", "ngram8_with_prefix"]].to_dict("records"),
    }  # fmt: skip
    atomic_write(out / "memorisation.json", json.dumps(summary, indent=2) + "\n")
    return summary
