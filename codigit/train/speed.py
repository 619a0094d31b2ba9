"""Speed-ups for packed LoRA training that leave the objective as it is: the recipe keys `attn_implementation:
codigit_packed` and `fast_lora_dropout: true`.

Packed attention. With padding-free packing a row holds several conversations; transformers' `sdpa` path turns
their position_ids into one dense block-diagonal mask over the whole row, and PyTorch's CPU flash kernel then
scores every (query, key) pair of the row, masked or not, and cannot skip the causal upper half. TRL's collator
already hands the model each conversation's boundaries (`cu_seq_lens_q`, as flash-attention varlen uses them);
here attention runs once per conversation with `is_causal=True`, which computes only what the mask would keep.
Measured on SmolLM2-135M (1024-token rows, fwd+bwd): about 2.3x less attention time.

LoRA dropout. PEFT's `nn.Dropout` draws one random number per element of the layer's input (q/k/v/o: 120 masks of
1024 x 576 per row here), ~8% of a CPU step. `gap_dropout_mask` draws the same distribution (every element dropped
independently with probability p, the rest scaled by 1/(1-p)) from the gaps between dropped elements, which are
geometric: ~p as many random numbers. Same objective, a different random stream than PEFT's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

PACKED_ATTENTION = "codigit_packed"  # a ModelConfig `attn_implementation` value


def packed_sdpa_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-interface signature. One packed row with the collator's boundaries (all of its
    tokens, no cache) runs per conversation; anything else (padded batches, generation with a cache) goes to
    transformers' own sdpa, which reads the mask."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    bounds = kwargs.get("cu_seq_lens_q")
    length = query.shape[2]
    if (
        bounds is None
        or query.shape[0] != 1
        or key.shape[2] != length
        or int(bounds[-1]) != length
        or not getattr(module, "is_causal", True)
    ):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    gqa = query.shape[1] != key.shape[1]
    edges = bounds.tolist()
    outs = [
        torch.nn.functional.scaled_dot_product_attention(
            query[:, :, a:b], key[:, :, a:b], value[:, :, a:b], dropout_p=dropout, scale=scaling, is_causal=True,
            enable_gqa=gqa,
        )
        for a, b in zip(edges[:-1], edges[1:], strict=True)
        if b > a
    ]  # fmt: skip
    out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)
    return out.transpose(1, 2).contiguous(), None


def register_packed_attention() -> None:
    """Make `attn_implementation: codigit_packed` loadable: the attention above, and sdpa's mask (still built for
    the fallback; the per-conversation path does not read it). Idempotent."""
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    AttentionInterface.register(PACKED_ATTENTION, packed_sdpa_forward)
    AttentionMaskInterface.register(PACKED_ATTENTION, sdpa_mask)


def gap_dropout_mask(shape: torch.Size, p: float, dtype: torch.dtype, device) -> torch.Tensor:
    """A dropout mask (0 with probability p, else 1/(1-p), independently per element) drawn from the geometric
    gaps between zeros: the same distribution as `torch.bernoulli`, ~p*n random numbers instead of n."""
    import torch

    n = shape.numel()
    mask = torch.full(shape, 1.0 / (1.0 - p), dtype=dtype, device=device)
    flat, start = mask.view(-1), 0
    while True:  # a second round only when n*p + 8 standard deviations of draws fall short (vanishingly rare)
        draws = int(n * p + 8 * (n * p * (1 - p)) ** 0.5) + 16
        # geometric_ counts trials up to and including the first success: gaps of >= 1, positions from start
        positions = torch.empty(draws, dtype=torch.float64).geometric_(p).cumsum_(0).add_(start - 1)
        inside = positions[positions < n].to(torch.long)
        flat[inside.to(device)] = 0
        if len(inside) < draws:
            return mask
        start = int(positions[-1]) + 1


def gap_dropout_module(p: float) -> torch.nn.Module:
    """An `nn.Module` that behaves as `nn.Dropout(p)` (training only, the same distribution) with the mask drawn by
    `gap_dropout_mask`. The class is built here so that importing this module does not import torch."""
    import torch

    class _GapDropout(torch.nn.Module):
        def __init__(self, p: float) -> None:
            super().__init__()
            self.p = p

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if not self.training or self.p == 0:
                return x
            return x * gap_dropout_mask(x.shape, self.p, x.dtype, x.device)

        def extra_repr(self) -> str:
            return f"p={self.p}"

    return _GapDropout(p)


def use_gap_dropout(model: torch.nn.Module) -> int:
    """Swap every PEFT LoRA dropout (`lora_dropout[adapter]`, an `nn.Dropout`) for the gap-sampled one with the same
    p; returns how many were swapped. The adapter's config (and what PEFT saves) is unchanged."""
    import torch

    swapped = 0
    for module in model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if not isinstance(dropouts, torch.nn.ModuleDict):
            continue
        for name, layer in dropouts.items():
            if type(layer) is torch.nn.Dropout and 0 < layer.p < 1:
                replacement = gap_dropout_module(layer.p)
                replacement.train(layer.training)
                dropouts[name] = replacement
                swapped += 1
    return swapped
