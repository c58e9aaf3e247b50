"""Batches of similar lengths for the training loop. Encoding and padding of (prompt, target) pairs live in
`govtune.text.encoding`, shared with the evaluator."""

from __future__ import annotations

import torch


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


def process_rows(rows: list[int], rank: int, world: int) -> list[int]:
    """This process's contiguous share of a global batch: the first len(rows) % world processes take one
    row more (the chunks of accelerate's `split_between_processes`). Concatenated in rank order, the shares
    are the global batch, so N processes see exactly the rows, in the order, of one process."""
    base, extra = divmod(len(rows), world)
    start = rank * base + min(rank, extra)
    return rows[start:start + base + (rank < extra)]


def target_count(labels: list[int], ignore_index: int) -> int:
    """Target tokens of one encoded row the loss is taken over: every label but the first (position 0 is
    predicted by nothing)."""
    return sum(label != ignore_index for label in labels[1:])
