"""FLORES evaluation: greedy translation of each source line, stopped where the translation ends (after as
many sentences as the source has, or at the end of the answer line), then detokenised corpus BLEU (sacreBLEU,
"zh" tokenisation for Chinese targets, "13a" otherwise) and chrF++ per direction."""

from __future__ import annotations

import math
import time
from functools import lru_cache

from govtune.data import FLORES_POOL_LINES
from govtune.data.flores import load_flores
from govtune.evaluation.metrics import bleu_with_signature, corpus_chrf, macro, parity_gap
from govtune.evaluation.scoring import context_length, generate_lines, require_tokenizer
from govtune.evaluation.xnli_eval import check_examples
from govtune.languages import script
from govtune.text.encoding import special_prefix
from govtune.text.prompts import flores_prompt
from govtune.text.sentences import count_sentences

# Fallback target/source token ratio for a direction the shipped few-shot pool lacks.
FALLBACK_LENGTH_RATIO = 2.5
LENGTH_SLACK = 8


@lru_cache(maxsize=32)
def _pool_ratio(tokenizer, src: str, tgt: str) -> float:
    """Largest reference/source token ratio of this tokenizer on the direction's few-shot pool lines.

    The ratio depends on the tokenizer as much as on the languages: SmolLM2 needs ~2.7x the English
    tokens for Chinese and ~5x for Hindi (Devanagari split into byte pieces), so one fixed factor would
    either cut real translations or leave the cap useless. The pool (lines 0..499) is disjoint from the
    evaluation lines, so no evaluation reference informs the budget."""
    try:
        pool = load_flores(src, tgt, lines=FLORES_POOL_LINES)
    except (ValueError, FileNotFoundError, OSError):
        return FALLBACK_LENGTH_RATIO
    return max(len(tokenizer.encode(e["ref"], add_special_tokens=False))
               / max(1, len(tokenizer.encode(e["src"], add_special_tokens=False))) for e in pool)


def _fit(ex: dict, tokenizer, prefix: list[int], budget: int | None) -> tuple[list[int], bool]:
    """Prompt ids, the source cut until prompt + generation fit in the context."""
    src, truncated, src_ids = ex["src"], False, None
    while True:
        text = ex.get("context", "") + flores_prompt(src, ex["src_lang"], ex["tgt_lang"])  # demonstrations first
        ids = prefix + tokenizer.encode(text, add_special_tokens=False)
        if budget is None or len(ids) <= budget:
            return ids, truncated
        if src_ids is None:
            src_ids = tokenizer.encode(src, add_special_tokens=False)
        keep = len(src_ids) - (len(ids) - budget) - 1
        if keep <= 0:
            raise ValueError(f"FLORES example {ex.get('id')}: the prompt leaves no room for the source within the "
                             f"model's context; lower --max-new-tokens or use a model with a longer context")
        src_ids = src_ids[:keep]
        src = tokenizer.decode(src_ids, skip_special_tokens=True)
        truncated = True


def evaluate_flores(model, tokenizer, examples: dict[str, list[dict]], *, batch_size: int = 8,
                    max_new_tokens: int = 128, length_ratio: float | None = None,
                    progress: bool = True) -> tuple[dict, list[dict]]:
    """examples: pair name ("en-zh") -> FLORES examples. Metrics (BLEU/chrF++ points) and one record per line.

    Each line may generate ceil(length_ratio x source tokens) + 8 new tokens, at most max_new_tokens, so a
    row that never ends its translation costs a few dozen steps, not max_new_tokens; finished rows leave
    their batch at once. length_ratio None: the largest target/source token ratio this tokenizer shows on the
    direction's few-shot pool lines (FALLBACK_LENGTH_RATIO when the direction is not shipped)."""
    check_examples(examples, "FLORES")
    require_tokenizer(tokenizer, model)
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if length_ratio is not None and not length_ratio > 0:
        raise ValueError(f"length_ratio must be > 0 (target tokens per source token), got {length_ratio}")
    max_len = context_length(model, tokenizer)
    budget = None if max_len is None else max_len - max_new_tokens
    if budget is not None and budget < 8:
        raise ValueError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in the model's context of "
                         f"{max_len} tokens: lower it")
    prefix = special_prefix(tokenizer)
    flat = [(pair, ex) for pair, exs in examples.items() for ex in exs]
    fitted = [_fit(ex, tokenizer, prefix, budget) for _, ex in flat]
    budgets = []
    for _, ex in flat:
        ratio = length_ratio or _pool_ratio(tokenizer, ex["src_lang"], ex["tgt_lang"])
        n_src = len(tokenizer.encode(ex["src"], add_special_tokens=False))
        budgets.append(min(max_new_tokens, math.ceil(ratio * n_src) + LENGTH_SLACK))
    t0 = time.perf_counter()
    # A FLORES line may hold several sentences (57 of the 497 English evaluation lines by this rule): the translation
    # may end as many sentences as its source, counted by the source script's marks. A source without a
    # final mark is still one sentence.
    sentences = [max(1, count_sentences(ex["src"], script(ex["src_lang"]))) for _, ex in flat]
    hyps = generate_lines(model, tokenizer, [ids for ids, _ in fitted], max_new_tokens=max_new_tokens,
                          batch_size=batch_size, budgets=budgets, scripts=[script(ex["tgt_lang"]) for _, ex in flat],
                          sentences=sentences, progress=progress, desc="FLORES")
    seconds = time.perf_counter() - t0
    preds = [{"pair": pair, "language": ex["tgt_lang"], "index": ex.get("line"), "id": ex.get("id"),
              "perturbation": None, "source": ex["src"], "hypothesis": h, "reference": ex["ref"]}
             for (pair, ex), h in zip(flat, hyps)]
    pairs = {}
    for pair, exs in examples.items():
        recs = [p for p in preds if p["pair"] == pair]
        tgt = exs[0]["tgt_lang"]
        hy, rf = [r["hypothesis"] for r in recs], [r["reference"] for r in recs]
        bleu, signature = bleu_with_signature(hy, rf, tgt)
        pairs[pair] = {"bleu": bleu, "chrf": corpus_chrf(hy, rf), "n": len(recs),
                       "truncated": sum(cut for (p, _), (_, cut) in zip(flat, fitted) if p == pair),
                       "signature": signature}
    bleu = {p: v["bleu"] for p, v in pairs.items()}
    metrics = {"task": "flores", "pairs": pairs, "average_bleu": macro(bleu), "direction_gap": parity_gap(bleu),
               "average_chrf": macro({p: v["chrf"] for p, v in pairs.items()}),
               "truncated": sum(v["truncated"] for v in pairs.values()),
               "timing": {"seconds": seconds, "examples": len(flat),
                          "examples_per_second": len(flat) / seconds if seconds else float("nan"),
                          "batch_size": batch_size, "max_new_tokens": max_new_tokens,
                          "mean_budget": sum(budgets) / len(budgets)}}
    return metrics, preds
