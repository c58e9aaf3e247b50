"""Perplexity under a reference causal LM, with a per-language cut of the most surprising records.

Perplexity scales differ by language (a mostly-English model finds all Hindi surprising), so the cut is a
percentile within each language, never one global threshold: per language, the `drop_top_percent` share of
records with the highest perplexity is dropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from govtune.governance.config import PerplexityConfig
from govtune.governance.records import Record, Step, full_text
from govtune.text.encoding import pad_batch, pad_token_id


@torch.inference_mode()
@torch.inference_mode()
def perplexities(model, tokenizer, texts: Sequence[str], batch_size: int = 16, max_length: int = 256,
                 progress: bool = True) -> np.ndarray:
    """exp(mean token negative log-likelihood) of each text, batched with right padding."""
    if not texts:
        return np.zeros(0)
    pad_id = pad_token_id(tokenizer)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    encoded = [tokenizer(t, truncation=True, max_length=max_length)["input_ids"] for t in texts]
    order = np.argsort([len(e) for e in encoded], kind="stable")  # similar lengths share a batch: less padding
    out = np.empty(len(texts))
    bar = tqdm(total=len(texts), desc="perplexity", unit="rec", disable=not progress)
    for lo in range(0, len(order), batch_size):
        idx = order[lo:lo + batch_size]
        ids, mask, _ = pad_batch([encoded[i] for i in idx], pad_id, "right")
        ids, mask = ids.to(device), mask.to(device)
        logits = model(input_ids=ids, attention_mask=mask).logits.float()  # (B, T, V)
        # The logits at t predict token t + 1; the last position and the pads predict nothing (-100). Read in
        # the logits' own (B * T, V) layout: a transposed (B, V, T) view made the softmax stride across a
        # 262,144-entry vocabulary and took 4x as long (Gemma 3), the same numbers up to rounding.
        target = torch.cat([ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100), torch.full_like(ids[:, :1], -100)], 1)
        nll = torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), target.view(-1),
                                                reduction="none").view(target.shape)
        target_mask = (target != -100).float()
        per_text = (nll * target_mask).sum(1) / target_mask.sum(1).clamp(min=1)
        out[idx] = per_text.exp().cpu().numpy()
        bar.update(len(idx))
    bar.close()
    model.train(was_training)
    return out


def top_percent_mask(values: np.ndarray, percent: float) -> np.ndarray:
    """True for the floor(n * percent / 100) largest values (ties broken by position)."""
    n_drop = math.floor(len(values) * percent / 100.0)
    mask = np.zeros(len(values), dtype=bool)
    if n_drop:
        mask[np.argsort(-values, kind="stable")[:n_drop]] = True
    return mask


class PerplexityStep(Step):
    name = "perplexity"
    stage = "c2"
    per_record = False

    def __init__(self, model, tokenizer, config: PerplexityConfig | None = None, progress: bool = True):
        self.model, self.tokenizer = model, tokenizer
        self.config = config or PerplexityConfig()
        self.progress = progress
        self.cutoffs: dict[str, float] = {}
        self.scores: np.ndarray = np.zeros(0)

    def judge(self, records: Sequence[Record]) -> list[str | None]:
        c = self.config
        self.scores = perplexities(self.model, self.tokenizer, [full_text(r) for r in records],
                                   c.batch_size, c.max_length, self.progress)
        verdicts: list[str | None] = [None] * len(records)
        langs = np.array([r["lang"] for r in records])
        for lang in sorted(set(langs.tolist())):
            idx = np.flatnonzero(langs == lang)
            drop = top_percent_mask(self.scores[idx], c.drop_top_percent)
            kept = self.scores[idx][~drop]
            self.cutoffs[lang] = float(kept.max()) if len(kept) else float("nan")
            for i in idx[drop]:
                verdicts[i] = "high_perplexity"
        return verdicts

    def details(self) -> dict:
        name = getattr(getattr(self.model, "config", None), "name_or_path", "") or type(self.model).__name__
        return {"model": name, "drop_top_percent": self.config.drop_top_percent,
                "max_kept_perplexity": {k: round(v, 3) for k, v in self.cutoffs.items()}}
