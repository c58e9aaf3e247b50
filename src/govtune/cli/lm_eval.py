"""`govtune lm-eval`: lm-evaluation-harness on a model as loaded, an adapter applied in memory
(govtune.evaluation.lm_eval_harness)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from govtune.atomic import atomic_write_json, atomic_write_text
from govtune.cli.load import add_quantize_argument, load_for_eval
from govtune.evaluation.lm_eval_harness import (REPORT_FILE, RESULTS_FILE, TASKS_DIR, check_options, evaluate_lm_eval,
                                                metric_names, report_markdown, summarize, task_manager)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "lm-eval", help="run lm-evaluation-harness tasks on a model (optionally with a govtune adapter)",
        description="Run lm-evaluation-harness on the model as loaded (adapter applied in memory, no export) "
                    "and write DIR/results.json (lm-eval's results), DIR/report.md and DIR/tasks/ (the local "
                    "govtune-xnli task YAMLs).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="model name or path (smollm2-135m-instruct, tiny-llama, a "
                                                   "transformers checkpoint directory or hub name)")
    p.add_argument("--adapter", default=None, help="directory of a govtune adapter to load onto the model")
    add_quantize_argument(p)
    p.add_argument("--tasks", required=True, help="lm-eval task or group names, comma-separated "
                                                   "(offline: govtune-xnli, govtune-xnli-en, ...)")
    p.add_argument("--include-path", action="append", default=None,
                   help="directory of extra lm-eval task YAMLs (repeatable)")
    p.add_argument("--limit", type=int, default=None, help="examples per task (default: all)")
    p.add_argument("--num-fewshot", type=int, default=None, help="in-context examples (default: the task's)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--model-args", default=None,
                   help="extra HFLM arguments as lm-eval's --model_args takes them, e.g. add_bos_token=False")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=run)


def run(args) -> int:
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    check_options(args.limit, args.num_fewshot, args.batch_size)
    out = Path(args.out)
    model_args = None
    if args.model_args:
        from lm_eval.utils import simple_parse_args_string

        model_args = simple_parse_args_string(args.model_args)
        if "pretrained" in model_args or "tokenizer" in model_args:
            raise ValueError("--model-args must not set pretrained or tokenizer: pass the model with --model")
    manager = task_manager(tasks, out / TASKS_DIR, args.include_path)  # a wrong name fails before the model loads
    model, tok = load_for_eval(args.model, args.adapter, args.quantize)
    model.to(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    results = evaluate_lm_eval(model, tok, tasks, manager, limit=args.limit,
                               num_fewshot=args.num_fewshot, batch_size=args.batch_size, model_args=model_args)
    results["config"]["model"] = args.model
    results["config"]["adapter"] = args.adapter
    results["config"]["quantize"] = args.quantize
    atomic_write_json(out / RESULTS_FILE, results)
    title = f"lm-evaluation-harness: {args.model}" + (f" + adapter {args.adapter}" if args.adapter else "")
    include = " ".join(f"--include_path {p}" for p in [out / TASKS_DIR, *(args.include_path or [])])
    extra = f",{args.model_args}" if args.model_args else ""
    # lm_eval loads checkpoints itself: a merged adapter or a govtune alias (tiny-llama) needs a directory
    pretrained = ("MERGED_DIR" if args.adapter else args.model if Path(args.model).is_dir() or "/" in args.model
                  else "CHECKPOINT_DIR")
    reproduce = (f"lm_eval run --model hf --model_args pretrained={pretrained}{extra} --device {model.device} "
                 f"{include} --tasks {','.join(tasks)}"
                 + (f" --limit {args.limit}" if args.limit else "")
                 + (f" --num_fewshot {args.num_fewshot}" if args.num_fewshot is not None else "")
                 + f" --batch_size {args.batch_size}")
    atomic_write_text(out / REPORT_FILE, report_markdown(results, title, reproduce))
    print(f"wrote {out / RESULTS_FILE}, {out / REPORT_FILE}")
    for task, row in summarize(results).items():
        print(f"{task}: " + "  ".join(f"{m} {row[m]:.4f}" for m in metric_names(row)))
    return 0
