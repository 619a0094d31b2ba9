"""A loss computed on the label positions only, in small chunks: the same number as the model's own loss.

A causal LM's loss normally projects every position through the LM head (a vocabulary-wide matmul: 128k columns
for Llama-3) and then ignores the prompt, header and padding positions. With short prompts and assistant-only
loss most positions are still scored for nothing, and on CPU the fp32 logits tile dominates a small model's
step. Here the backbone runs as usual, the hidden states of positions whose next token is a label are gathered,
and only those go through the LM head, a chunk at a time so the fp32 logits never exist for the whole batch.

Calling the decoder directly skips whatever wraps the model's forward: DDP's forward arms its gradient averaging,
FSDP's gathers the sharded parameters, DeepSpeed's does both. So the label-only loss runs only on an unwrapped
model in one process; anywhere else the trainer uses TRL's own loss (same number, more compute).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from accelerate.utils import DistributedType
from trl import SFTTrainer

_LOGGER = logging.getLogger("codigit.train")


def causal_lm(model):
    """The `...ForCausalLM` inside a PEFT model (LoRA layers stay in place inside it). Deliberately not through a
    DDP / FSDP / DeepSpeed / compile wrapper: see the module doc."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def label_only_loss(model, inputs: dict, chunk: int, num_items_in_batch=None) -> torch.Tensor:
    lm = causal_lm(model)
    labels = inputs["labels"]
    kwargs = {k: v for k, v in inputs.items() if k != "labels"}
    hidden = lm.get_decoder()(**kwargs, use_cache=False).last_hidden_state
    head = lm.get_output_embeddings()
    targets = labels[:, 1:]
    keep = targets != -100
    states, targets = hidden[:, :-1][keep], targets[keep]
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, targets.numel(), chunk):
        logits = head(states[start : start + chunk]).float()
        total = total + F.cross_entropy(logits, targets[start : start + chunk], reduction="sum")
    count = num_items_in_batch if num_items_in_batch is not None else keep.sum()
    return total / count.to(total.device) if torch.is_tensor(count) else total / count


class LabelOnlyLossSFTTrainer(SFTTrainer):
    """SFTTrainer whose loss scores label positions only (see module doc); everything else is TRL's."""

    loss_chunk_tokens = 1024
    label_only_off: str | None = None  # why TRL's own loss is used instead (set on the first step that needs it)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # evaluation paths that want logits, and wrapped models (see the module doc), get TRL's own loss
        if return_outputs or self._wrapped(model):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        # the backbone is called directly, not through the forward that accelerate wraps in autocast: enter the
        # mixed-precision context here (bf16 matmuls are ~8x fp32 on a CPU with AMX)
        with self.accelerator.autocast():
            loss = label_only_loss(model, inputs, self.loss_chunk_tokens, num_items_in_batch)
        # private: listed in codigit/upstream.py
        if model.training:  # the input-token count TRL's own compute_loss keeps for its `num_tokens` log
            if "attention_mask" in inputs:
                self._total_train_tokens += int(inputs["attention_mask"].sum())
            else:
                self._total_train_tokens += inputs["position_ids"].size(1)
            self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
        return loss

    def _wrapped(self, model) -> bool:
        if self.accelerator.distributed_type == DistributedType.NO and model is self.model:
            return False
        if self.label_only_off is None:
            kind = self.accelerator.distributed_type.value
            self.label_only_off = f"the model runs wrapped ({type(model).__name__}, {kind})"
            if self.accelerator.is_main_process:
                _LOGGER.warning("label_only_loss is off: %s; TRL's own loss keeps the wrapper", self.label_only_off)
        return True
