"""(prompt, target) pairs -> padded batches whose labels cover the target tokens only.

The prompt is encoded without special tokens at its end (a byte tokenizer would otherwise put EOS between
prompt and answer); the target follows directly and ends with EOS, so the model learns to stop. Prompt
positions get label -100, which `transformers`' causal-LM loss ignores."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase


@dataclass
class EncodedPair:
    input_ids: list[int]
    labels: list[int]


def _bos(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    # Only for tokenizers that put BOS in front on their own (Llama-2 style); SmolLM2 and ByT5 do not.
    if tokenizer.bos_token_id is not None and getattr(tokenizer, "add_bos_token", False):
        return [tokenizer.bos_token_id]
    return []


def encode_pair(tokenizer: PreTrainedTokenizerBase, prompt: str, target: str, max_length: int,
                add_eos: bool = True) -> EncodedPair:
    """Token ids of prompt + target, labels -100 on the prompt; over-long prompts lose their start (the
    instruction and answer cue sit at the end of govtune's templates), the target is never cut first."""
    p = _bos(tokenizer) + tokenizer(prompt, add_special_tokens=False)["input_ids"]
    t = tokenizer(target, add_special_tokens=False)["input_ids"]
    if add_eos and tokenizer.eos_token_id is not None:
        t = t + [tokenizer.eos_token_id]
    t = t[:max_length - 1]
    keep = max_length - len(t)
    if len(p) > keep:
        p = p[len(p) - keep:]
    return EncodedPair(p + t, [-100] * len(p) + t)


def encode_pairs(tokenizer: PreTrainedTokenizerBase, pairs: list[tuple[str, str]], max_length: int
                 ) -> list[EncodedPair]:
    return [encode_pair(tokenizer, p, t, max_length) for p, t in pairs]


class PairCollator:
    """Right-pads a list of EncodedPair to the longest in the batch."""

    def __init__(self, pad_token_id: int):
        self.pad = pad_token_id

    def __call__(self, batch: list[EncodedPair]) -> dict[str, torch.Tensor]:
        n = max(len(e.input_ids) for e in batch)
        ids = torch.full((len(batch), n), self.pad, dtype=torch.long)
        labels = torch.full((len(batch), n), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), n), dtype=torch.long)
        for i, e in enumerate(batch):
            ids[i, :len(e.input_ids)] = torch.tensor(e.input_ids)
            labels[i, :len(e.labels)] = torch.tensor(e.labels)
            mask[i, :len(e.input_ids)] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    if tokenizer.pad_token_id is not None:
        return tokenizer.pad_token_id
    if tokenizer.eos_token_id is not None:
        return tokenizer.eos_token_id
    raise ValueError("the tokenizer has neither a pad nor an eos token; set tokenizer.pad_token first")
