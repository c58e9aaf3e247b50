"""In-context XNLI scoring: the demonstrations read once per batch (shared prefix through the KV cache)
against every row reading them (full contexts), side by side in one process.

The in-context baseline (`govtune.tasks.incontext`) writes the same k demonstrations of a language before
every test prompt. Both runs score the same requests (the first --per-lang XNLI evaluation examples of EN,
ZH, HI, k demonstrations per language from the pool rows, seeded; three label log-likelihoods per
example) with `govtune.evaluation.scoring.loglikelihoods`, the same model, batch size and threads: once
as it is ("shared"), once with the shared-prefix threshold out of reach ("full rows": longest-first
batches of full contexts, the scorer before prefixes were shared). Each runs once after a one-batch
warm-up, language by language, alternating which goes first (EN: shared first, ZH: full rows first, ...);
the difference of their log-likelihoods and of their predicted labels is reported.

    python bench/incontext_shared_prefix.py [--model gemma3-270m] [--per-lang 40] [--shots 3] [--batch-size 8]

Writes bench/results/incontext_shared_prefix.json and .md (atomically); --out-dir puts them elsewhere.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from govtune.data import XNLI_EVAL_ROWS, XNLI_POOL_ROWS  # noqa: E402
from govtune.evaluation import scoring, shared_prefix  # noqa: E402
from govtune.evaluation.scoring import loglikelihoods  # noqa: E402
from govtune.evaluation.xnli_eval import _fit_prompt  # noqa: E402
from govtune.machine_load import MachineLoad, describe  # noqa: E402
from govtune.models import load_model  # noqa: E402
from govtune.tasks import load_xnli  # noqa: E402
from govtune.tasks.incontext import with_context  # noqa: E402
from govtune.text.encoding import pad_token_id, special_prefix  # noqa: E402
from results_io import write_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
LANGS = ("en", "zh", "hi")


@contextlib.contextmanager
def full_rows():
    """The scorer without prefix sharing: no context group or batch reaches the threshold."""
    saved = scoring.SHARED_PREFIX_MIN, shared_prefix.SHARED_PREFIX_MIN
    scoring.SHARED_PREFIX_MIN = shared_prefix.SHARED_PREFIX_MIN = 10 ** 9
    try:
        yield
    finally:
        scoring.SHARED_PREFIX_MIN, shared_prefix.SHARED_PREFIX_MIN = saved


def incontext_requests(tok, per_lang: int, shots: int, seed: int) -> tuple[list, list[str]]:
    """(context ids, label ids) requests, three per example, and each example's language."""
    tests = {lang: load_xnli(lang, rows=XNLI_EVAL_ROWS, limit=per_lang) for lang in LANGS}
    pool = {lang: load_xnli(lang, rows=XNLI_POOL_ROWS) for lang in LANGS}
    exs = [e for rows in with_context(tests, pool, k=shots, seed=seed, task="xnli").values() for e in rows]
    prefix = special_prefix(tok)
    reqs = [r for e in exs for r in _fit_prompt(e, tok, prefix, None)[0]]
    return reqs, [e["lang"] for e in exs]


def compare(model, tok, reqs: list, langs: list[str], batch_size: int) -> dict:
    """Both paths over the same requests, language by language, alternating which goes first: other work
    on a shared machine then slows both alike instead of whichever ran while it did."""
    pad = pad_token_id(tok)
    scores = {"shared": np.zeros(len(reqs)), "full_rows": np.zeros(len(reqs))}
    seconds: dict[str, dict[str, float]] = {"shared": {}, "full_rows": {}}

    def run(name: str, key: str, idx: list[int]) -> None:
        with full_rows() if name == "full_rows" else contextlib.nullcontext():
            t0 = time.perf_counter()
            scores[name][idx] = loglikelihoods(model, [reqs[r] for r in idx], batch_size=batch_size, pad_id=pad)
            seconds[name][key] = time.perf_counter() - t0

    for name in scores:  # one-off costs of the first calls are no path's speed
        run(name, "warm-up", list(range(3 * batch_size)))
    for i, lang in enumerate(LANGS):
        idx = [r for r in range(len(reqs)) if langs[r // 3] == lang]
        for name in (("shared", "full_rows") if i % 2 == 0 else ("full_rows", "shared")):
            run(name, lang, idx)
    total = {name: sum(s[lang] for lang in LANGS) for name, s in seconds.items()}
    shared, full = scores["shared"], scores["full_rows"]
    return {"seconds": total, "seconds_per_language": seconds, "speedup": total["full_rows"] / total["shared"],
            "max_abs_loglik_diff": float(np.abs(shared - full).max()),
            "predictions_changed": int((shared.reshape(-1, 3).argmax(1) != full.reshape(-1, 3).argmax(1)).sum()),
            "context_tokens_mean": float(np.mean([len(c) for c, _ in reqs[::3]]))}


def report(result: dict, meta: dict) -> str:
    s, per = result["seconds"], result["seconds_per_language"]
    return "\n".join([
        "# In-context XNLI scoring: shared demonstrations read once vs full rows", "",
        f"`python bench/incontext_shared_prefix.py --model {meta['model']} --per-lang {meta['per_lang']} "
        f"--shots {meta['shots']} --batch-size {meta['batch_size']}`: {meta['examples']} XNLI evaluation examples "
        f"({', '.join(LANGS)}), {meta['shots']} demonstrations per language (seed {meta['seed']}), "
        f"{3 * meta['examples']} log-likelihood requests, contexts of {result['context_tokens_mean']:.0f} tokens on "
        f"average; {meta['threads']} torch threads, torch {meta['torch']}; each path once after a one-batch warm-up, "
        f"language by language, alternating which goes first.", "",
        describe(meta["machine_load"]), "",
        "| path | seconds | " + " | ".join(LANGS) + " |", "|---|---|" + "---|" * len(LANGS),
        *(f"| {label} | {s[name]:.1f} | " + " | ".join(f"{per[name][lang]:.1f}" for lang in LANGS) + " |"
          for name, label in (("shared", "shared prefix (demonstrations once per batch)"),
                              ("full_rows", "full rows (every row reads its demonstrations)"))), "",
        f"- speed-up: x{result['speedup']:.2f}",
        f"- max |log-likelihood difference|: {result['max_abs_loglik_diff']:.1e}",
        f"- predicted labels changed: {result['predictions_changed']} of {meta['examples']}", ""])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="gemma3-270m")
    ap.add_argument("--per-lang", type=int, default=40)
    ap.add_argument("--shots", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--out-dir", default=str(RESULTS))
    args = ap.parse_args(argv)
    if min(args.per_lang, args.shots, args.batch_size, args.threads) < 1:
        raise SystemExit("--per-lang, --shots, --batch-size and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    model, tok = load_model(args.model)
    reqs, langs = incontext_requests(tok, args.per_lang, args.shots, args.seed)
    machine = MachineLoad()
    result = compare(model, tok, reqs, langs, args.batch_size)
    meta = {"model": args.model, "per_lang": args.per_lang, "shots": args.shots, "seed": args.seed,
            "batch_size": args.batch_size, "examples": len(langs), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "machine_load": machine.result()}
    write_results(args.out_dir, "incontext_shared_prefix", {"meta": meta, "result": result}, report(result, meta))
    return result


if __name__ == "__main__":
    main()
