"""In-context baselines: k solved examples written before every test prompt, in the same template the
model is scored and tuned with (lm-evaluation-harness's `num_fewshot`).

The demonstrations of a language (or FLORES direction) are drawn once with a seed from a pool, never
from the test rows, and shared by all its test examples, so a run is reproducible and the prompt prefix
is the same for every example. XNLI demonstrations are label-balanced by the k-shot sampler that draws
fine-tuning shots. The pool's rows are checked against the test rows: XNLI and FLORES rows are translations
across languages, so a pool row equal to any test row (in any language) is leakage and refused."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from govtune.governance.sampling import sample_kshot
from govtune.tasks.prompts import flores_training_pair, xnli_training_pair

# Between one demonstration and the next prompt. The answer line already ends with its own text.
DEMO_SEPARATOR = "\n\n"


def _row(ex: dict):
    return ex.get("row", ex.get("line"))


def _check_disjoint(pool: Sequence[dict], tests: Sequence[dict], what: str) -> None:
    test_rows = {_row(e) for e in tests if _row(e) is not None}
    test_ids = {e.get("id") for e in tests if e.get("id") is not None}
    leaked = [e for e in pool if (_row(e) is not None and _row(e) in test_rows) or e.get("id") in test_ids]
    if leaked:
        raise ValueError(f"{what}: {len(leaked)} in-context pool rows are also test rows (e.g. row "
                         f"{_row(leaked[0])}); draw demonstrations from rows disjoint from the evaluation rows "
                         f"(govtune.data.XNLI_POOL_ROWS / FLORES_POOL_LINES or a curated pool)")


def demonstration_text(pairs: Sequence[tuple[str, str]]) -> str:
    """(prompt, answer) pairs as one block that the test prompt follows."""
    return "".join(prompt + answer.rstrip("\n") + DEMO_SEPARATOR for prompt, answer in pairs)


def xnli_context(pool: Sequence[dict], tests: Sequence[dict], lang: str, k: int, seed: int) -> str:
    """k label-balanced demonstrations of one language, seeded."""
    candidates = [e for e in pool if e.get("lang") == lang]
    _check_disjoint(candidates, tests, f"XNLI {lang}")
    shots = sample_kshot(candidates, [lang], k, seed)
    return demonstration_text([xnli_training_pair(e) for e in shots])


def flores_context(pool: Sequence[dict], tests: Sequence[dict], k: int, seed: int) -> str:
    """k demonstrations of one direction, seeded."""
    _check_disjoint(pool, tests, "FLORES")
    if len(pool) < k:
        raise ValueError(f"the FLORES in-context pool has {len(pool)} lines, fewer than k={k}: lower --shots")
    shots = random.Random(f"{seed}:flores").sample(list(pool), k)
    return demonstration_text([flores_training_pair(e) for e in shots])


def with_context(examples: Mapping[str, list[dict]], pool: Mapping[str, Sequence[dict]], k: int, seed: int,
                 task: str) -> dict[str, list[dict]]:
    """Copies of the test examples, each carrying its language's (direction's) demonstrations under
    "context"; k = 0 returns them unchanged."""
    if k < 0:
        raise ValueError(f"in-context shots must be >= 0, got {k}")
    if k == 0:
        return dict(examples)
    out = {}
    for key, tests in examples.items():
        if key not in pool:
            raise ValueError(f"no in-context pool for {key!r}: the pool has {sorted(pool)}")
        ctx = (xnli_context(pool[key], tests, key, k, seed) if task == "xnli"
               else flores_context(pool[key], tests, k, seed))
        out[key] = [{**e, "context": ctx} for e in tests]
    return out
