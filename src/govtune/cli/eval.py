"""`govtune eval`: evaluate a model (optionally with a govtune adapter) on XNLI, FLORES or a task file and
write DIR/metrics.json, DIR/predictions.jsonl and DIR/report.md with its figures.

Under `accelerate launch --num_processes N` the batches are shared among the processes and the main
process alone writes (see govtune.evaluation.sharding)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from govtune.atomic import atomic_write_json, atomic_write_jsonl, atomic_write_text
from govtune.cli.eval_task import run_task_file
from govtune.cli.formatting import MODEL_HELP
from govtune.cli.load import add_quantize_argument, load_for_eval
from govtune.data import FLORES_EVAL_LINES, FLORES_POOL_LINES, XNLI_EVAL_ROWS, XNLI_POOL_ROWS, papers
from govtune.data.flores import load_flores
from govtune.data.xnli import load_xnli
from govtune.evaluation import evaluate_flores, evaluate_xnli
from govtune.evaluation.bootstrap import task_intervals
from govtune.evaluation.calibration import check_calibration_sets
from govtune.tasks.incontext import with_context
from govtune.evaluation.report import flores_figure, report_markdown
from govtune.evaluation.sharding import process_state
from govtune.governance.io import read_jsonl
from govtune.languages import normalize_or_keep
from govtune.launch import warn_if_fewer_processes
from govtune.tasks.registry import is_task_file, task_spec


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="evaluate a model on XNLI, FLORES or a task file",
                              description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--adapter", default=None, help="directory of a govtune adapter to load onto the model")
    add_quantize_argument(p)
    p.add_argument("--task", required=True,
                   help="xnli, flores, sib200, or a task file (YAML, see docs/tasks.md): evaluated on its test split")
    p.add_argument("--langs", default="en,zh,hi", help="XNLI (or SIB-200) languages, comma-separated; SIB-200 "
                                                      "takes FLORES-200 codes too (yor_Latn) and `all`")
    p.add_argument("--pairs", default="en-zh,en-es", help="FLORES directions src-tgt, comma-separated")
    p.add_argument("--limit", type=int, default=None, help="examples per language / direction (default: all)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--batch-size", type=int, default=8, help="examples per forward pass")
    p.add_argument("--seed", type=int, default=0, help="seed of the robustness perturbations")
    p.add_argument("--data", default=None, help="data directory (DIR/xnli, DIR/flores, DIR/sib200) or a Hugging Face "
                                                "dataset name (facebook/xnli, Davlan/sib200); default: the data "
                                                "shipped with govtune")
    p.add_argument("--split", default="dev", help="split of --data to evaluate (XNLI, FLORES)")
    p.add_argument("--all-rows", action="store_true",
                   help="use every row of the split (default for dev: the evaluation rows, disjoint from the "
                        "few-shot pool)")
    p.add_argument("--shots", type=int, default=0,
                   help="in-context examples per language / direction written before every prompt, drawn with "
                        "--seed from the few-shot pool rows (a task file: its train split; never the test rows) "
                        "or from --shots-pool")
    p.add_argument("--shots-pool", default=None,
                   help="where in-context examples come from: a JSON-lines pool (XNLI records, e.g. a `govtune "
                        "curate` output; a task file's rows in its own columns) or, for FLORES, a split name "
                        "(default: the split's few-shot pool lines; for a FLORES split other than dev, the dev "
                        "pool lines, the standard protocol)")
    p.add_argument("--no-robustness", action="store_true", help="skip the orthographic robustness pass (XNLI)")
    p.add_argument("--calibrate-on", default=None, metavar="SPLIT[:START-END]",
                   help="XNLI: fit one temperature per language on these rows and report ECE after scaling "
                        "too; SPLIT alone is every row of it, except dev: its few-shot pool rows (0-1245), "
                        "disjoint from the evaluation rows; START-END is rows START..END-1 (dev:0-200). Rows "
                        "shared with the test rows are refused")
    p.add_argument("--max-new-tokens", type=int, default=128, help="generation budget per line (FLORES)")
    p.add_argument("--length-ratio", type=float, default=None,
                   help="FLORES: new tokens per source token, +8 (default: the largest ratio on the few-shot pool)")
    p.add_argument("--padding-side", choices=("left", "right"), default="left",
                   help="side the prompts of a batch are padded on")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice); 1 is often fastest on a CPU shared with "
                        "other jobs, where threads of one matmul wait on each other")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _split_list(value: str, what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise ValueError(f"no {what} given: pass a comma-separated list")
    return items


def _incontext_pool(args, data: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Where in-context examples come from: a given JSON-lines pool (XNLI), else the split's pool rows."""
    if args.shots < 0:
        raise ValueError(f"--shots must be >= 0, got {args.shots}")
    if papers.classifies(args.task):
        if args.shots_pool:
            records, _ = read_jsonl(args.shots_pool, langs=list(data))
            return {lang: [r for r in records if r.get("lang") == lang] for lang in data}
        return {lang: load_xnli(lang, args.split, args.data, rows=XNLI_POOL_ROWS) for lang in data}
    # FLORES: demonstrations from another split than the test lines' (devtest tests, dev demonstrations) are
    # other sentences; from the evaluated split itself, its pool lines only.
    split = args.shots_pool or ("dev" if args.split != "dev" else args.split)
    if str(split).endswith((".jsonl", ".json")):
        records = [json.loads(line) for line in Path(split).read_text(encoding="utf-8").splitlines() if line.strip()]
        return {pair: [r for r in records if f"{r.get('src_lang')}-{r.get('tgt_lang')}" == pair] for pair in data}
    lines = FLORES_POOL_LINES if split == args.split or split == "dev" else None
    return {pair: load_flores(*pair.split("-"), split, args.data, lines=lines) for pair in data}


