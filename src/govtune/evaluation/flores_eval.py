"""FLORES evaluation: greedy translation of each source line, then detokenised corpus BLEU (sacreBLEU,
"zh" tokenisation for Chinese targets, "13a" otherwise) and chrF++ per direction."""

from __future__ import annotations

import time

from govtune.evaluation.metrics import bleu_with_signature, corpus_chrf, macro, parity_gap
from govtune.evaluation.scoring import context_length, generate_lines, require_tokenizer, special_prefix
from govtune.evaluation.xnli_eval import check_examples
from govtune.tasks.prompts import flores_prompt


def _fit(ex: dict, tokenizer, prefix: list[int], budget: int | None) -> tuple[list[int], bool]:
    """Prompt ids, the source cut until prompt + generation fit in the context."""
    src, truncated, src_ids = ex["src"], False, None
    while True:
        ids = prefix + tokenizer.encode(flores_prompt(src, ex["src_lang"], ex["tgt_lang"]), add_special_tokens=False)
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
                    max_new_tokens: int = 128, progress: bool = True) -> tuple[dict, list[dict]]:
    """examples: pair name ("en-zh") -> FLORES examples. Metrics (BLEU/chrF++ points) and one record per line."""
    check_examples(examples, "FLORES")
    require_tokenizer(tokenizer, model)
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    max_len = context_length(model, tokenizer)
    budget = None if max_len is None else max_len - max_new_tokens
    if budget is not None and budget < 8:
        raise ValueError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in the model's context of "
                         f"{max_len} tokens: lower it")
    prefix = special_prefix(tokenizer)
    flat = [(pair, ex) for pair, exs in examples.items() for ex in exs]
    fitted = [_fit(ex, tokenizer, prefix, budget) for _, ex in flat]
    t0 = time.perf_counter()
    hyps = generate_lines(model, tokenizer, [ids for ids, _ in fitted], max_new_tokens=max_new_tokens,
                          batch_size=batch_size, progress=progress, desc="FLORES")
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
                          "batch_size": batch_size, "max_new_tokens": max_new_tokens}}
    return metrics, preds
