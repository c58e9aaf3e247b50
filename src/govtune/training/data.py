"""(prompt, target) pairs -> padded batches whose labels cover the target tokens only.

Encoding is the evaluator's (`govtune.evaluation.scoring.encode_pair`): prompt and target tokenised jointly,
the target being what the joint encoding adds after the prompt, with the tokenizer's own leading special
tokens (BOS) and never an EOS between prompt and answer. So the model is trained on exactly the token
sequence it is later scored on. The targets end themselves (an XNLI label word, a FLORES line ending in the
newline at which generation stops), so no EOS is appended by default. Prompt positions get label -100,
which `transformers`' causal-LM loss ignores."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase


@dataclass
class EncodedPair:
    input_ids: list[int]
    labels: list[int]


def encode_pair(tokenizer: PreTrainedTokenizerBase, prompt: str, target: str, max_length: int,
                add_eos: bool = False, prefix: list[int] | None = None) -> EncodedPair:
    """Token ids of prompt + target, labels -100 on the prompt. An over-long example loses the start of
    its prompt (the question and answer cue sit at the end of govtune's templates), never the target
    first; the leading special tokens are kept."""
    from govtune.evaluation.scoring import encode_pair as joint_encode
    from govtune.evaluation.scoring import special_prefix

    prefix = special_prefix(tokenizer) if prefix is None else prefix
    p, t = joint_encode(tokenizer, prompt, target, prefix=prefix)
    p = p[len(prefix):]
    if add_eos and tokenizer.eos_token_id is not None:
        t = t + [tokenizer.eos_token_id]
    t = t[:max(max_length - len(prefix) - 1, 1)]
    keep = max(max_length - len(prefix) - len(t), 1)
    if len(p) > keep:
        p = p[len(p) - keep:]
    p = prefix + p
    return EncodedPair(p + t, [-100] * len(p) + t)


def encode_pairs(tokenizer: PreTrainedTokenizerBase, pairs: list[tuple[str, str]], max_length: int
                 ) -> list[EncodedPair]:
    from govtune.evaluation.scoring import special_prefix

    prefix = special_prefix(tokenizer)
    return [encode_pair(tokenizer, p, t, max_length, prefix=prefix) for p, t in pairs]


class PairCollator:
    """Pads a list of EncodedPair to the longest in the batch, on the left by default.

    Left padding puts every target at the end of its row, so the loss needs logits only for the last few
    positions (`logits_to_keep`): for XNLI's one-word targets that skips the vocabulary projection of
    almost every token, the largest single cost for big-vocabulary models (BLOOM: 250k). Position ids are
    given explicitly so that padding does not shift positions."""

    def __init__(self, pad_token_id: int, side: str = "left"):
        if side not in ("left", "right"):
            raise ValueError(f"padding side must be 'left' or 'right', got {side!r}")
        self.pad = pad_token_id
        self.side = side

    def __call__(self, batch: list[EncodedPair]) -> dict[str, torch.Tensor]:
        n = max(len(e.input_ids) for e in batch)
        ids = torch.full((len(batch), n), self.pad, dtype=torch.long)
        labels = torch.full((len(batch), n), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), n), dtype=torch.long)
        for i, e in enumerate(batch):
            sl = slice(n - len(e.input_ids), n) if self.side == "left" else slice(0, len(e.input_ids))
            ids[i, sl] = torch.tensor(e.input_ids)
            labels[i, sl] = torch.tensor(e.labels)
            mask[i, sl] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels, "position_ids": positions}


class LengthGroupedBatches:
    """Seeded batches of similar lengths: shuffle, sort within windows of `group` batches, shuffle the
    batches (the idea of transformers' LengthGroupedSampler). Padding to the longest row of a mixed batch
    wastes a third of the compute on a 3-language XNLI sample (Hindi prompts are ~4x English ones)."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int = 0, group: int = 4):
        self.lengths, self.batch_size, self.seed, self.group = lengths, batch_size, seed, group
        self.epoch = 0

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        self.epoch += 1
        perm = torch.randperm(len(self.lengths), generator=g).tolist()
        window = self.batch_size * self.group
        batches = []
        for i in range(0, len(perm), window):
            part = sorted(perm[i:i + window], key=lambda j: -self.lengths[j])
            batches += [part[k:k + self.batch_size] for k in range(0, len(part), self.batch_size)]
        for b in torch.randperm(len(batches), generator=g).tolist():
            yield batches[b]


def pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    if tokenizer.pad_token_id is not None:
        return tokenizer.pad_token_id
    if tokenizer.eos_token_id is not None:
        return tokenizer.eos_token_id
    raise ValueError("the tokenizer has neither a pad nor an eos token; set tokenizer.pad_token first")
