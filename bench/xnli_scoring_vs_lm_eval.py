"""XNLI scoring: govtune against lm-evaluation-harness, the tool users would otherwise run, in one process.

Both score the same XNLI evaluation examples (shipped data, `govtune.data.XNLI_EVAL_ROWS`, the first
--per-lang of each of EN, ZH, HI) with the same prompts (`govtune.text.prompts`: `xnli_prompt` as the
context, each of `xnli_continuations` as a continuation: three log-likelihood requests per example), the
same model object, batch size and torch threads. lm-eval runs through its public model API,
`HFLM(pretrained=model, tokenizer=tok, batch_size=B).loglikelihood(instances)`, govtune through
`govtune.evaluation.xnli_eval.score_examples`. The two alternate, each going first in every other repeat,
after one warm-up run each; examples/s is the median over the repeats.

Batch size: govtune batches B prompts (each prompt read once; its three labels are scored from its KV
cache); lm-eval batches B rows of prompt + continuation (one row per prompt when every label is one
token, which lm-eval then reads off one row; one row per label otherwise). That is what each tool does
with `--batch_size B`.

Equality: the class probabilities (softmax of the three log-likelihoods) of the two should agree to 1e-4.
lm-eval is given `add_bos_token` = whether govtune's tokenizer puts a special prefix (BOS) before text,
so both read the same tokens (lm-eval's default would add a ByT5 tokenizer's EOS after the prompt).
Where a token merges across the prompt / label boundary the two split the tokens differently (govtune
scores from the longest common prefix, lm-eval from the length of the prompt's own encoding); such
examples are counted in `token_split_differs`.

    python bench/xnli_scoring_vs_lm_eval.py [--model smollm2-135m-instruct] [--per-lang 50] [--batch-size 8]
                                            [--repeats 3] [--threads 2]

Writes bench/results/xnli_scoring_vs_lm_eval.json and .md (atomically); --out-dir puts them elsewhere.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from govtune.data import XNLI_EVAL_ROWS  # noqa: E402
from govtune.evaluation.xnli_eval import score_examples  # noqa: E402
from govtune.models import load_model  # noqa: E402
from govtune.tasks import load_xnli  # noqa: E402
from govtune.text.encoding import encode_pair, special_prefix  # noqa: E402
from govtune.text.prompts import xnli_continuations, xnli_prompt  # noqa: E402

from govtune.machine_load import MachineLoad, describe  # noqa: E402
from results_io import write_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
LANGS = ("en", "zh", "hi")
GOAL_SPEEDUP = 2.0  # govtune examples/s over lm-eval's
GOAL_PROB_DIFF = 1e-4


def xnli_examples(per_lang: int, langs=LANGS) -> list[dict]:
    if per_lang < 1:
        raise ValueError(f"--per-lang must be >= 1, got {per_lang}")
    return [ex for lang in langs for ex in load_xnli(lang, rows=XNLI_EVAL_ROWS, limit=per_lang)]


def text_requests(examples: list[dict]) -> list[tuple[str, str]]:
    """(context, continuation) strings, three per example in LABELS order: what lm-eval's XNLI-style tasks
    hand to the model, built from govtune's prompts."""
    return [(ex.get("context", "") + xnli_prompt(ex["premise"], ex["hypothesis"], ex["lang"]), cont)
            for ex in examples for cont in xnli_continuations(ex["lang"])]


def harness(model, tokenizer, batch_size: int):
    """lm-eval's HuggingFace model wrapped around the already loaded model (no second copy, no download)."""
    from lm_eval.models.huggingface import HFLM

    # HFLM warns at length that a model object (not a name) was passed: that is the point here.
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size,
                add_bos_token=bool(special_prefix(tokenizer)))


