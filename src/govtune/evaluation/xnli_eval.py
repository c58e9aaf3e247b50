"""Classification evaluation (XNLI and any classification task): class probabilities for every example,
then accuracy, calibration, parity and orthographic robustness per language; with validation examples,
temperature-scaled calibration too.

Causal LMs: the log-likelihood of each verbalised label as the continuation of the prompt, softmax-
normalised over the labels. Models with a sequence-classification head (XNLI only: an encoder's, or the
head a `head: classifier` study trains on a causal LM's backbone): the head's softmax (`classify_pairs`). What a task changes is its `Verbalizer`: the prompt, the label continuations and the field that is
cut when a prompt is too long; XNLI's is the default."""

from __future__ import annotations

import time

import numpy as np

from govtune.data.xnli import LABELS
from govtune.evaluation import robustness as rob
from govtune.evaluation.calibration import TemperatureScaling, check_calibration_sets
from govtune.evaluation.metrics import (MAX_RANGE_LANGUAGES, accuracy, decile_gap, expected_calibration_error, macro,
                                      parity_gap)
from govtune.evaluation.scoring import (classify_pairs, context_length, is_classifier, loglikelihoods,
                                        require_tokenizer)
from govtune.text.encoding import encode_pair, pad_token_id, special_prefix
from govtune.text.prompts import xnli_continuations, xnli_prompt


class Verbalizer:
    """How a classification task turns an example into scored requests (lm-eval's doc_to_text and
    doc_to_choice with its target_delimiter). XNLI's; a task file's is `govtune.tasks.classification`."""

    task = "xnli"
    title = "XNLI"  # in messages and progress bars
    labels: tuple[str, ...] = LABELS
    cut_field = "premise"  # shortened, from its end, until the prompt fits the model's context
    text_fields: tuple[str, ...] = ("premise", "hypothesis")  # what the robustness perturbations change
    heads = True  # a sequence-classification head's classes are these labels (XNLI's order)

    def prompt(self, ex: dict, cut: str) -> str:
        return xnli_prompt(cut, ex["hypothesis"], ex["lang"])

    def continuations(self, lang: str) -> tuple[str, ...]:
        return xnli_continuations(lang)


XNLI = Verbalizer()


def check_examples(examples: dict[str, list[dict]], task: str) -> None:
    if not examples:
        raise ValueError(f"no {task} languages given: pass a dict language -> list of examples")
    for lang, exs in examples.items():
        if not exs:
            raise ValueError(f"empty {task} test set for {lang!r}: check --limit, --split and the data files")


def _fit_prompt(ex: dict, tokenizer, prefix: list[int], max_len: int | None, v: Verbalizer = XNLI
                ) -> tuple[list[tuple[list[int], list[int]]], bool]:
    """The (context, continuation) requests of an example, one per label, its cut field (XNLI: the
    premise) cut until they fit."""
    lang, premise = ex["lang"], ex[v.cut_field]
    conts = v.continuations(lang)
    truncated = False
    premise_ids = None
    while True:
        # In-context demonstrations (govtune.tasks.incontext) come first and are never cut.
        ctx_text = ex.get("context", "") + v.prompt(ex, premise)
        reqs = [encode_pair(tokenizer, ctx_text, c, prefix) for c in conts]
        # The model reads context + continuation minus its last token.
        need = max(len(c) + len(k) - 1 for c, k in reqs)
        if max_len is None or need <= max_len:
            return reqs, truncated
        if premise_ids is None:
            premise_ids = tokenizer.encode(premise, add_special_tokens=False)
        keep = len(premise_ids) - (need - max_len) - 1
        if keep <= 0:
            fix = ("fewer in-context examples" if ex.get("context") else
                   "a model with a longer context or a shorter hypothesis")
            raise ValueError(f"{v.title} example {ex.get('id')}: the prompt without its {v.cut_field} is still longer than "
                             f"the model's context of {max_len} tokens; use {fix}")
        premise_ids = premise_ids[:keep]
        premise = tokenizer.decode(premise_ids, skip_special_tokens=True)
        truncated = True


