"""The causal-LM loss on target tokens only, with logits computed only where a target token is predicted.

transformers' own `model(..., labels=...).loss` computes the vocabulary logits at every position and then
ignores the prompt's. With a large vocabulary that head is most of the cost: Gemma 3's 262,144-entry
unembedding is 168M of its 270M parameters, so over a 112-token prompt whose answer is 2 tokens, ~98% of
the head's forward and backward work is thrown away. `logits_to_keep` (transformers' own argument) asks
the model for the last K positions only; with left padding the targets of every row sit at the end, so K
is the longest target plus one. The value is transformers' loss (the mean cross-entropy over the target
tokens, shifted by one), up to float rounding. Training (`govtune.training.loop`, the Trainer integration)
and LoRA-GA's gradient estimate (`govtune.adapters.lora_ga`) share it, so the gradient the adapter starts
from is the gradient of the loss it is then trained on."""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn

from govtune.text.encoding import IGNORE_INDEX


class TargetLoss:
    """Cross-entropy over the target tokens of a batch, computing logits only where a target token is
    predicted when the model supports `logits_to_keep` (targets sit at the end: left padding). Called, the
    mean and the count; `summed` gives the sum, which the loop divides by the step's global count."""

    def __init__(self, model: nn.Module):
        forward = inspect.signature(getattr(model, "forward")).parameters
        self.positions = "position_ids" in forward
        self.keep = "logits_to_keep" in forward

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        loss, n = self.summed(model, batch)
        return loss / n.clamp(min=1), n

    def summed(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(sum of the target tokens' cross-entropy, number of target tokens)."""
        labels = batch["labels"]
        kwargs = {"input_ids": batch["input_ids"]}
        if "attention_mask" in batch:
            kwargs["attention_mask"] = batch["attention_mask"]
        if self.positions and "position_ids" in batch:
            kwargs["position_ids"] = batch["position_ids"]
        width = labels.shape[1]
        if self.keep:
            has = labels != IGNORE_INDEX
            first = int(has.float().argmax(dim=1)[has.any(dim=1)].min()) if has.any() else width - 1
            kwargs["logits_to_keep"] = max(width - first + 1, 2)  # from the token before the first target
        logits = model(**kwargs).logits  # (B, K, V), K <= T: the last K positions
        k = logits.shape[1]
        target = labels[:, width - k + 1:]  # logits at t predict token t + 1
        loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), target.reshape(-1),
                               ignore_index=IGNORE_INDEX, reduction="sum")
        return loss, (target != IGNORE_INDEX).sum()
