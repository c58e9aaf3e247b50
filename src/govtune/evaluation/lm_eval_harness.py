"""General benchmarks through lm-evaluation-harness, on the in-memory model (adapted or merged).

govtune does not rewrite the ecosystem's benchmarks (SPEC §3): the model is wrapped in lm-eval's own
`HFLM(pretrained=model, tokenizer=tok)` and run with `lm_eval.simple_evaluate`, so a number here is the
number `lm_eval --model hf --model_args pretrained=<merged checkpoint>` reports for the same task, limit,
few-shot count and batch size, without exporting the checkpoint first. Offline, the local task
`govtune-xnli` (govtune.evaluation.lm_eval_xnli) runs on the shipped data; lm-eval's built-in tasks need their
datasets from a hub (or a filled Hugging Face cache). The `govtune lm-eval` command is govtune.cli.lm_eval."""

from __future__ import annotations

import difflib
import json
import math
from pathlib import Path
from typing import Any

from govtune.evaluation.lm_eval_analysis import Plan, plan_tasks
from govtune.evaluation.lm_eval_samples import write_samples
from govtune.evaluation.lm_eval_xnli import write_tasks

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
