"""The causal-LM loss on target tokens only, with logits computed only where a target token is predicted.

transformers' own `model(..., labels=...).loss` computes the vocabulary logits at every position and then
ignores the prompt's. With a large vocabulary that head is most of the cost: Gemma 3's 262,144-entry
unembedding is 168M of its 270M parameters, so over a 112-token prompt whose answer is 2 tokens, ~98% of
the head's forward and backward work is thrown away. Two cuts, both exact:

- `logits_to_keep` (transformers' own argument) asks the model for the last K positions only; with left
  padding the targets of every row sit at the end, so K is the longest target plus one.
- Within those K positions a batch that mixes a 50-token translation with one-token class labels still
  keeps K positions of every row. A forward pre-hook on the output embedding (the head) hands it only the
  hidden states of the positions that predict a target token, packed into one row: on the demo's training
  batches 1,116 of 3,376 kept positions, a third of the head's work. Whatever the model applies after the
  head (Gemma's logit soft-capping) is elementwise, so each selected position gets the logits it would
  have had. A model whose head the hook does not see (no `get_output_embeddings`, or a head called on other
  shapes) keeps the K positions.

The value is transformers' loss (the mean cross-entropy over the target tokens, shifted by one), up to
float rounding. Training (`govtune.training.loop`, the Trainer integration) and LoRA-GA's gradient estimate
(`govtune.adapters.lora_ga`) share it, so the gradient the adapter starts from is the gradient of the loss
it is then trained on."""

from __future__ import annotations

import inspect
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from govtune.text.encoding import IGNORE_INDEX


class TargetLoss:
    """Cross-entropy over the target tokens of a batch, computing logits only where a target token is
    predicted: the last K positions when the model supports `logits_to_keep` (targets sit at the end: left
    padding), and of those only the positions before a target when the head is an `nn.Module` the model
    calls on them. Called, the mean and the count; `summed` gives the sum, which the loop divides by the
    step's global count."""

    def __init__(self, model: nn.Module):
        forward = inspect.signature(getattr(model, "forward")).parameters
        self.positions = "position_ids" in forward
        self.keep = "logits_to_keep" in forward
        self.head = output_head(model)

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
        has = labels != IGNORE_INDEX
        if self.keep:
            first = int(has.float().argmax(dim=1)[has.any(dim=1)].min()) if has.any() else width - 1
            kwargs["logits_to_keep"] = max(width - first + 1, 2)  # from the token before the first target
        # predicts[b, t]: the logit at t is scored (it predicts the target token t + 1)
        predicts = torch.cat([has[:, 1:], torch.zeros_like(has[:, :1])], dim=1)
        packed = _PackedHead(self.head, predicts) if self.head is not None else None
        with packed if packed is not None else nullcontext():
            logits = model(**kwargs).logits
        if packed is not None and packed.fired:
            if logits.shape[:2] != (1, packed.rows):
                raise RuntimeError(f"{type(model).__name__} changed the shape of its head's output "
                                   f"({tuple(logits.shape)} from {packed.rows} positions): TargetLoss cannot "
                                   f"match its logits to the targets")
            target = torch.cat([labels[:, 1:], torch.full_like(labels[:, :1], IGNORE_INDEX)], dim=1)[predicts]
            loss = F.cross_entropy(logits[0].float(), target, reduction="sum")
            return loss, target.new_tensor(target.numel())
        k = logits.shape[1]  # (B, K, V), K <= T: the last K positions
        target = labels[:, width - k + 1:]  # logits at t predict token t + 1
        loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), target.reshape(-1),
                               ignore_index=IGNORE_INDEX, reduction="sum")
        return loss, (target != IGNORE_INDEX).sum()


def output_head(model: nn.Module) -> nn.Module | None:
    """The module a causal LM computes its logits with (`get_output_embeddings`), or None when it has none."""
    get = getattr(model, "get_output_embeddings", None)
    head = get() if callable(get) else None
    return head if isinstance(head, nn.Module) else None


class _PackedHead:
    """While active, the head's input (B, K, H) becomes (1, N, H): the hidden states of the N positions whose
    logit is scored, in row-major order (the order of `target[predicts]`). Any other call passes through."""

    def __init__(self, head: nn.Module, predicts: torch.Tensor):
        self.head, self.predicts = head, predicts
        self.rows, self.fired, self.handle = int(predicts.sum()), False, None

    def _select(self, module, args):
        hidden = args[0] if args else None
        b, width = self.predicts.shape
        if self.fired or not torch.is_tensor(hidden) or hidden.dim() != 3 or hidden.shape[0] != b \
                or hidden.shape[1] > width:
            return None
        self.fired = True
        k = hidden.shape[1]  # the last k positions of the row
        return (hidden[self.predicts[:, width - k:].to(hidden.device)].unsqueeze(0), *args[1:])

    def __enter__(self):
        self.handle = self.head.register_forward_pre_hook(self._select)
        return self

    def __exit__(self, *exc):
        self.handle.remove()
        return False