def parse_calibrate_on(spec: str) -> tuple[str, range | None]:
    """`SPLIT` or `SPLIT:START-END` -> (split, rows); rows None for a bare split."""
    split, _, rows = spec.partition(":")
    if not split:
        raise ValueError(f"--calibrate-on {spec!r} names no split: write SPLIT or SPLIT:START-END, e.g. dev:0-200")
    if not rows:
        return split, None
    start, dash, end = rows.partition("-")
    if not dash or not start.isdigit() or not end.isdigit() or int(start) >= int(end):
        raise ValueError(f"--calibrate-on {spec!r}: rows must be START-END with 0 <= START < END (rows "
                         f"START..END-1), e.g. dev:0-200")
    return split, range(int(start), int(end))


def _calibration_data(args, langs: list[str]) -> dict[str, list[dict]]:
    """The validation rows of --calibrate-on, per language: a bare dev means its few-shot pool rows."""
    split, rows = parse_calibrate_on(args.calibrate_on)
    if rows is None and split == "dev":
        rows = XNLI_POOL_ROWS
    return {lang: load_xnli(lang, split, args.data, rows=rows) for lang in langs}


def _test_data(args, default_rows: bool) -> dict[str, list[dict]]:
    """The test examples per language (XNLI) or direction (FLORES), loaded before the model so that a wrong
    language or path fails in a second, not after a model load."""
    try:
        if papers.classifies(args.task):
            langs = [normalize_or_keep(lang) for lang in _split_list(args.langs, "--langs")]  # eng_Latn -> en
            return {lang: load_xnli(lang, args.split, args.data, rows=XNLI_EVAL_ROWS if default_rows else None,
                                    limit=args.limit) for lang in langs}
        data = {}
        for pair in _split_list(args.pairs, "--pairs"):
            if pair.count("-") != 1:
                raise ValueError(f"FLORES direction {pair!r} is not src-tgt: write it as en-zh")
            src, tgt = pair.split("-")
            data[pair] = load_flores(src, tgt, args.split, args.data,
                                     lines=FLORES_EVAL_LINES if default_rows else None, limit=args.limit)
        return data
    except ValueError as e:
        if default_rows and "rows" in str(e):
            raise ValueError(f"{e} (the default dev selection is the evaluation rows of the full split; for a "
                             f"smaller file pass --all-rows)") from e
        raise


def _with_context_and_calibration(args, data: dict[str, list[dict]]
                                  ) -> tuple[dict[str, list[dict]], dict[str, list[dict]] | None]:
    """The test examples with their in-context demonstrations (--shots), and the validation examples of
    --calibrate-on carrying the same demonstrations (None without it). Checked before the model loads."""
    calibration = None
    if args.calibrate_on is not None:
        calibration = _calibration_data(args, list(data))
        check_calibration_sets(calibration, data)  # refuses rows shared with the test rows
    if args.shots:
        data = with_context(data, _incontext_pool(args, data), args.shots, args.seed, args.task)
        if calibration is not None:  # the temperature is fit on the prompts it is applied to
            calibration = {lang: [{**e, "context": data[lang][0]["context"]} for e in rows]
                           for lang, rows in calibration.items()}
    return data, calibration


