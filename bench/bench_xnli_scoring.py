"""XNLI scoring speed: govtune's shared-context scoring (prompt read once, labels from its KV cache) against
the lm-evaluation-harness layout (one padded row per example and label), side by side in one process.

    python bench/bench_xnli_scoring.py --model smollm2-135m-instruct --per-lang 8 --batch-size 8
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from govtune.data import XNLI_EVAL_ROWS
from govtune.evaluation.scoring import loglikelihoods
from govtune.evaluation.xnli_eval import _fit_prompt
from govtune.machine_load import MachineLoad, describe
from govtune.models import load_model
from govtune.tasks import load_xnli
from govtune.text.encoding import pad_batch, pad_token_id, special_prefix


@torch.inference_mode()
def one_row_per_request(model, requests, batch_size, pad_id):
    """Reference: every (context, continuation) is its own right-padded row with full logits."""
    out = [0.0] * len(requests)
    order = sorted(range(len(requests)), key=lambda r: -len(requests[r][0]) - len(requests[r][1]))
    for b in range(0, len(order), batch_size):
        idx = order[b:b + batch_size]
        seqs = [requests[r][0] + requests[r][1][:-1] for r in idx]
        ids, mask, pos = pad_batch(seqs, pad_id, "right")
        logp = F.log_softmax(model(input_ids=ids, attention_mask=mask, position_ids=pos).logits.float(), -1)
        for i, r in enumerate(idx):
            ctx, cont = requests[r]
            p = torch.arange(len(ctx) - 1, len(ctx) - 1 + len(cont))
            out[r] = float(logp[i, p, torch.tensor(cont)].sum())
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--langs", default="en,zh,hi")
    ap.add_argument("--per-lang", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    model, tok = load_model(args.model)
    prefix, pad = special_prefix(tok), pad_token_id(tok)
    exs = [e for lang in args.langs.split(",") for e in load_xnli(lang, rows=XNLI_EVAL_ROWS, limit=args.per_lang)]
    requests = [r for e in exs for r in _fit_prompt(e, tok, prefix, None)[0]]
    loglikelihoods(model, requests[:3], batch_size=1)  # warm-up
    machine = MachineLoad()
    t0 = time.perf_counter()
    ours = loglikelihoods(model, requests, batch_size=args.batch_size)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = one_row_per_request(model, requests, args.batch_size * 3, pad)  # same number of requests per batch
    t_ref = time.perf_counter() - t0
    load = machine.result()
    print(f"{len(exs)} examples ({args.langs}), {len(requests)} label scores, {torch.get_num_threads()} threads")
    print(f"shared context + KV cache: {t_ours:.2f} s ({len(exs) / t_ours:.2f} examples/s)")
    print(f"one row per label:         {t_ref:.2f} s ({len(exs) / t_ref:.2f} examples/s)")
    print(f"speed-up x{t_ref / t_ours:.2f}; max |log-lik difference| {np.abs(np.array(ours) - ref).max():.2e}")
    print(describe(load))


if __name__ == "__main__":
    main()
