"""Token ids of (prompt, target) pairs and padded batches of them: the one encoding that training and
evaluation share, so a model is trained on exactly the token sequence it is later scored on.

Encoding follows lm-evaluation-harness: prompt and target are tokenised jointly and the target is whatever
the joint encoding adds after the longest prefix shared with the prompt alone, so a token that merges
across the boundary belongs to the target. The tokenizer's own leading special tokens (BOS) come first;
an EOS is never put between prompt and target.

Padding is done here, not by the tokenizer, so that the same code serves left and right padding with
explicit attention masks and position ids counted over real tokens. Left padding puts every target at the
end of its row: the model then needs logits only for the last few positions (`logits_to_keep`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

IGNORE_INDEX = -100  # label of the prompt and of the pads: transformers' causal-LM loss skips it


def special_prefix(tokenizer) -> list[int]:
    """Tokens the tokenizer puts before any text (BOS for Llama-style models; none for ByT5/SmolLM2).

    Found by encoding with and without special tokens, since tokenizers add BOS and EOS inconsistently
    (ByT5 appends EOS, which must never sit between a prompt and its continuation)."""
    with_sp = tokenizer.encode("a", add_special_tokens=True)
    without = tokenizer.encode("a", add_special_tokens=False)
    for i in range(len(with_sp) - len(without) + 1):
        if with_sp[i:i + len(without)] == without:
            return list(with_sp[:i])
    return []


def _lcp(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def encode_pair(tokenizer, context: str, continuation: str, prefix: list[int] | None = None
                ) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) of `context + continuation` tokenised jointly."""
    if not continuation:
        raise ValueError("empty continuation: every scored label needs at least one character")
    prefix = special_prefix(tokenizer) if prefix is None else prefix
    whole = tokenizer.encode(context + continuation, add_special_tokens=False)
    alone = tokenizer.encode(context, add_special_tokens=False)
    k = min(_lcp(whole, alone), len(whole) - 1)
    ctx = prefix + whole[:k]
    if not ctx:
        raise ValueError("empty context: the prompt must not be empty (nothing to condition the first token on)")
    return ctx, whole[k:]


@dataclass
class EncodedPair:
    input_ids: list[int]
    labels: list[int]


def encode_training_pair(tokenizer, prompt: str, target: str, max_length: int, add_eos: bool = False,
                         prefix: list[int] | None = None) -> EncodedPair:
    """Token ids of prompt + target (`encode_pair`), labels IGNORE_INDEX on the prompt. An over-long example
    loses the start of its prompt (the question and answer cue sit at the end of govtune's templates), never
    the target first; the leading special tokens are kept. The targets end themselves (an XNLI label word,
    a FLORES line ending in the newline at which generation stops), so no EOS is appended by default."""
    prefix = special_prefix(tokenizer) if prefix is None else prefix
    p, t = encode_pair(tokenizer, prompt, target, prefix=prefix)
    p = p[len(prefix):]
    if add_eos and tokenizer.eos_token_id is not None:
        t = t + [tokenizer.eos_token_id]
    t = t[:max(max_length - len(prefix) - 1, 1)]
    keep = max(max_length - len(prefix) - len(t), 1)
    if len(p) > keep:
        p = p[len(p) - keep:]
    p = prefix + p
    return EncodedPair(p + t, [IGNORE_INDEX] * len(p) + t)


def encode_training_pairs(tokenizer, pairs: Sequence[tuple[str, str]], max_length: int) -> list[EncodedPair]:
    prefix = special_prefix(tokenizer)
    return [encode_training_pair(tokenizer, p, t, max_length, prefix=prefix) for p, t in pairs]


def pad_token_id(tokenizer) -> int:
    """The tokenizer's pad token, else its EOS, else 0. Pads are masked out of attention and carry no
    label, so any id in the vocabulary gives the same results; 0 is in every vocabulary."""
    for tid in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    return 0


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int, side: str
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask, position_ids), padded on `side` ("left" or "right")."""
    if side not in ("left", "right"):
        raise ValueError(f"padding side must be 'left' or 'right', got {side!r}")
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        sl = slice(width - len(s), width) if side == "left" else slice(0, len(s))
        ids[i, sl] = torch.tensor(s, dtype=torch.long)
        mask[i, sl] = 1
    # Real tokens get positions 0..len-1 whatever the padding; pads get 0 (masked anyway).
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, pos


class PairCollator:
    """Pads a list of EncodedPair to the longest in the batch (`pad_batch`), on the left by default, with
    labels IGNORE_INDEX on the pads.

    Left padding puts every target at the end of its row, so the loss needs logits only for the last few
    positions: for XNLI's one-word targets that skips the vocabulary projection of almost every token, the
    largest single cost for big-vocabulary models (BLOOM: 250k)."""

    def __init__(self, pad_id: int, side: str = "left"):
        if side not in ("left", "right"):
            raise ValueError(f"padding side must be 'left' or 'right', got {side!r}")
        self.pad = pad_id
        self.side = side

    def __call__(self, batch: Sequence[EncodedPair]) -> dict[str, torch.Tensor]:
        ids, mask, positions = pad_batch([e.input_ids for e in batch], self.pad, self.side)
        labels, _, _ = pad_batch([e.labels for e in batch], IGNORE_INDEX, self.side)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels, "position_ids": positions}
