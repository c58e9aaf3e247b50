"""XNLI scoring under bf16 autocast against float32, side by side in one process: speed and numbers.

`mixed_precision: bf16` is opt-in and never chosen by CPU detection: on a CPU with native bf16 (AVX512-BF16
or AMX) oneDNN's bf16 matmuls run at about twice float32's rate, elsewhere bf16 is emulated and slower. This
benchmark says what the switch does to the demo's evaluation on the machine it runs on: the same requests (the
first --per-lang XNLI evaluation examples of EN, ZH, HI, three label log-likelihoods each) scored by
`govtune.evaluation.xnli_eval.score_examples`, the same model, batch size and threads, once in float32 and
once under `torch.autocast("cpu", torch.bfloat16)`; each once after a one-batch warm-up, language by
language, alternating which goes first. Reported: seconds, the largest change of a class probability, the
predicted labels that change, and accuracy and ECE under each.

    python bench/bf16_scoring.py [--model gemma3-270m] [--per-lang 64] [--batch-size 32]

Writes bench/results/bf16_scoring.json and .md (atomically); --out-dir puts them elsewhere.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from govtune.data import XNLI_EVAL_ROWS  # noqa: E402
from govtune.data.xnli import LABELS  # noqa: E402
from govtune.evaluation.metrics import expected_calibration_error  # noqa: E402
from govtune.evaluation.xnli_eval import score_examples  # noqa: E402
from govtune.machine_load import MachineLoad, describe  # noqa: E402
from govtune.models import load_model  # noqa: E402
from govtune.tasks import load_xnli  # noqa: E402
from results_io import write_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
LANGS = ("en", "zh", "hi")
PATHS = ("float32", "bf16")


def cpu_has_native_bf16() -> bool:
    """Whether the CPU flags name AVX512-BF16 or AMX-BF16 (Linux /proc/cpuinfo; False elsewhere)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def compare(model, tok, examples: dict[str, list[dict]], batch_size: int) -> dict:
    """Both paths over the same examples, language by language, alternating which goes first."""
    probs = {name: {} for name in PATHS}
    seconds: dict[str, dict[str, float]] = {name: {} for name in PATHS}

    def run(name: str, key: str, exs: list[dict]) -> np.ndarray:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=name == "bf16"):
            t0 = time.perf_counter()
            p, _ = score_examples(model, tok, exs, batch_size=batch_size)
            seconds[name][key] = time.perf_counter() - t0
        return p

    warm = examples[LANGS[0]][:batch_size]
    for name in PATHS:  # one-off costs of the first calls are no path's speed
        run(name, "warm-up", warm)
    for i, lang in enumerate(LANGS):
        for name in (PATHS if i % 2 == 0 else PATHS[::-1]):
            probs[name][lang] = run(name, lang, examples[lang])
    gold = {lang: np.array([LABELS.index(e["label"]) for e in examples[lang]]) for lang in LANGS}
    out: dict = {"seconds": {n: sum(seconds[n][lang] for lang in LANGS) for n in PATHS},
                 "seconds_per_language": seconds, "per_language": {}}
    out["speedup"] = out["seconds"]["float32"] / out["seconds"]["bf16"]
    for lang in LANGS:
        f, b = probs["float32"][lang], probs["bf16"][lang]
        out["per_language"][lang] = {
            "max_abs_prob_diff": float(np.abs(f - b).max()),
            "predictions_changed": int((f.argmax(1) != b.argmax(1)).sum()),
            **{f"accuracy_{n}": float(100 * (probs[n][lang].argmax(1) == gold[lang]).mean()) for n in PATHS},
            **{f"ece_{n}": expected_calibration_error(probs[n][lang], gold[lang]) for n in PATHS}}  # percent
    per = out["per_language"].values()
    out["max_abs_prob_diff"] = max(p["max_abs_prob_diff"] for p in per)
    out["predictions_changed"] = sum(p["predictions_changed"] for p in per)
    return out


def report(result: dict, meta: dict) -> str:
    s, per = result["seconds"], result["per_language"]
    lines = ["# XNLI scoring: bf16 autocast against float32", "",
             f"`python bench/bf16_scoring.py --model {meta['model']} --per-lang {meta['per_lang']} --batch-size "
             f"{meta['batch_size']}`: {meta['examples']} XNLI evaluation examples ({', '.join(LANGS)}), "
             f"{3 * meta['examples']} log-likelihood requests; {meta['threads']} torch threads, torch {meta['torch']}; "
             f"CPU with native bf16 (AVX512-BF16 or AMX): {'yes' if meta['native_bf16'] else 'no'}. Each path once "
             f"after a one-batch warm-up, language by language, alternating which goes first.", "",
             describe(meta["machine_load"]), "",
             "| path | seconds | " + " | ".join(LANGS) + " |", "|---|---|" + "---|" * len(LANGS)]
    lines += [f"| {n} | {s[n]:.1f} | " + " | ".join(f"{result['seconds_per_language'][n][lang]:.1f}" for lang in LANGS)
              + " |" for n in PATHS]
    lines += ["", f"bf16 / float32 speed: x{result['speedup']:.2f}. Largest change of a class probability: "
                  f"{result['max_abs_prob_diff']:.1e}; predicted labels changed: {result['predictions_changed']} of "
                  f"{meta['examples']}.", "",
              "| language | accuracy float32 | accuracy bf16 | ECE float32 | ECE bf16 | labels changed | "
              "largest probability change |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {lang} | {p['accuracy_float32']:.1f} | {p['accuracy_bf16']:.1f} | {p['ece_float32']:.1f} | "
              f"{p['ece_bf16']:.1f} | {p['predictions_changed']} | {p['max_abs_prob_diff']:.1e} |"
              for lang, p in per.items()]
    return "\n".join(lines + [""])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="gemma3-270m")
    ap.add_argument("--per-lang", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--out-dir", default=str(RESULTS))
    args = ap.parse_args(argv)
    if min(args.per_lang, args.batch_size, args.threads) < 1:
        raise SystemExit("--per-lang, --batch-size and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    model, tok = load_model(args.model)
    examples = {lang: load_xnli(lang, rows=XNLI_EVAL_ROWS, limit=args.per_lang) for lang in LANGS}
    machine = MachineLoad()
    result = compare(model, tok, examples, args.batch_size)
    meta = {"model": args.model, "per_lang": args.per_lang, "batch_size": args.batch_size,
            "examples": sum(len(v) for v in examples.values()), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "native_bf16": cpu_has_native_bf16(), "machine_load": machine.result()}
    write_results(args.out_dir, "bf16_scoring", {"meta": meta, "result": result}, report(result, meta))
    return result


if __name__ == "__main__":
    main()