def _write_outputs(args, metrics: dict, preds: list[dict]) -> None:
    """metrics.json, predictions.jsonl, report.md and its figure, then a one-line summary."""
    from govtune.evaluation.plots import reliability_diagram  # matplotlib: slow to import, for figures only

    out = Path(args.out)
    if papers.classifies(args.task):
        temperatures = {lang: v["temperature"] for lang, v in metrics["languages"].items() if "temperature" in v}
        reliability_diagram(preds, out / "reliability.png", title=f"XNLI reliability: {args.model}",
                            temperatures=temperatures or None)
        figure = "reliability.png"
    else:
        flores_figure(metrics, out / "flores.png")
        figure = "flores.png"
    atomic_write_jsonl(out / "predictions.jsonl", preds)
    atomic_write_json(out / "metrics.json", metrics)
    atomic_write_text(out / "report.md", report_markdown(metrics, figure))
    print(f"wrote {out / 'metrics.json'}, {out / 'predictions.jsonl'}, {out / 'report.md'}")
    if papers.classifies(args.task):
        print(f"XNLI macro {metrics['macro']:.1f}  parity gap {metrics['parity_gap']:.1f}  "
              f"Avg-ECE {metrics['avg_ece']:.1f}"
              + (f" (after temperature scaling {metrics['avg_ece_ts']:.1f})" if "avg_ece_ts" in metrics else "")
              + (f"  robustness drop {metrics['robustness']['macro_drop']:.1f}" if "robustness" in metrics else ""))
    else:
        print(f"FLORES average BLEU {metrics['average_bleu']:.1f}  direction gap {metrics['direction_gap']:.1f}")


def run(args) -> int:
    if not is_task_file(args.task) and not papers.is_paper_task(args.task):
        task_spec(args.task)  # raises naming the built-in tasks and the closest one
    if is_task_file(args.task) or not papers.is_paper_task(args.task):  # a task file, or sib200
        return run_task_file(args)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.calibrate_on is not None and not papers.classifies(args.task):
        raise ValueError("--calibrate-on applies to XNLI (class probabilities); drop it for FLORES")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    default_rows = args.split == "dev" and not args.all_rows
    data, calibration = _with_context_and_calibration(args, _test_data(args, default_rows))
    state = process_state()
    warn_if_fewer_processes(state.num_processes)
    with state.main_process_first():  # a first load may build a cache (a GGUF conversion): once, not N times
        model, tok = load_for_eval(args.model, args.adapter, args.quantize)
    if state.num_processes > 1:
        model.to(state.device)  # each process on its own device (its GPU under a multi-GPU launch)
    progress = not args.no_progress
    t0 = time.perf_counter()
    if papers.classifies(args.task):
        metrics, preds = evaluate_xnli(model, tok, data, batch_size=args.batch_size,
                                       robustness=not args.no_robustness, seed=args.seed, progress=progress,
                                       padding_side=args.padding_side, calibration=calibration)
    else:
        metrics, preds = evaluate_flores(model, tok, data, batch_size=args.batch_size,
                                         max_new_tokens=args.max_new_tokens, length_ratio=args.length_ratio,
                                         progress=progress)
    metrics["ci95"] = task_intervals(args.task, preds)  # {metric key: [low, high]}, as in a study's results.json
    metrics["run"] = {"model": args.model, "adapter": args.adapter, "quantize": args.quantize, "data": str(args.data or "govtune.data"),
                      "split": args.split, "rows": "evaluation rows" if default_rows else "all",
                      "limit": args.limit, "batch_size": args.batch_size, "seed": args.seed,
                      "calibrate_on": args.calibrate_on, "padding_side": args.padding_side, "shots": args.shots,
                      "shots_pool": args.shots_pool or ("pool rows" if args.shots else None),
                      "device": str(model.device), "threads": torch.get_num_threads(),
                      "processes": state.num_processes, "total_seconds": time.perf_counter() - t0}
    if state.is_main_process:  # every process holds every prediction; the main process writes them
        _write_outputs(args, metrics, preds)
    return 0
