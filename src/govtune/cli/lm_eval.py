"""`govtune lm-eval`: lm-evaluation-harness on a model as loaded, an adapter applied in memory
(govtune.evaluation.lm_eval_harness), with govtune's per-language analysis of its multiple-choice tasks
(govtune.evaluation.lm_eval_analysis)."""

from __future__ import annotations

from pathlib import Path

import torch

from govtune.atomic import atomic_write_json, atomic_write_text
from govtune.cli.formatting import MODEL_HELP
from govtune.cli.load import add_quantize_argument, load_for_eval
from govtune.evaluation.lm_eval_analysis import (COMPARISON_FILE, PER_LANGUAGE_FILE, analyse, comparable, compare,
                                                 markdown, plan_run)
from govtune.evaluation.lm_eval_harness import (REPORT_FILE, RESULTS_FILE, TASKS_DIR, check_languages, check_options,
                                                evaluate_lm_eval, metric_names, report_markdown, summarize,
                                                task_manager)
from govtune.evaluation.lm_eval_samples import read_run


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "lm-eval", help="run lm-evaluation-harness tasks on a model (optionally with a govtune adapter)",
        description="Run lm-evaluation-harness on the model as loaded (adapter applied in memory, no export) "
                    "and write DIR/results.json (lm-eval's results), DIR/samples_<task>_<date>.jsonl (its "
                    "per-sample outputs), DIR/per_language.json (govtune's per-language accuracy, calibration and "
                    "parity of the multiple-choice tasks), DIR/report.md and DIR/tasks/ (the local govtune-xnli "
                    "task YAMLs).")
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--adapter", default=None, help="directory of a govtune adapter to load onto the model")
    add_quantize_argument(p)
    p.add_argument("--tasks", required=True, help="lm-eval task or group names, comma-separated "
                                                   "(offline: govtune-xnli, govtune-xnli-en, ...)")
    p.add_argument("--include-path", action="append", default=None,
                   help="directory of extra lm-eval task YAMLs (repeatable)")
    p.add_argument("--limit", type=int, default=None, help="examples per task (default: all)")
    p.add_argument("--num-fewshot", type=int, default=None, help="in-context examples (default: the task's)")
    p.add_argument("--batch-size", type=int, default=8, help="requests per forward pass")
    p.add_argument("--model-args", default=None,
                   help="extra HFLM arguments as lm-eval's --model_args takes them, e.g. add_bos_token=False")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--lang-map", default=None,
                   help="languages of tasks whose names end in none, TASK=LANG,... (ISO 639-1/639-3 or FLORES-200)")
    p.add_argument("--calibrate-on", default=None,
                   help="tasks or groups (comma-separated), one per language, evaluated too and used only to fit "
                        "the per-language temperatures (a validation split: govtune-xnli-val for govtune-xnli)")
    p.add_argument("--compare-to", default=None, metavar="DIR",
                   help="another run's --out directory (or lm_eval --log_samples output): paired differences "
                        "on the same documents, this run minus DIR")
    p.add_argument("--no-per-language", action="store_true",
                   help="skip govtune's per-language analysis (per_language.json)")
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
    calibrate_on = _names(args.calibrate_on)
    if calibrate_on and args.no_per_language:
        raise ValueError("--calibrate-on fits temperatures for the per-language analysis: drop --no-per-language")
    run_tasks = tasks + [t for t in calibrate_on if t not in tasks]
    manager = task_manager(run_tasks, out / TASKS_DIR, args.include_path)  # a wrong name fails before the model loads
    lang_map = parse_lang_map(args.lang_map)
    other = None
    if not args.no_per_language:  # a language not found, or a missing --compare-to run, fails before the model runs
        planned = check_languages(run_tasks, manager, lang_map, calibrate_on)
        other = read_run(args.compare_to) if args.compare_to else None
        if other is not None and planned is not None:
            comparable(planned.suites, plan_run(other, lang_map).suites)
    model, tok = load_for_eval(args.model, args.adapter, args.quantize)
    model.to(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    results = evaluate_lm_eval(model, tok, run_tasks, manager, limit=args.limit, num_fewshot=args.num_fewshot,
                               batch_size=args.batch_size, model_args=model_args, samples_dir=out)
    results["config"]["model"] = args.model
    results["config"]["adapter"] = args.adapter
    results["config"]["quantize"] = args.quantize
    results["config"]["calibrate_on"] = calibrate_on  # fit temperatures only; a --compare-to of this run skips them
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
    report = report_markdown(results, title, reproduce)
    atomic_write_text(out / REPORT_FILE, report)  # kept should the analysis refuse (a calibration split overlaps)
    if not args.no_per_language:
        atomic_write_text(out / REPORT_FILE, report + "\n" + _per_language(out, lang_map, calibrate_on, other))
    print(f"wrote {out / RESULTS_FILE}, {out / REPORT_FILE}")
    for task, row in summarize(results).items():
        print(f"{task}: " + "  ".join(f"{m} {row[m]:.4f}" for m in metric_names(row)))
    return 0


def _names(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def parse_lang_map(text: str | None) -> dict[str, str]:
    """`xnli_x=sw,my_task=swh_Latn` -> {task: language code}."""
    out = {}
    for item in _names(text):
        task, sep, lang = item.partition("=")
        if not sep or not task.strip() or not lang.strip():
            raise ValueError(f"--lang-map entry {item!r} is not TASK=LANG: write e.g. --lang-map my_task=sw")
        out[task.strip()] = lang.strip()
    return out


def _per_language(out: Path, lang_map: dict[str, str], calibrate_on: list[str], other) -> str:
    """Write per_language.json (and comparison.json against `other`) from the samples files just written;
    returns the report's section."""
    run = read_run(out)
    analysis = analyse(run, lang_map, calibrate_on)
    atomic_write_json(out / PER_LANGUAGE_FILE, analysis)
    comparison = compare(run, other, lang_map) if other is not None else None
    if comparison is not None:
        atomic_write_json(out / COMPARISON_FILE, comparison)
    for name, s in analysis["suites"].items():
        print(f"{name}: Macro {s['macro']:.1f}  parity gap {s['parity_gap']:.1f}  Avg-ECE {s['avg_ece']:.1f}"
              + (f"  Avg-ECE after T {s['avg_ece_ts']:.1f}" if "avg_ece_ts" in s else ""))
    return markdown(analysis, comparison)
