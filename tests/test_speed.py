"""codigit/train/speed.py: attention per packed conversation and gap-sampled LoRA dropout leave the objective as it
is. Real models (the tiny Llama of the `world` fixture, conftest), real releases, no mocks."""

from __future__ import annotations

import json

import pytest
from conftest import recipe

torch = pytest.importorskip("torch")


def _sdpa_calls(fn) -> tuple[object, int]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        out = fn()
    return out, sum(e.count for e in prof.key_averages() if e.key == "aten::scaled_dot_product_attention")


def test_packed_attention_gives_sdpas_loss_and_gradients_one_conversation_at_a_time(world):
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from codigit.train.loss import causal_lm, label_only_loss
    from codigit.train.run import prepare
    from codigit.train.speed import PACKED_ATTENTION

    p = prepare(recipe(world, "packed-attention", attn_implementation=PACKED_ATTENTION))
    # eval: no LoRA dropout, so both passes see the same weights; gradients are computed all the same
    model, rows = p.trainer.model.eval(), [p.trainer.train_dataset[i] for i in range(6)]
    config = causal_lm(model).config
    assert config._attn_implementation == PACKED_ATTENTION
    collate = DataCollatorForLanguageModeling(pad_token_id=p.tokenizer.pad_token_id, padding_free=True)
    packed = collate(rows)
    assert len(packed["cu_seq_lens_q"]) == 7  # six conversations in one row
    results = {}
    for attention in (PACKED_ATTENTION, "sdpa"):
        config._attn_implementation = attention
        model.zero_grad()
        loss, calls = _sdpa_calls(lambda: label_only_loss(model, dict(packed), 1024))
        loss.backward()
        grads = {n: q.grad.clone() for n, q in model.named_parameters() if q.requires_grad}
        results[attention] = loss.item(), grads, calls
    layers = config.num_hidden_layers
    assert results[PACKED_ATTENTION][2] == 6 * layers and results["sdpa"][2] == layers  # per conversation vs one
    assert results[PACKED_ATTENTION][0] == pytest.approx(results["sdpa"][0], rel=1e-6)
    for name, grad in results["sdpa"][1].items():
        torch.testing.assert_close(results[PACKED_ATTENTION][1][name], grad, rtol=1e-4, atol=1e-6)
    # a padded batch has no boundaries: it goes through transformers' sdpa with its mask, the same number
    config._attn_implementation = PACKED_ATTENTION
    padded = DataCollatorForLanguageModeling(pad_token_id=p.tokenizer.pad_token_id)(rows)
    with torch.no_grad():
        assert model(**padded, use_cache=False).loss.item() == pytest.approx(results["sdpa"][0], rel=1e-5)


def test_gap_dropout_mask_has_dropouts_distribution():
    from codigit.train.speed import gap_dropout_mask, gap_dropout_module

    torch.manual_seed(0)
    p, n = 0.05, 400_000
    mask = gap_dropout_mask(torch.Size([n]), p, torch.float32, "cpu")
    zeros = mask == 0
    assert mask.unique().tolist() == pytest.approx([0.0, 1 / (1 - p)])
    assert abs(zeros.float().mean().item() - p) < 5 * (p * (1 - p) / n) ** 0.5  # 5 standard deviations
    pairs = (zeros[:-1] & zeros[1:]).float().mean().item()  # independent neighbours: p^2
    assert abs(pairs - p * p) < 5 * (p * p / n) ** 0.5
    assert (gap_dropout_mask(torch.Size([3, 5]), 0.999, torch.float32, "cpu") == 0).sum() >= 12  # several rounds
    layer, x = gap_dropout_module(p), torch.randn(64, 32)
    assert torch.equal(layer.eval()(x), x)  # as nn.Dropout: identity outside training


@pytest.mark.slow
def test_a_packed_run_with_both_speedups_trains_and_saves_an_ordinary_adapter(world):
    from peft import PeftConfig

    from codigit.train.run import prepare, train
    from codigit.train.speed import PACKED_ATTENTION

    keys = {"attn_implementation": PACKED_ATTENTION, "fast_lora_dropout": True, "packing": True,
            "padding_free": True, "per_device_train_batch_size": 1, "max_steps": 3, "merge": True}  # fmt: skip
    p = prepare(recipe(world, "speedups-swapped", **keys))
    swapped = [m for m in p.trainer.model.modules() if type(m).__name__ == "_GapDropout"]
    assert len(swapped) == 2 * world_layers(world) and all(m.p == 0.05 for m in swapped)  # q_proj and v_proj
    run = train(recipe(world, "speedups", **keys))
    losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 3 and all(loss == loss and loss > 0 for loss in losses)
    assert PeftConfig.from_pretrained(run / "adapter").lora_dropout == 0.05  # what PEFT saves is unchanged
    assert PACKED_ATTENTION not in (run / "merged" / "config.json").read_text()  # loads anywhere, without codigit


def world_layers(world: dict) -> int:
    return json.loads((world["model"] / "config.json").read_text())["num_hidden_layers"]