def normalise(loglik: np.ndarray) -> np.ndarray:
    """(N, 3) log-likelihoods -> class probabilities (softmax per row), as govtune's score_examples."""
    z = loglik - loglik.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def lm_eval_loglik(lm, examples: list[dict]) -> np.ndarray:
    from lm_eval.api.instance import Instance

    instances = [Instance(request_type="loglikelihood", doc=examples[i // 3], arguments=req, idx=i % 3)
                 for i, req in enumerate(text_requests(examples))]
    out = lm.loglikelihood(instances, disable_tqdm=True)
    return np.array([ll for ll, _ in out], dtype=np.float64).reshape(len(examples), 3)


def token_split_differs(lm, tokenizer, examples: list[dict]) -> int:
    """Examples where lm-eval's (context, continuation) token ids differ from govtune's for some label."""
    prefix = special_prefix(tokenizer)
    reqs = text_requests(examples)
    differ = [lm._encode_pair(ctx, cont) != encode_pair(tokenizer, ctx, cont, prefix) for ctx, cont in reqs]
    return int(np.array(differ).reshape(len(examples), 3).any(axis=1).sum())


def compare(model, tokenizer, examples: list[dict], *, batch_size: int = 8, repeats: int = 1,
            warmup: bool = True) -> dict:
    """Score `examples` with both tools, alternating who goes first; timings, probabilities, differences."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    lm = harness(model, tokenizer, batch_size)

    def run_govtune():
        return score_examples(model, tokenizer, examples, batch_size=batch_size)[0]

    def run_lm_eval():
        return normalise(lm_eval_loglik(lm, examples))

    runs = {"govtune": run_govtune, "lm_eval": run_lm_eval}
    if warmup:  # first calls pay one-off costs (lazy imports, allocator growth) that are no tool's speed
        score_examples(model, tokenizer, examples[:1], batch_size=batch_size)
        lm_eval_loglik(lm, examples[:1])
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    probs: dict[str, np.ndarray] = {}
    repeat_diff = {name: 0.0 for name in runs}
    for r in range(repeats):
        for name in (("govtune", "lm_eval") if r % 2 == 0 else ("lm_eval", "govtune")):
            t0 = time.perf_counter()
            p = runs[name]()
            seconds[name].append(time.perf_counter() - t0)
            if name in probs:  # repeats should agree; a drift would show here, not abort the measurement
                repeat_diff[name] = max(repeat_diff[name], float(np.abs(p - probs[name]).max()))
            probs[name] = p
    n = len(examples)
    speed = {name: n / statistics.median(s) for name, s in seconds.items()}
    diff = np.abs(probs["govtune"] - probs["lm_eval"])
    agree = probs["govtune"].argmax(1) == probs["lm_eval"].argmax(1)
    return {"examples": n, "languages": sorted({ex["lang"] for ex in examples}, key=LANGS.index),
            "requests": 3 * n, "batch_size": batch_size, "repeats": repeats, "threads": torch.get_num_threads(),
            "seconds": seconds, "examples_per_s": speed, "speedup": speed["govtune"] / speed["lm_eval"],
            "max_abs_prob_diff": float(diff.max()), "same_prediction": int(agree.sum()),
            "token_split_differs": token_split_differs(lm, tokenizer, examples), "max_repeat_diff": repeat_diff,
            "probs": {name: p.tolist() for name, p in probs.items()}}


def report(result: dict, meta: dict) -> str:
    s, speed = result["speedup"], result["examples_per_s"]
    d = result["max_abs_prob_diff"]
    lines = ["# XNLI scoring: govtune vs lm-evaluation-harness", "",
             f"{meta['model']}, {result['examples']} XNLI evaluation examples "
             f"({', '.join(result['languages'])}; {result['requests']} log-likelihood requests), batch size "
             f"{result['batch_size']}, {result['threads']} torch threads, median of {result['repeats']} alternating "
             f"repeats after one warm-up each; lm-eval {meta['lm_eval']}, torch {meta['torch']}.", "",
             describe(meta["machine_load"]), "",
             "| tool | examples/s | seconds per run (median) |", "|---|---|---|"]
    for name, label in (("govtune", "govtune score_examples"), ("lm_eval", "lm-eval HFLM.loglikelihood")):
        lines.append(f"| {label} | {speed[name]:.2f} | {statistics.median(result['seconds'][name]):.2f} |")
    lines += ["",
              f"- speed: govtune / lm-eval = {s:.2f}x "
              f"(goal >= {GOAL_SPEEDUP}: {'met' if s >= GOAL_SPEEDUP else 'NOT met'})",
              f"- class probabilities: max |difference| {d:.1e} (goal <= {GOAL_PROB_DIFF:.0e}: "
              f"{'met' if d <= GOAL_PROB_DIFF else 'NOT met'}); same predicted class on "
              f"{result['same_prediction']} of {result['examples']} examples",
              f"- examples whose prompt / label token split differs between the tools: "
              f"{result['token_split_differs']}", "",
              "Same examples, prompts, model object, batch size and threads for both; see the docstring of "
              "bench/xnli_scoring_vs_lm_eval.py for what the batch size means to each tool.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct",
                    help="offline name (smollm2-135m-instruct, gemma3-270m, tiny-llama) or a checkpoint path")
    ap.add_argument("--per-lang", type=int, default=50, help="examples per language (EN, ZH, HI)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--out-dir", default=str(RESULTS))
    args = ap.parse_args(argv)
    if args.batch_size < 1 or args.threads < 1:
        raise SystemExit("--batch-size and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    model, tok = load_model(args.model)
    examples = xnli_examples(args.per_lang)
    machine = MachineLoad()
    result = compare(model, tok, examples, batch_size=args.batch_size, repeats=args.repeats)
    import lm_eval

    meta = {"model": args.model, "per_lang": args.per_lang, "torch": torch.__version__,
            "lm_eval": getattr(lm_eval, "__version__", "?"), "machine_load": machine.result()}
    write_results(args.out_dir, "xnli_scoring_vs_lm_eval", {"meta": meta, "result": result}, report(result, meta))
    return result


if __name__ == "__main__":
    main()
