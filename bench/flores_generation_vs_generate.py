"""FLORES generation: govtune's batched greedy decoder against a plain `model.generate` loop with the same
stop rule, side by side in one process.

Both translate the same FLORES evaluation lines (shipped data, the first --per-pair lines of each
direction) from the same prompts: those `govtune.evaluation.evaluate_flores` builds, each preceded by
--shots demonstrations from the pool lines (so a base model translates instead of copying), with the same
per-row token budgets, the same batches (longest prompts first, one direction's demonstrations per batch:
`govtune.evaluation.shared_prefix.prefix_batches`) and the same model object and threads.
The prompts are captured from one `evaluate_flores` call (which is also the warm-up), then each generator
runs on them --repeats times, alternating which goes first; examples/s is the median.

- govtune: `govtune.evaluation.scoring.generate_lines`: a row leaves the batch (input, mask and KV cache) as
  soon as its translation is complete (as many sentence ends as its source, or the newline ending the
  answer line), it emits EOS or it reaches its budget.
- reference: `model.generate(do_sample=False)` per batch with `max_new_tokens` = the batch's largest budget
  and a StoppingCriteria applying the same rule per row (transformers >= 4.39 stops rows one by one, but
  keeps the finished ones in the batch, padding them, until the last row stops); each row's text is then
  cut exactly as govtune cuts it.

Equality: the hypotheses should be identical (greedy decoding of the same tokens; left padding with
position ids counted over real tokens in both); the report counts identical rows and gives both BLEU scores.

    python bench/flores_generation_vs_generate.py [--model gemma3-270m] [--per-pair 24] [--shots 3]
                                                 [--batch-size 8] [--repeats 3] [--threads 2]

Writes bench/results/flores_generation_vs_generate.json and .md (atomically); --out-dir puts them elsewhere.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from govtune.data import FLORES_EVAL_LINES, FLORES_POOL_LINES  # noqa: E402
from govtune.data.flores import load_flores  # noqa: E402
from govtune.evaluation import flores_eval  # noqa: E402
from govtune.tasks.incontext import attach, flores_demonstrations  # noqa: E402
from govtune.evaluation.metrics import bleu_with_signature  # noqa: E402
from govtune.evaluation.shared_prefix import prefix_batches  # noqa: E402
from govtune.evaluation.scoring import (_eos_ids, _translation_done, cut_sentence, decode_complete,  # noqa: E402
                                        generate_lines, pad_token_id)
from govtune.models import load_model  # noqa: E402

from govtune.machine_load import MachineLoad, describe  # noqa: E402
from results_io import write_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PAIRS = ("en-zh", "en-es")


def flores_examples(per_pair: int, shots: int, seed: int = 0, pairs=PAIRS) -> dict[str, list[dict]]:
    """The first `per_pair` evaluation lines of each direction, with `shots` pool-line demonstrations."""
    if per_pair < 1 or shots < 0:
        raise ValueError(f"--per-pair must be >= 1 and --shots >= 0, got {per_pair} and {shots}")
    tests = {p: load_flores(*p.split("-"), lines=FLORES_EVAL_LINES, limit=per_pair) for p in pairs}
    if not shots:
        return tests
    demos = {p: flores_demonstrations(load_flores(*p.split("-"), lines=FLORES_POOL_LINES), rows, shots, seed)
             for p, rows in tests.items()}
    return attach(tests, demos, "flores")


def capture_requests(model, tokenizer, examples, *, batch_size: int, max_new_tokens: int) -> dict:
    """The exact arguments `evaluate_flores` hands its generator (prompt ids, budgets, scripts, sentence
    counts), and the references, from one real call (which also warms both up)."""
    seen = {}

    def spy(model_, tokenizer_, prompts, **kwargs):
        seen.update(prompts=prompts, **kwargs)
        return generate_lines(model_, tokenizer_, prompts, **kwargs)

    with mock.patch.object(flores_eval, "generate_lines", spy):
        _, preds = flores_eval.evaluate_flores(model, tokenizer, examples, batch_size=batch_size,
                                               max_new_tokens=max_new_tokens, progress=False)
    seen.update(progress=False, references=[p["reference"] for p in preds], pairs=[p["pair"] for p in preds],
                languages=[p["language"] for p in preds])
    return seen


class RowStop(StoppingCriteria):
    """govtune's stop rule for `generate`, row by row: done once the row has `budget` new tokens or its
    decoded text holds a confirmed translation end. Records where each row stopped, since `generate` goes on
    writing padding into finished rows."""

    def __init__(self, tokenizer, prompt_len: int, budgets, scripts, sentences):
        self.tokenizer, self.prompt_len = tokenizer, prompt_len
        self.budgets, self.scripts, self.sentences = budgets, scripts, sentences
        self.stop_at: list[int | None] = [None] * len(budgets)

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.BoolTensor:
        new = input_ids[:, self.prompt_len:]
        out = []
        for row, toks in enumerate(new.tolist()):
            if self.stop_at[row] is None:
                text = self.tokenizer.decode(toks, skip_special_tokens=True)
                if len(toks) >= self.budgets[row] or _translation_done(text, self.scripts[row], self.sentences[row]):
                    self.stop_at[row] = len(toks)
            out.append(self.stop_at[row] is not None)
        return torch.tensor(out, dtype=torch.bool, device=input_ids.device)


@torch.inference_mode()
def reference_generate_lines(model, tokenizer, prompts, *, max_new_tokens, batch_size, budgets, scripts,
                             sentences, **_) -> list[str]:
    """Same contract as `generate_lines`, written as users write it with `model.generate`."""
    pad, eos = pad_token_id(tokenizer), _eos_ids(model, tokenizer)
    steps = [min(max_new_tokens, b) for b in budgets]
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    out = [""] * len(prompts)
    for idx in prefix_batches(order, lambda i: prompts[i], batch_size):
        width = max(len(prompts[i]) for i in idx)
        ids = torch.tensor([[pad] * (width - len(prompts[i])) + prompts[i] for i in idx])
        mask = torch.tensor([[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in idx])
        stop = RowStop(tokenizer, width, [steps[i] for i in idx], [scripts[i] for i in idx],
                       [sentences[i] for i in idx])
        gen = model.generate(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                             do_sample=False, max_new_tokens=max(steps[i] for i in idx), pad_token_id=pad,
                             eos_token_id=eos, stopping_criteria=StoppingCriteriaList([stop]))
        for row, i in enumerate(idx):
            toks = gen[row, width:].tolist()
            toks = toks[:stop.stop_at[row]] if stop.stop_at[row] is not None else toks
            toks = toks[:next((k for k, t in enumerate(toks) if t in eos), len(toks))]
            out[i] = cut_sentence(decode_complete(tokenizer, toks), scripts[i], sentences[i])
    return out


def compare(model, tokenizer, requests: dict, *, repeats: int = 1) -> dict:
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    args = {k: v for k, v in requests.items() if k not in ("references", "pairs", "languages")}
    prompts = args.pop("prompts")
    runs = {"govtune": generate_lines, "generate": reference_generate_lines}
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    hyps: dict[str, list[str]] = {}
    for r in range(repeats):
        for name in (("govtune", "generate") if r % 2 == 0 else ("generate", "govtune")):
            t0 = time.perf_counter()
            hyps[name] = runs[name](model, tokenizer, prompts, **args)
            seconds[name].append(time.perf_counter() - t0)
    n = len(prompts)
    speed = {name: n / statistics.median(s) for name, s in seconds.items()}
    bleu = {}
    for name, hy in hyps.items():
        bleu[name] = {}
        for pair in dict.fromkeys(requests["pairs"]):
            rows = [k for k, p in enumerate(requests["pairs"]) if p == pair]
            lang = requests["languages"][rows[0]]
            bleu[name][pair] = bleu_with_signature([hy[k] for k in rows],
                                                   [requests["references"][k] for k in rows], lang)[0]
    same = sum(a == b for a, b in zip(hyps["govtune"], hyps["generate"]))
    return {"examples": n, "batch_size": args["batch_size"], "max_new_tokens": args["max_new_tokens"],
            "mean_budget": sum(args["budgets"]) / n, "repeats": repeats, "threads": torch.get_num_threads(),
            "seconds": seconds, "examples_per_s": speed, "speedup": speed["govtune"] / speed["generate"],
            "identical_hypotheses": same, "bleu": bleu, "hypotheses": hyps}


def report(result: dict, meta: dict) -> str:
    speed, s = result["examples_per_s"], result["speedup"]
    lines = ["# FLORES generation: govtune vs a `model.generate` loop", "",
             f"{meta['model']}, {result['examples']} FLORES evaluation lines ({', '.join(meta['pairs'])}; "
             f"{meta['shots']} in-context demonstrations each), batch size {result['batch_size']}, budget per row "
             f"{result['mean_budget']:.1f} new tokens on average (at most {result['max_new_tokens']}), "
             f"{result['threads']} torch threads, median of {result['repeats']} alternating repeats after one "
             f"warm-up; transformers {meta['transformers']}, torch {meta['torch']}.", "",
             describe(meta["machine_load"]), "",
             "| generator | examples/s | seconds per run (median) | " + " | ".join(f"BLEU {p}" for p in meta["pairs"]) + " |",
             "|---|---|---|" + "---|" * len(meta["pairs"])]
    for name, label in (("govtune", "govtune generate_lines"), ("generate", "model.generate + StoppingCriteria")):
        lines.append(f"| {label} | {speed[name]:.2f} | {statistics.median(result['seconds'][name]):.2f} | "
                     + " | ".join(f"{result['bleu'][name][p]:.1f}" for p in meta["pairs"]) + " |")
    lines += ["", f"- speed: govtune / generate = {s:.2f}x",
              f"- identical hypotheses: {result['identical_hypotheses']} of {result['examples']}", "",
              "Same prompts, budgets, batches, stop rule, model object and threads for both; see the docstring of "
              "bench/flores_generation_vs_generate.py.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="gemma3-270m",
                    help="offline name (gemma3-270m, smollm2-135m-instruct, tiny-llama) or a checkpoint path")
    ap.add_argument("--per-pair", type=int, default=24, help="evaluation lines per direction (EN-ZH, EN-ES)")
    ap.add_argument("--shots", type=int, default=3, help="in-context demonstrations per line (pool lines)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--out-dir", default=str(RESULTS))
    args = ap.parse_args(argv)
    if args.batch_size < 1 or args.threads < 1 or args.max_new_tokens < 1:
        raise SystemExit("--batch-size, --threads and --max-new-tokens must be >= 1")
    torch.set_num_threads(args.threads)
    model, tok = load_model(args.model)
    model.eval()
    machine = MachineLoad()
    requests = capture_requests(model, tok, flores_examples(args.per_pair, args.shots),
                                batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
    result = compare(model, tok, requests, repeats=args.repeats)
    import transformers

    meta = {"model": args.model, "per_pair": args.per_pair, "shots": args.shots, "pairs": list(PAIRS),
            "torch": torch.__version__, "transformers": transformers.__version__, "machine_load": machine.result()}
    write_results(args.out_dir, "flores_generation_vs_generate", {"meta": meta, "result": result},
                  report(result, meta))
    return result


if __name__ == "__main__":
    main()
