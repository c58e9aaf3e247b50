"""Batches of prompts that begin with the same tokens, so that the model reads those tokens once per batch.

An in-context baseline (`govtune.tasks.incontext`) writes the same k demonstrations, a few hundred tokens,
before every test prompt of a language (or FLORES direction): left to themselves, the longest-first
batches of the scorers would mix languages, and every row of a batch would re-read its demonstrations.
Here contexts are grouped by their first SHARED_PREFIX_MIN tokens, each group is batched on its own
(longest first, as before), and `govtune.evaluation.scoring` then runs each batch's longest common prefix
once, with batch size 1, and the rows' remaining suffixes on top of its KV cache.

Prompts that share no long prefix (the base model's prompts share a short template: an instruction line,
a field label) keep exactly the batches they had without grouping, and so exactly the same numbers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

# Tokens a batch's contexts must share before their prefix is run once. Running it apart costs an extra
# forward call and a copy of its KV cache per row; below a sentence or so that costs about what it saves.
# Prompt templates stay below it in a subword vocabulary (XNLI's field label: 2-4 tokens, FLORES'
# instruction line: 17), in-context demonstrations (one solved example: ~80 tokens) are far above it.
# A byte-level vocabulary spells templates out byte by byte (the FLORES line: 68 tokens), so it may share one.
SHARED_PREFIX_MIN = 32
# Rows a group below a full batch needs before it may run as a batch of its own: more than the three XNLI
# hypotheses written about one premise.
GROUP_MIN = 4


def shared_prefix_length(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest common prefix of `seqs`, leaving every sequence at least one token of its own
    (the last position's logits are read from the suffix pass); 0 for fewer than two sequences."""
    if len(seqs) < 2:
        return 0
    first, n = seqs[0], min(len(s) for s in seqs) - 1
    for s in seqs[1:]:
        k = 0
        while k < n and s[k] == first[k]:
            k += 1
        n = k
    return max(n, 0)


def prefix_batches(items: Sequence[T], tokens: Callable[[T], Sequence[int]], batch_size: int) -> list[list[T]]:
    """`items` (sorted longest first) cut into batches of `batch_size`, a group of items whose token ids
    begin with the same SHARED_PREFIX_MIN tokens batched on its own.

    A group is kept apart when it fills at least one batch, or when it has at least GROUP_MIN rows and
    reading its common prefix once saves at least a batch of SHARED_PREFIX_MIN-token rows: (rows - 1) x
    prefix >= batch_size x SHARED_PREFIX_MIN. The second rule takes the in-context baseline's smaller
    groups (8 validation examples per language under 3 demonstrations, ~250 shared tokens; 16 FLORES lines
    per direction), which mixed into one batch re-read their demonstrations row by row. Neither takes XNLI's
    premise shared by the three hypotheses written about it, which would only split the ordinary batches
    into underfull ones. Without such a group the batches are the ungrouped ones, unchanged."""
    groups: dict[tuple, list[int]] = {}
    for i, it in enumerate(items):
        seq = tokens(it)
        key = tuple(seq[:SHARED_PREFIX_MIN]) if len(seq) > SHARED_PREFIX_MIN else None
        groups.setdefault(key, []).append(i)

    def apart(g: list[int]) -> bool:
        if len(g) >= max(batch_size, 2):
            return True
        if len(g) < GROUP_MIN:
            return False
        saved = (len(g) - 1) * shared_prefix_length([tokens(items[i]) for i in g])
        return saved >= batch_size * SHARED_PREFIX_MIN

    shared = [g for key, g in groups.items() if key is not None and apart(g)]
    if not shared:
        return [list(items[b:b + batch_size]) for b in range(0, len(items), batch_size)]
    grouped = {i for g in shared for i in g}
    rest = [i for i in range(len(items)) if i not in grouped]
    return [[items[i] for i in g[b:b + batch_size]] for g in shared + [rest] for b in range(0, len(g), batch_size)]
