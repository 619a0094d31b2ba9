"""Each evaluation during training: the eval loss on the release's `eval_split`, and, when the recipe asks
(`memorisation_probe: N`), how much of N training stories the model already reproduces.

The probe gives the model a story's prompt and its first `memorisation_tokens` tokens, lets it continue greedily
for as many tokens, and compares that with the story's true next tokens: `memorisation` is the mean share of the
continuation's token 4-grams found in the true one (1 = word for word), `verbatim` the share of stories continued
exactly. Memorisation can peak in the first epochs, before the eval loss is best (Tirumala et al. 2022, "Memorization
without overfitting"), so a rise while the eval loss still falls is logged as a warning and kept in metrics.jsonl
(`memorisation_warning`), where the analysis report finds it.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

_LOGGER = logging.getLogger("codigit.train")
N = 4  # token n-gram length: short enough to score partial copies, long enough that chance matches are rare
WARN_RISE = 0.05  # a rise of memorisation (absolute share of 4-grams) between evaluations worth a warning


@dataclass(frozen=True)
class Probe:
    prompt: list[int]  # the story's prompt, chat-formatted, and its first tokens
    truth: list[int]  # the story's next tokens


def ngram_precision(generated: list[int], truth: list[int], n: int = N) -> float:
    """The share of `generated`'s n-grams that occur in `truth` (0 when `generated` has none)."""
    grams = [tuple(generated[i : i + n]) for i in range(len(generated) - n + 1)]
    if not grams:
        return 0.0
    true = {tuple(truth[i : i + n]) for i in range(len(truth) - n + 1)}
    return sum(g in true for g in grams) / len(grams)


def probes(data, tokenizer, count: int, tokens: int, seed: int) -> list[Probe]:
    """`count` training stories at least 2·`tokens` long, drawn with the run's seed: the same ones at every
    evaluation. `data` holds chat `messages`, the story the last turn (a corpus release holds out nothing to
    evaluate on, so continued pretraining has no evaluations to probe at)."""
    order = list(range(len(data)))
    random.Random(seed).shuffle(order)
    chosen = []
    for i in order:
        if len(chosen) == count:
            break
        messages = data[i]["messages"]
        head = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True,
                                             return_dict=False)  # fmt: skip
        story = tokenizer(messages[-1]["content"], add_special_tokens=False)["input_ids"]
        if len(story) >= 2 * tokens:
            chosen.append(Probe(list(head) + story[:tokens], story[tokens : 2 * tokens]))
    return chosen


def continuations(model, chosen: list[Probe], pad_token_id: int) -> list[list[int]]:
    """Each probe's greedy continuation, all in one batch (`codigit.decoding.decode`, the same tokens as one at a
    time, tested), each as long as its truth: no end token stops it."""
    from codigit.decoding import decode

    was_training = model.training
    model.eval()
    try:
        out = decode(model, [p.prompt for p in chosen], eos_token_id=-1, pad_token_id=pad_token_id,
                     max_new_tokens=len(chosen[0].truth), batch_size=len(chosen))  # fmt: skip
    finally:
        model.train(was_training)
    return [d.tokens for d in out]


def memorisation(model, chosen: list[Probe], pad_token_id: int) -> dict[str, float]:
    """The probes' continuations scored against the truth."""
    rows = continuations(model, chosen, pad_token_id)
    scores = [ngram_precision(row, p.truth) for row, p in zip(rows, chosen, strict=True)]
    exact = sum(row == p.truth for row, p in zip(rows, chosen, strict=True))
    return {"memorisation": round(sum(scores) / len(scores), 4), "verbatim": round(exact / len(chosen), 4)}


def warning(previous: dict | None, entry: dict) -> str | None:
    """A sentence when memorisation rose by WARN_RISE or more since the last evaluation while eval loss fell."""
    if not previous or "memorisation" not in entry or "memorisation" not in previous:
        return None
    rise = entry["memorisation"] - previous["memorisation"]
    if rise >= WARN_RISE and entry["eval_loss"] < previous["eval_loss"]:
        return (f"step {entry['step']}: memorisation of training stories rose {previous['memorisation']:.2f} -> "
                f"{entry['memorisation']:.2f} while the eval loss still fell ({previous['eval_loss']:.3f} -> "
                f"{entry['eval_loss']:.3f}): the model is learning stories word for word before it stops "
                "generalising; consider early_stopping_patience or fewer epochs")  # fmt: skip
    return None


def evaluation_callback(sinks: list, chosen: list[Probe], pad_token_id: int):
    """After each evaluation: one entry (eval loss, memorisation when probed, a warning flag) to every sink."""
    from transformers import TrainerCallback

    from codigit.records import utc_now

    class Evaluations(TrainerCallback):
        previous: dict | None = None

        def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
            if not metrics or "eval_loss" not in metrics:
                return
            entry = {"step": state.global_step, "epoch": round(state.epoch or 0, 4), "eval_loss": metrics["eval_loss"]}
            if chosen:  # every process generates (sharded weights need them all); the first one writes
                entry |= memorisation(model, chosen, pad_token_id)
            if not state.is_world_process_zero:
                return
            if said := warning(self.previous, entry):
                _LOGGER.warning(said)
                entry["memorisation_warning"] = True
            self.previous = entry
            for sink in sinks:
                sink({**entry, "time": utc_now()})

    return Evaluations()
