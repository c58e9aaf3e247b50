"""General benchmarks through lm-evaluation-harness, on the in-memory model (adapted or merged).

govtune does not rewrite the ecosystem's benchmarks (SPEC §3): the model is wrapped in lm-eval's own
`HFLM(pretrained=model, tokenizer=tok)` and run with `lm_eval.simple_evaluate`, so a number here is the
number `lm_eval --model hf --model_args pretrained=<merged checkpoint>` reports for the same task, limit,
few-shot count and batch size, without exporting the checkpoint first. Offline, the local task
`govtune-xnli` (govtune.tasks.lm_eval_xnli) runs on the shipped data; lm-eval's built-in tasks need their
datasets from a hub (or a filled Hugging Face cache)."""

from __future__ import annotations

import difflib
import json
import math
from pathlib import Path
from typing import Any

import torch

from govtune.atomic import atomic_write_json, atomic_write_text
from govtune.evaluation.cli import add_quantize_argument, load_for_eval
from govtune.evaluation.lm_eval_analysis import (COMPARISON_FILE, PER_LANGUAGE_FILE, Plan, analyse, comparable,
                                                 compare, markdown, plan_run, plan_tasks)
from govtune.evaluation.lm_eval_samples import read_run, write_samples
from govtune.tasks.lm_eval_xnli import write_tasks

RESULTS_FILE = "results.json"
REPORT_FILE = "report.md"
TASKS_DIR = "tasks"  # the rendered govtune tasks: an lm-eval --include_path


def _lm_eval():
    # lm-evaluation-harness is an optional extra (and slow to import): loaded here, with an install hint.
    try:
        import lm_eval
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError("lm-evaluation-harness is not installed: `pip install 'govtune[lmeval]'` "
                                  "(or `pip install lm-eval`)") from e
    return lm_eval


def task_manager(tasks: list[str], tasks_dir: str | Path, include_path: list[str | Path] | None = None):
    """An lm-eval TaskManager that knows `tasks`: govtune's rendered into tasks_dir, then include_path,
    then lm-eval's built-in tasks (indexed only when a name needs them: that takes seconds)."""
    _lm_eval()
    from lm_eval.tasks import TaskManager

    if not tasks:
        raise ValueError("no lm-eval task given: pass e.g. --tasks govtune-xnli")
    paths = [write_tasks(tasks_dir)]
    for p in include_path or []:
        if not Path(p).is_dir():
            raise FileNotFoundError(f"--include-path {p} is not a directory of lm-eval task YAMLs")
        paths.append(Path(p))
    local = TaskManager(include_path=[str(p) for p in paths], include_defaults=False)
    if all(t in local.all_tasks for t in tasks):
        return local
    full = TaskManager(include_path=[str(p) for p in paths])
    unknown = [t for t in tasks if t not in full.all_tasks]
    if unknown:
        hints = "".join(f" ({t!r}: did you mean {', '.join(repr(c) for c in close)}?)" for t in unknown
                        if (close := difflib.get_close_matches(t, full.all_tasks, n=3, cutoff=0.6)))
        raise ValueError(
            f"unknown lm-eval task{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}{hints}. "
            f"Available offline: {', '.join(local.all_tasks)} (govtune's, and those of --include-path DIR, a "
            f"directory of lm-eval task YAMLs). lm-eval's {len(full.all_tasks) - len(local.all_tasks)} built-in "
            f"task, group and tag names (`lm-eval ls tasks`) also run where their datasets can be downloaded.")
    return full


def check_languages(tasks: list[str], manager, lang_map: dict[str, str] | None = None,
                    calibrate_on: list[str] = ()) -> Plan | None:
    """Refuse, before any scoring, a multiple-choice task whose language is neither in its name nor in
    `lang_map` (and the other errors of the per-language plan). Loads the tasks (their documents); tasks
    whose data cannot be loaded here fail in evaluate_lm_eval with its message, or are checked again by the
    analysis after scoring."""
    try:
        loaded = manager.load(list(tasks))
    except Exception:  # noqa: BLE001 - any dataset-loading failure (no hub, no cache): evaluate_lm_eval says what
        return None
    return plan_tasks(loaded, lang_map, calibrate_on)


def check_options(limit: int | None, num_fewshot: int | None, batch_size: int) -> None:
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1 (examples per task), got {limit}")
    if num_fewshot is not None and num_fewshot < 0:
        raise ValueError(f"--num-fewshot must be >= 0, got {num_fewshot}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")


