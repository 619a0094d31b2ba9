"""Seeded top-p sampling for batched generation: each row draws from its own generator, so a conversation's
answer is the same whatever the batch it is generated in (`codigit generate`, memorisation of texts)."""

from __future__ import annotations


def nucleus_sample(probs, draw, top_p: float, cdf=None):
    """One token per row of `probs` (rows sum to 1) from its top-p nucleus; `draw(rows)` gives a float64 uniform in
    [0, 1) for each of those rows, from that row's own generator. The nucleus is every token at least as likely as
    the least likely token that the smallest set reaching `top_p` needs (ties all in). A token is drawn from the
    whole row by inverse CDF in vocabulary order (float64 sums) and drawn again while outside the nucleus
    (rejection: exactly the renormalised nucleus, ~1 / top_p draws). So a row's token depends on that row alone;
    and when a row's logits differ in their last bits between batch sizes, the token changes only if a draw
    lands on the nucleus edge (renormalising by the nucleus' own mass would pass every edge change on to every
    draw). Finding the edge sorts only each row's top k tokens, k grown for the rows whose nucleus does not
    fit (a row's edge is the same whatever k found it): a trained model's nucleus is a few hundred of 128k, and
    sorting 64 rows of 128k took ~380 ms here, four times a whole greedy step of the small benchmark model.
    `cdf`: a float64 buffer of at least `probs`' shape to sum into (`row_sampler` keeps one)."""
    import torch

    floor, vocab, k = None, probs.shape[-1], 256
    if top_p < 1.0:
        floor = torch.empty(len(probs), dtype=probs.dtype, device=probs.device)
        wider = torch.arange(len(probs), device=probs.device)  # rows whose nucleus may not fit in the top k yet
        while len(wider):
            k, rows = min(k, vocab), probs if len(wider) == len(probs) else probs[wider]  # every row: no copy
            top = rows.topk(k, dim=-1).values if k < vocab else rows.sort(dim=-1, descending=True).values
            before = top.double().cumsum(dim=-1) - top  # the mass of the tokens ranked above each
            floor[wider] = top.masked_fill(before >= top_p, float("inf")).min(dim=-1).values
            if k == vocab:
                break
            wider = wider[top[:, -1] >= floor[wider]]  # the nucleus (ties included) may go on past the k
            k = 4096 if k < 4096 else vocab  # beyond a few thousand, sorting the whole row costs no more
    cdf = torch.cumsum(probs, dim=-1, dtype=torch.float64, out=None if cdf is None else cdf[: len(probs)])
    chosen = torch.zeros(len(probs), dtype=torch.long, device=probs.device)
    target = torch.zeros(len(probs), dtype=torch.float64, device=probs.device)
    pending = torch.arange(len(probs), device=probs.device)
    while len(pending):
        target[pending] = draw(pending.tolist()).to(cdf.device) * cdf[pending, -1]
        # the first token whose CDF reaches u * mass; above 0, so never a token of probability 0. Searched in
        # every row (a few dozen binary searches) rather than copying the pending rows' CDFs out.
        pick = torch.searchsorted(cdf, target.clamp(min=torch.finfo(cdf.dtype).tiny).unsqueeze(-1)).squeeze(-1)
        chosen[pending] = pick[pending]
        if floor is None:
            break
        pending = pending[probs[pending, chosen[pending]] < floor[pending]]
    return chosen


def row_sampler(seeds: list[int], temperature: float, top_p: float):
    """`sample(logits, rows)`: one token per row of `logits`, the row of batch position `rows[i]` drawing from the
    generator seeded with `seeds[rows[i]]` (rows leave a batch as their answers end; `decoding.decode`)."""
    import torch

    generators = [torch.Generator().manual_seed(s) for s in seeds]
    # the float64 CDFs go into one buffer for every step: allocating it anew (25 MB at 64 x 49k) cost more here
    # than the sums themselves (benchmarks/generation.py --sampled: 40 ms a step, now 12)
    cdf = None

    def sample(logits, rows):
        positions = rows.tolist()

        def draw(which: list[int]):
            return torch.cat([torch.rand(1, generator=generators[positions[i]], dtype=torch.float64) for i in which])

        nonlocal cdf
        if cdf is None or cdf.shape[0] < len(logits) or cdf.shape[1] != logits.shape[1]:
            cdf = torch.empty(logits.shape, dtype=torch.float64, device=logits.device)
        return nucleus_sample(torch.softmax(logits.float() / temperature, dim=-1), draw, top_p, cdf)

    return sample