def score_examples(model, tokenizer, examples: list[dict], *, batch_size: int = 8, padding_side: str = "left",
                   progress: bool = False, desc: str = "XNLI", verbalizer: Verbalizer = XNLI
                   ) -> tuple[np.ndarray, list[bool]]:
    """(N, labels) class probabilities in the verbalizer's label order, and which examples had their cut
    field (XNLI: the premise) truncated."""
    require_tokenizer(tokenizer, model)
    max_len = context_length(model, tokenizer)
    if is_classifier(model):
        if not verbalizer.heads:
            raise ValueError(f"{verbalizer.title}: a sequence-classification head knows XNLI's classes only; "
                             f"evaluate a causal LM on this task")
        probs = classify_pairs(model, tokenizer, [e["premise"] for e in examples],
                               [e["hypothesis"] for e in examples], batch_size=batch_size, max_length=max_len,
                               progress=progress)
        truncated = [max_len is not None and
                     len(tokenizer(e["premise"], e["hypothesis"])["input_ids"]) > max_len for e in examples]
        return probs.numpy().astype(np.float64), truncated
    prefix = special_prefix(tokenizer)
    requests, truncated = [], []
    for ex in examples:
        reqs, cut = _fit_prompt(ex, tokenizer, prefix, max_len, verbalizer)
        requests.extend(reqs)
        truncated.append(cut)
    ll = np.array(loglikelihoods(model, requests, batch_size=batch_size, padding_side=padding_side,
                                 pad_id=pad_token_id(tokenizer), progress=progress, desc=desc))
    ll = ll.reshape(len(examples), len(verbalizer.labels))
    ll -= ll.max(axis=1, keepdims=True)
    probs = np.exp(ll)
    return probs / probs.sum(axis=1, keepdims=True), truncated


def _record(ex: dict, probs: np.ndarray, perturbation: str | None, labels: tuple[str, ...] = LABELS) -> dict:
    pred = labels[int(np.argmax(probs))]
    return {"language": ex["lang"], "index": ex.get("row"), "id": ex.get("id"), "perturbation": perturbation,
            "probs": {lab: float(p) for lab, p in zip(labels, probs)}, "prediction": pred, "gold": ex["label"],
            "correct": pred == ex["label"]}


def evaluate_xnli(model, tokenizer, examples: dict[str, list[dict]], **kwargs) -> tuple[dict, list[dict]]:
    """`evaluate_classification` with XNLI's prompt and label words."""
    return evaluate_classification(model, tokenizer, examples, verbalizer=XNLI, **kwargs)


def evaluate_classification(model, tokenizer, examples: dict[str, list[dict]], *, verbalizer: Verbalizer,
                            batch_size: int = 8, robustness: bool = True, seed: int = 0, progress: bool = True,
                            padding_side: str = "left", calibration: dict[str, list[dict]] | None = None,
                            borrowed: dict[str, list[str]] | None = None) -> tuple[dict, list[dict]]:
    """Metrics (percent) and one prediction record per example (plus one per perturbed example).

    `calibration`: validation examples per language, disjoint from `examples`; a temperature per
    language is fit on them and applied to the test probabilities (`temperature`, `ece_ts` per language,
    `avg_ece_ts`; `probs_ts` beside `probs` in every prediction record). `borrowed`: {language evaluated
    without validation rows: the languages whose rows fit its temperature} (`calibrated_on` per language)."""
    v, labels = verbalizer, verbalizer.labels
    check_examples(examples, v.title)
    if calibration is not None:
        check_calibration_sets(calibration, examples, borrowed)  # before any scoring: a leak fails in a second
    langs = list(examples)
    flat = [dict(ex, lang=ex.get("lang", lang)) for lang in langs for ex in examples[lang]]
    for ex in flat:
        v.continuations(ex["lang"])  # fails early, naming the language, when it has no prompt
    t0 = time.perf_counter()
    probs, truncated = score_examples(model, tokenizer, flat, batch_size=batch_size, padding_side=padding_side,
                                      progress=progress, desc=f"{v.title} clean", verbalizer=v)
    clean_seconds = time.perf_counter() - t0
    preds = [_record(ex, p, None, labels) for ex, p in zip(flat, probs)]
    gold_idx = np.array([labels.index(ex["label"]) for ex in flat])
    lang_arr = np.array([lang for lang in langs for _ in examples[lang]])  # grouped by the dict's keys

    per_lang = {}
    for lang in langs:
        m = lang_arr == lang
        per_lang[lang] = {"accuracy": accuracy(probs[m].argmax(1), gold_idx[m]),
                          "ece": expected_calibration_error(probs[m], gold_idx[m]), "n": int(m.sum()),
                          "truncated": int(np.sum(np.array(truncated)[m]))}
    acc = {lang: v["accuracy"] for lang, v in per_lang.items()}
    metrics = {"task": v.task, "languages": per_lang, "macro": macro(acc), "parity_gap": parity_gap(acc),
               "avg_ece": macro({lang: v["ece"] for lang, v in per_lang.items()}),
               **({"decile_gap": decile_gap(acc)} if len(acc) > MAX_RANGE_LANGUAGES else {}),
               "truncated": int(sum(truncated)),
               "timing": {"seconds": clean_seconds, "examples": len(flat),
                          "examples_per_second": len(flat) / clean_seconds if clean_seconds else float("nan"),
                          "batch_size": batch_size}}
    if robustness:
        metrics["robustness"], perturbed_preds = _robustness(model, tokenizer, flat, probs, gold_idx, lang_arr,
                                                             acc, seed=seed, batch_size=batch_size,
                                                             padding_side=padding_side, progress=progress,
                                                             verbalizer=v)
        preds.extend(perturbed_preds)
    if calibration is not None:
        scaler = _fit_temperatures(model, tokenizer, calibration, batch_size=batch_size,
                                   padding_side=padding_side, progress=progress, verbalizer=v, borrowed=borrowed)
        for lang in langs:
            m = lang_arr == lang
            per_lang[lang].update(temperature=scaler.temperatures[lang], calibration_n=scaler.n[lang],
                                  ece_ts=expected_calibration_error(scaler.apply(lang, probs[m]), gold_idx[m]))
            if lang in (borrowed or {}):
                per_lang[lang]["calibrated_on"] = list(borrowed[lang])
        metrics["avg_ece_ts"] = macro({lang: v["ece_ts"] for lang, v in per_lang.items()})
        for rec in preds:  # clean and perturbed records alike, each with its language's T
            scaled = scaler.apply(rec["language"], np.array([[rec["probs"][lab] for lab in labels]]))[0]
            rec["probs_ts"] = {lab: float(p) for lab, p in zip(labels, scaled)}
    return metrics, preds


