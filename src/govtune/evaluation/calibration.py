"""Temperature scaling (Guo et al., 2017): one temperature T per language, fit on validation rows by
minimising the negative log-likelihood, then applied to the test probabilities as softmax(log p / T).

XNLI class probabilities are normalised over the three verbalised labels, so log p differs from the
label scores by a per-example constant and softmax(log p / T) = softmax(score / T). T > 1 softens an
over-confident model, T < 1 sharpens an under-confident one; the arg-max, hence accuracy, never moves.

The validation rows must be disjoint from the test rows (`check_calibration_sets`): a temperature fit
on test rows would make the ECE after scaling an in-sample number."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

# The search range of T. With a few validation examples per language that are all classified right
# (or all wrong), the NLL keeps falling as T -> 0 (or infinity); the search then stops at the bound, or
# earlier where the loss no longer changes in float64 (T a few hundredths: near one-hot probabilities).
T_MIN, T_MAX = 1e-2, 1e2
# log(0) of a probability that underflowed to 0 (a label score > 700 nats below the best): the smallest
# positive float64, so the log stays finite and the example still counts in the NLL.
_LOG_TINY = math.log(np.finfo(np.float64).tiny)


def log_probabilities(probs) -> np.ndarray:
    """log p of (N, C) probabilities, an underflowed 0 clamped to log of the smallest positive float64."""
    probs = np.asarray(probs, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.maximum(np.log(probs), _LOG_TINY)


def _check(log_probs: np.ndarray, gold: np.ndarray, what: str) -> None:
    if log_probs.ndim != 2 or log_probs.shape[1] < 2:
        raise ValueError(f"{what}: (log-)probabilities must be (N, C) with C >= 2 classes, got {log_probs.shape}")
    if not len(log_probs):
        raise ValueError(f"{what}: no validation examples to fit a temperature on; give at least one "
                         f"(more than a handful for a stable T)")
    if len(gold) != len(log_probs):
        raise ValueError(f"{what}: {len(log_probs)} rows of probabilities for {len(gold)} gold labels: pass one "
                         f"gold class index per row")
    if gold.min() < 0 or gold.max() >= log_probs.shape[1]:
        raise ValueError(f"{what}: gold class indices must be in 0..{log_probs.shape[1] - 1}, got "
                         f"{gold.min()}..{gold.max()}")
    if not np.isfinite(log_probs).all():
        raise ValueError(f"{what}: (log-)probabilities contain NaN or infinity; pass probabilities through "
                         f"log_probabilities() or finite logits")


def fit_temperature(log_probs, gold, *, max_iter: int = 200, what: str = "temperature scaling") -> float:
    """The T in [T_MIN, T_MAX] minimising the mean NLL of softmax(log_probs / T) on (log_probs, gold).

    `log_probs`: (N, C) log-probabilities, or logits (the same T: a per-row shift cancels in the softmax).
    LBFGS on log T: T stays positive without a constraint, and the step is scale-free."""
    z = np.asarray(log_probs, dtype=np.float64)
    y = np.asarray(gold, dtype=np.int64).reshape(-1)
    _check(z, y, what)
    z_t, y_t = torch.from_numpy(z), torch.from_numpy(y)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    lo, hi = math.log(T_MIN), math.log(T_MAX)
    opt = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, tolerance_grad=1e-12, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        # Clamped inside the loss: beyond the bounds the gradient is 0 and LBFGS stops there.
        loss = F.cross_entropy(z_t / log_t.clamp(lo, hi).exp(), y_t)
        loss.backward()
        return loss

    with torch.enable_grad():  # callers may evaluate under torch.no_grad()
        opt.step(closure)
    return min(max(math.exp(log_t.item()), T_MIN), T_MAX)  # exp(log(T_MAX)) may round above T_MAX


def scale(probs, temperature: float) -> np.ndarray:
    """softmax(log p / T) of (N, C) probabilities: the temperature-scaled probabilities."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = log_probabilities(probs) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class TemperatureScaling:
    """Per-language temperatures and the number of validation examples each was fit on."""

    temperatures: dict[str, float]
    n: dict[str, int] = field(default_factory=dict)

    @classmethod
    def fit(cls, probs: Mapping[str, np.ndarray], gold: Mapping[str, Sequence[int]],
            borrowed: Mapping[str, Sequence[str]] | None = None) -> "TemperatureScaling":
        """One T per language from its validation (N, C) probabilities and gold class indices. `borrowed`:
        {language without validation rows: languages of `probs`}; its T is fit on their rows together (a
        language evaluated but not tuned on, whose labelled rows stay unused by design)."""
        if not probs:
            raise ValueError("no validation languages to fit temperatures on: pass {language: probabilities}")
        if set(probs) != set(gold):
            raise ValueError(f"probabilities for {sorted(probs)} but gold labels for {sorted(gold)}: give both "
                             f"for the same languages")
        temps, counts = {}, {}
        for lang, p in probs.items():
            p = np.asarray(p, dtype=np.float64)
            if p.ndim != 2 or not len(p):
                raise ValueError(f"empty validation set for {lang!r}: temperature scaling needs validation "
                                 f"examples of every language it is applied to")
            temps[lang] = fit_temperature(log_probabilities(p), gold[lang], what=f"temperature of {lang!r}")
            counts[lang] = len(p)
        shared: dict[tuple[str, ...], float] = {}  # one fit per set of source languages
        for lang, sources in (borrowed or {}).items():
            key = tuple(sources)
            missing = [x for x in key if x not in probs]
            if not key or missing:
                raise ValueError(f"the temperature of {lang!r} is to be fit on the validation rows of "
                                 f"{', '.join(key) or 'no language'}, and {', '.join(missing) or 'they'} have "
                                 f"none: give validation rows of the languages tuned on")
            if key not in shared:
                pooled = np.concatenate([np.asarray(probs[x], dtype=np.float64) for x in key])
                shared[key] = fit_temperature(log_probabilities(pooled), np.concatenate([gold[x] for x in key]),
                                              what=f"temperature of {'+'.join(key)}")
            temps[lang], counts[lang] = shared[key], sum(counts[x] for x in key)
        return cls(temps, counts)

    def apply(self, lang: str, probs) -> np.ndarray:
        if lang not in self.temperatures:
            raise ValueError(f"no temperature for language {lang!r} (fit on {', '.join(self.temperatures)}): "
                             f"give validation examples of {lang!r} too")
        return scale(probs, self.temperatures[lang])


