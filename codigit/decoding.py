"""Batched decoding with a KV cache that lets each row go once it has ended (`codigit generate`, memorisation).

`model.generate` keeps every row of a batch to the end, computing padding for the answers that are done, so a
batch runs as long as its longest answer costs. Here a row that reaches end of text leaves the batch and its
cache: the rest run on fewer rows. The cache grows by doubling its buffers, not by concatenation each step.
Otherwise it is Hugging Face's greedy loop (left padding, positions from the attention mask, the last position's
logits in fp32); sampling is `row_sampler`'s, one seeded generator per row, so an answer is the same whatever
batch it runs in, and whichever rows left it before.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from codigit.sampling import row_sampler


@dataclass(frozen=True)
class Decoded:
    tokens: list[int]  # the new tokens, end of text left out
    finished: bool  # it ended with end of text (not cut at the limit)
    seconds: float  # its batch's time divided by the batch's rows


def decode(model, prompts: list[list[int]], *, eos_token_id: int, pad_token_id: int,
           max_new_tokens: int | list[int], batch_size: int, seeds: list[int] | None = None, temperature: float = 1.0,
           top_p: float = 1.0, progress=None) -> list[Decoded]:  # fmt: skip
    """Continue each prompt (token ids); `seeds` None means greedy, else one seed per prompt. `max_new_tokens`:
    one limit for all, or one per prompt (a row that reaches its own leaves the batch, as one that ends does).
    Prompts are sorted by length so that a batch pads little; results come back in the prompts' order. An
    `eos_token_id` no token has (-1) lets every answer run to its limit."""
    import torch

    limits = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
    if len(limits) != len(prompts) or (not isinstance(max_new_tokens, int) and min(limits, default=1) < 1):
        raise ValueError("max_new_tokens: one limit of at least 1 per prompt")
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: list[Decoded | None] = [None] * len(prompts)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        sampler = row_sampler([seeds[i] for i in rows], temperature, top_p) if seeds is not None else None
        longest = max(len(prompts[i]) for i in rows)
        ids = torch.tensor([[pad_token_id] * (longest - len(prompts[i])) + prompts[i] for i in rows])
        mask = (torch.arange(longest) >= torch.tensor([longest - len(prompts[i]) for i in rows]).unsqueeze(1)).long()
        began = time.perf_counter()
        with torch.no_grad():
            tokens, finished = _decode_batch(model, ids.to(model.device), mask.to(model.device),
                                             [limits[i] for i in rows], eos_token_id, sampler)  # fmt: skip
        seconds = (time.perf_counter() - began) / len(rows)
        for k, i in enumerate(rows):
            results[i] = Decoded(tokens[k], finished[k], seconds)
        if progress is not None:
            progress.update(len(rows))
    return results


def growing_cache(config):
    """A `DynamicCache` whose layers keep keys and values in buffers that double when full, instead of
    concatenating a step's keys and values onto all the earlier ones (a copy of the whole cache per layer and step:
    12% of the memorisation probe's time here, 5% of a batch-64 generation step). Only for `decode`: its layers
    keep rows (`batch_select_indices`) but do not crop or reorder for beam search."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        # the buffers (`held`: keys, values) and how many positions of them are in use; keys and values are views
        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
                self.used, self.held = 0, (key_states[..., :0, :], value_states[..., :0, :])
            used, new = self.used, key_states.shape[-2]
            if used + new > self.held[0].shape[-2]:
                room = max(2 * self.held[0].shape[-2], used + new, 64)
                self.held = tuple(self._grown(b, room) for b in self.held)
            self.held[0][..., used : used + new, :] = key_states
            self.held[1][..., used : used + new, :] = value_states
            self.used = used + new
            return self._views()

        def _grown(self, buffer, room: int):
            bigger = buffer.new_empty((*buffer.shape[:-2], room, buffer.shape[-1]))
            bigger[..., : self.used, :] = buffer[..., : self.used, :]
            return bigger

        def _views(self):
            self.keys, self.values = (b[..., : self.used, :] for b in self.held)
            return self.keys, self.values

        def batch_select_indices(self, indices) -> None:
            if self.is_initialized:
                self.held = tuple(b[indices, ...] for b in self.held)
                self._views()

    cache = DynamicCache(config=config)
    cache.layers = [GrowingLayer() if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


def _decode_batch(model, ids, mask, limits: list[int], eos: int, sampler) -> tuple[list[list[int]], list[bool]]:
    import torch

    cache = growing_cache(model.config)
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)  # as generate: pads at position 0, then 0, 1, ...
    live = torch.arange(len(ids), device=ids.device)  # the batch rows still being decoded
    tokens: list[list[int]] = [[] for _ in range(len(ids))]
    finished = [False] * len(ids)
    room = torch.tensor(limits, device=ids.device)  # tokens each live row may still add
    for _ in range(max(limits, default=0)):
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True,
                       logits_to_keep=1).logits[:, -1, :].float()  # fmt: skip
        chosen = logits.argmax(dim=-1) if sampler is None else sampler(logits, live)
        ended, room = chosen == eos, room - 1
        for row, token, end in zip(live.tolist(), chosen.tolist(), ended.tolist(), strict=True):
            if end:
                finished[row] = True
            else:
                tokens[row].append(token)
        leaving = ended | (room <= 0)
        if bool(leaving.any()):
            going = (~leaving).nonzero().squeeze(-1)
            if not len(going):
                break
            cache.batch_select_indices(going)
            live, chosen, mask, positions, room = (t[going] for t in (live, chosen, mask, positions, room))
        ids, positions = chosen.unsqueeze(-1), positions[:, -1:] + 1
        mask = torch.cat([mask, mask.new_ones(len(mask), 1)], dim=-1)
    return tokens, finished
