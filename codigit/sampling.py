"""Seeded top-p sampling for batched generation: each row draws from its own generator, so a conversation's
answer is the same whatever the batch it is generated in (`codigit generate`, memorisation of texts)."""

from __future__ import annotations


def nucleus_sample(probs, draw, top_p: float):
    """One token per row of `probs` (rows sum to 1) from its top-p nucleus; `draw(rows)` gives a float64 uniform in
    [0, 1) for each of those rows, from that row's own generator. The nucleus is every token at least as likely as
    the least likely token that the smallest set reaching `top_p` needs (ties all in). A token is drawn from the
    whole row by inverse CDF in vocabulary order (float64 sums) and drawn again while outside the nucleus
    (rejection: exactly the renormalised nucleus, ~1 / top_p draws). So a row's token depends on that row alone;
    and when a row's logits differ in their last bits between batch sizes, the token changes only if a draw
    lands on the nucleus edge (renormalising by the nucleus' own mass would pass every edge change on to every
    draw). Finding the edge sorts only each row's top k tokens, k grown until every nucleus fits: a trained
    model's nucleus is a few hundred of 128k, and sorting 64 rows of 128k took ~380 ms here, four times a whole
    greedy step of the small benchmark model."""
    import torch

    floor, vocab, k = None, probs.shape[-1], 256
    while top_p < 1.0:
        k = min(k, vocab)
        top = probs.topk(k, dim=-1).values if k < vocab else probs.sort(dim=-1, descending=True).values
        before = top.double().cumsum(dim=-1) - top  # the mass of the tokens ranked above each
        floor = top.masked_fill(before >= top_p, float("inf")).min(dim=-1).values
        if k == vocab or bool((top[:, -1] < floor).all()):  # every nucleus ends inside the k, ties included
            break
        k = 4096 if k < 4096 else vocab  # beyond a few thousand, sorting the whole row costs no more
    cdf = probs.double().cumsum(dim=-1)
    chosen = torch.zeros(len(probs), dtype=torch.long, device=probs.device)
    pending = torch.arange(len(probs), device=probs.device)
    while len(pending):
        target = draw(pending.tolist()).to(cdf.device) * cdf[pending, -1]
        # the first token whose CDF reaches u * mass; above 0, so never a token of probability 0
        pick = torch.searchsorted(cdf[pending], target.clamp(min=torch.finfo(cdf.dtype).tiny).unsqueeze(-1))
        chosen[pending] = pick.squeeze(-1)
        if floor is None:
            break
        pending = pending[probs[pending, chosen[pending]] < floor[pending]]
    return chosen


def row_sampler(seeds: list[int], temperature: float, top_p: float):
    """A logits processor that samples each row with its own generator and leaves only that token possible."""
    import torch
    from transformers import LogitsProcessor

    class RowSampler(LogitsProcessor):
        def __init__(self):
            self.generators = [torch.Generator().manual_seed(s) for s in seeds]

        def draw(self, rows: list[int]):
            return torch.cat([torch.rand(1, generator=self.generators[i], dtype=torch.float64) for i in rows])

        def __call__(self, input_ids, scores):
            probs = torch.softmax(scores.float() / temperature, dim=-1)
            chosen = nucleus_sample(probs, self.draw, top_p)
            forced = torch.full_like(scores, float("-inf"))
            forced[torch.arange(len(chosen)), chosen] = 0.0
            return forced

    return RowSampler()