def _keys(ex: dict) -> list[tuple]:
    """What identifies an example: its id, and its text (a copy under another id or split is the same row)."""
    keys = [("text", ex.get("lang"), ex.get("premise"), ex.get("hypothesis"), ex.get("text"), ex.get("text_pair"))]
    if ex.get("id") is not None:
        keys.append(("id", ex["id"]))
    return keys


def check_calibration_sets(validation: Mapping[str, list[dict]], test: Mapping[str, list[dict]],
                           borrowed: Mapping[str, Sequence[str]] | None = None) -> None:
    """Refuse validation sets that are empty, miss or add a language, or share a row with the test set. A
    language of `borrowed` needs no validation rows of its own (its temperature is fit on others')."""
    if not validation:
        raise ValueError("calibration was asked for with no validation languages: pass {language: examples} "
                         "(or no calibration at all)")
    missing = [lang for lang in test if lang not in validation and lang not in (borrowed or {})]
    if missing:
        raise ValueError(f"no validation examples for {', '.join(map(repr, missing))}: temperature scaling needs "
                         f"validation rows of every evaluated language")
    unknown = [lang for lang in validation if lang not in test]
    if unknown:
        raise ValueError(f"validation examples for unknown language(s) {', '.join(map(repr, unknown))}: the test "
                         f"set has {', '.join(test)}; drop them or evaluate those languages too")
    for lang, exs in validation.items():
        if not exs:
            raise ValueError(f"empty validation set for {lang!r}: give at least one validation example per "
                             f"language (check the calibration rows and data files)")
    for lang, exs in validation.items():
        test_keys = {k for ex in test[lang] for k in _keys(dict(ex, lang=ex.get("lang", lang)))}
        shared = [ex for ex in exs if any(k in test_keys for k in _keys(dict(ex, lang=ex.get("lang", lang))))]
        if shared:
            first = shared[0].get("id") or shared[0].get("premise", "")[:40]
            raise ValueError(f"{len(shared)} {lang!r} validation example(s) are also test examples (first: "
                             f"{first}): the temperature must be fit on rows disjoint from the test rows; for the "
                             f"shipped dev split use the few-shot pool rows (govtune.data.XNLI_POOL_ROWS, "
                             f"e.g. --calibrate-on dev:0-200)")