def evaluate_lm_eval(model, tokenizer, tasks: list[str], manager, limit: int | None = None,
                     num_fewshot: int | None = None, batch_size: int = 8, model_args: dict | None = None,
                     bootstrap_iters: int = 100000, samples_dir: str | Path | None = None) -> dict[str, Any]:
    """lm-eval's results dict (JSON-safe) for `model` as it is in memory, with the tasks of `manager`
    (from `task_manager`). `model_args` go to HFLM as `--model_args` would (e.g. {"add_bos_token": False}).
    The model stays on its device; HFLM puts it in eval mode, its former mode is restored afterwards.
    With `samples_dir`, lm-eval's per-sample outputs are written there as its `--log_samples` writes them
    (samples_<task>_<date>.jsonl) and `config.samples` of the results names each task's file."""
    lm_eval = _lm_eval()
    from lm_eval.models.huggingface import HFLM
    from lm_eval.utils import handle_non_serializable

    check_options(limit, num_fewshot, batch_size)
    was_training = model.training
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, **(model_args or {}))
    try:
        results = lm_eval.simple_evaluate(model=lm, tasks=list(tasks), limit=limit, num_fewshot=num_fewshot,
                                          batch_size=batch_size, task_manager=manager,
                                          log_samples=samples_dir is not None,
                                          bootstrap_iters=bootstrap_iters)
    except ConnectionError as e:
        raise FileNotFoundError(
            f"an lm-eval task needs a dataset this machine cannot download ({e}). Offline, run govtune-xnli "
            f"or tasks of your own with local data files (--include-path DIR); hub tasks run unchanged where "
            f"a hub is reachable or HF_DATASETS_CACHE already holds their data") from e
    finally:
        model.train(was_training)
    samples = results.pop("samples", None)
    if samples_dir is not None:
        results["config"]["samples"] = write_samples(samples_dir, samples)
    # numpy scalars and the tasks' callables become plain JSON values, as in lm-eval's own results files
    return json.loads(json.dumps(results, default=handle_non_serializable))


def summarize(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{task: {metric: value, metric_stderr: stderr, "n": examples}} from lm-eval's results, values as
    lm-eval reports them (accuracy as a fraction). Filters other than lm-eval's default `none` stay in
    the name (`exact_match,strict-match` -> `exact_match[strict-match]`)."""
    out: dict[str, dict[str, float]] = {}
    n_samples = results.get("n-samples", {})
    for task, entry in results.get("results", {}).items():
        row: dict[str, float] = {}
        for key, value in entry.items():
            if "," not in key or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue  # alias, name, sample_len, sample_count; "N/A" stderrs
            if isinstance(value, float) and not math.isfinite(value):
                continue
            metric, _, filt = key.partition(",")
            stderr = metric.endswith("_stderr")
            name = metric.removesuffix("_stderr") + ("" if filt == "none" else f"[{filt}]")
            name += "_stderr" if stderr else ""
            row[name] = float(value)
        if task in n_samples:
            row["n"] = float(n_samples[task]["effective"])
        elif "sample_len" in entry:
            row["n"] = float(entry["sample_len"])
        out[task] = row
    return out


def metric_names(row: dict[str, float]) -> list[str]:
    return [k for k in row if k != "n" and not k.endswith("_stderr")]


def report_markdown(results: dict[str, Any], title: str, reproduce: str | None = None) -> str:
    cfg = results.get("config", {})
    lines = [f"# {title}", "",
             f"lm-evaluation-harness {results.get('lm_eval_version', '')}: limit {cfg.get('limit')}, "
             f"few-shot {_n_shot(results)}, batch size {cfg.get('batch_size')}. Values as lm-eval reports "
             f"them (accuracies as fractions); stderr is lm-eval's standard error.", "",
             "| task | metric | value | stderr | n |", "|---|---|---|---|---|"]
    for task, row in summarize(results).items():
        for metric in metric_names(row):
            se = row.get(f"{metric}_stderr")
            lines.append(f"| {task} | {metric} | {row[metric]:.4f} | {'-' if se is None else f'{se:.4f}'} | "
                         f"{int(row['n']) if 'n' in row else '-'} |")
    if reproduce:
        lines += ["", "The same numbers from lm-eval itself, on the merged checkpoint:", "", "```bash", reproduce,
                  "```"]
    return "\n".join(lines) + "\n"


def _n_shot(results: dict[str, Any]) -> str:
    shots = sorted({str(v) for v in results.get("n-shot", {}).values()})
    return ", ".join(shots) or "0"


# --- `govtune lm-eval` -------------------------------------------------------------------------------
def register(subparsers) -> None:
    from govtune.cli_help import MODEL_HELP

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