def _fit_temperatures(model, tokenizer, calibration: dict[str, list[dict]], *, batch_size: int,
                      padding_side: str, progress: bool, verbalizer: Verbalizer = XNLI,
                      borrowed: dict[str, list[str]] | None = None) -> TemperatureScaling:
    """Score the validation examples with the model under test and fit one temperature per language."""
    flat = [dict(ex, lang=ex.get("lang", lang)) for lang, exs in calibration.items() for ex in exs]
    probs, _ = score_examples(model, tokenizer, flat, batch_size=batch_size, padding_side=padding_side,
                              progress=progress, desc=f"{verbalizer.title} calibration", verbalizer=verbalizer)
    gold = np.array([verbalizer.labels.index(ex["label"]) for ex in flat])
    lang_arr = np.array([lang for lang, exs in calibration.items() for _ in exs])
    return TemperatureScaling.fit({lang: probs[lang_arr == lang] for lang in calibration},
                                  {lang: gold[lang_arr == lang] for lang in calibration}, borrowed)


def _robustness(model, tokenizer, flat, probs, gold_idx, lang_arr, clean_acc, *, seed, batch_size,
                padding_side, progress, verbalizer: Verbalizer = XNLI):
    drawn = [rob.perturb(ex, seed, fields=verbalizer.text_fields) for ex in flat]
    changed = [i for i, (_, op) in enumerate(drawn) if op is not None]
    p_probs = probs.copy()  # an example no operation changes keeps its clean score
    if changed:
        p_probs[changed], _ = score_examples(model, tokenizer, [drawn[i][0] for i in changed],
                                             batch_size=batch_size, padding_side=padding_side,
                                             progress=progress, desc=f"{verbalizer.title} perturbed",
                                             verbalizer=verbalizer)
    clean_ok = probs.argmax(1) == gold_idx
    pert_ok = p_probs.argmax(1) == gold_idx
    pert_acc = {lang: 100.0 * float(pert_ok[lang_arr == lang].mean()) for lang in clean_acc}
    ops = np.array([op or "none" for _, op in drawn])
    by_op = {}
    for op in (*rob.OPERATIONS, "none"):
        m = ops == op
        if m.any():
            c, p = 100.0 * float(clean_ok[m].mean()), 100.0 * float(pert_ok[m].mean())
            by_op[op] = {"n": int(m.sum()), "clean_accuracy": c, "perturbed_accuracy": p, "drop": c - p}
    result = {"seed": seed, "macro_clean": macro(clean_acc), "macro_perturbed": macro(pert_acc),
              "macro_drop": macro(clean_acc) - macro(pert_acc),
              "by_language": {lang: {"clean": clean_acc[lang], "perturbed": pert_acc[lang],
                                     "drop": clean_acc[lang] - pert_acc[lang],
                                     "unchanged": int(((ops == "none") & (lang_arr == lang)).sum())}
                              for lang in clean_acc},
              "by_operation": by_op, "unchanged": int((ops == "none").sum())}
    records = [_record(drawn[i][0], p_probs[i], drawn[i][1], verbalizer.labels) for i in changed]
    return result, records
