"""`OUT/report.md` and `OUT/report.html`: the papers' tables for what was run, from `OUT/results.sqlite`.

Each table states the model, the data and the number of seeds, and what its numbers can and cannot show.
Tables appear only for what the study ran (no curation table with one stage, no scaling with one k)."""

from __future__ import annotations

import math
from pathlib import Path

from markdown_it import MarkdownIt

from govtune.atomic import atomic_write_text
from govtune.constants import BASELINES
from govtune.data.papers import TITLES, is_paper_task, title
from govtune.evaluation import metric_registry as registry
from govtune.evaluation.metric_registry import LANG_LABELS
from govtune.report.figures import draw_figures
from govtune.report.ledger import curation_label, governance_section
from govtune.report.reading import Study, fmt, label, mean, table, welch
from govtune.report.significance import differences_section, fmt_difference, interval_note
from govtune.report.task_sections import task_section
from govtune.results.integrity import check_study
from govtune.results.layout import StudyLayout

# The store's sections that are not tasks: they have tables of their own below.
OTHER_TABLES = ("footprint", "lm_eval")


def _names(task: str, keys: list[str]) -> list[str]:
    """Column titles of metric keys, from the metric registry."""
    return [registry.name(task, key) for key in keys]


# --- the words around every table ------------------------------------------------------------------------
def caveats(s: Study) -> list[str]:
    notes = []
    m = str(s.model).lower()
    if "smollm2" in m:
        notes.append("SmolLM2-135M-Instruct was trained mostly on English: ZH and HI accuracies near chance "
                     "(33.3%) and low FLORES BLEU into ZH say more about the base model than about the "
                     "tuning methods; the papers use BloomZ-7B1 and Wizard-Vicuna-30B.")
    if "gemma3-270m" in m or "gemma-3-270m" in m:
        notes.append("Gemma 3 270M is a small multilingual *base* model (4-bit Q4_K_M weights dequantised to "
                     "float32; Google's Gemma Terms of Use): untuned it does not follow the prompt's format, "
                     "so the base row shows the format as much as the knowledge; the papers use BloomZ-7B1 "
                     "and Wizard-Vicuna-30B.")
    if s.cell("icl"):
        k = s.config.get("incontext_shots")
        notes.append(f"Base + in-context: the untuned model with {k} examples per language (FLORES: per "
                     f"direction) before every test prompt, the k-shot sample of the same seed and curation "
                     f"stage (never test rows): a tuned method that does not beat it bought nothing over "
                     f"showing the model examples.")
    if m.startswith("tiny-"):
        notes.append("A tiny random model: these numbers exercise the pipeline and say nothing about "
                     "the methods.")
    n = len(s.seeds)
    if n == 1:
        notes.append("One seed: no standard deviation and no Welch test (p = n/a); differences between "
                     "methods of a few points are within seed-to-seed noise at this evaluation size.")
    elif n < 3:
        notes.append(f"{n} seeds: standard deviations and Welch p-values are very rough.")
    kinds = {r["footprint"].get("memory_kind") for r in s.runs if r["footprint"].get("memory_kind")}
    if any(k and k.startswith("cpu") for k in kinds):
        notes.append("Trained on the CPU: peak memory is the process's peak RSS (model, data and Python "
                     "included), not accelerator memory; step times depend on the machine's load.")
    return notes


def _n(s: Study, task: str) -> float | None:
    """Test examples per language of a classification task (its first language's)."""
    langs = s.task_languages(task)
    return (s.values(s.runs[:1], task, f"languages.{langs[0]}.n") or [None])[0] if langs else None


def accuracy_interval(s: Study, task: str) -> str:
    """What one accuracy on n examples can resolve: the 95% binomial half-width at 50% accuracy."""
    n = _n(s, task)
    if not n:
        return ""
    half = 196 * math.sqrt(0.25 / n)
    return (f" With {int(n)} examples per language one accuracy has a 95% interval of about ±{half:.0f} "
            f"points (±{half / math.sqrt(3):.0f} for Macro over three languages): smaller differences "
            f"between methods are not evidence. Chance is 33.3%.")


def data_line(s: Study) -> str:
    c = s.config
    main, translation = s.main_task, s.translation_task
    if main is None:
        return (f"model `{s.model}`; tasks {', '.join(s.tasks)}; curated at {', '.join(s.stages) or '-'}; "
                f"{len(s.seeds)} seed(s) {s.seeds}; {c.get('epochs')} epoch(s).")
    parts = [f"model `{s.model}`",
             f"{TITLES[main]} dev rows {c.get('xnli_eval_rows')} for evaluation"
             + (f" ({int(n)} per language)" if (n := _n(s, main)) else ""),
             f"few-shot pool rows {c.get('xnli_pool_rows')} curated at {', '.join(s.stages) or '-'}",
             f"{len(s.seeds)} seed(s) {s.seeds}", f"{c.get('epochs')} epoch(s)"]
    if translation:
        parts.append(f"{TITLES[translation]} dev lines from {c.get('flores_eval_lines', [None])[0]} "
                     f"({c.get('flores_eval_limit')} per direction)")
    return "; ".join(parts) + "."


# --- tables ------------------------------------------------------------------------------------------
def main_table(s: Study, task: str) -> str:
    keys = [f"languages.{lang}.accuracy" for lang in s.languages] + ["macro", "parity_gap", "avg_ece"]
    header = ["Method", *_names(task, keys), "p (Macro vs LoRA)"]
    lora = s.values(s.cell("lora"), task, "macro")
    rows = []
    for method in s.rows():
        runs = s.cell(method)
        if not runs:
            continue
        macro = s.values(runs, task, "macro")
        rows.append([label(method), *[s.show(runs, task, key) for key in keys],
                     "-" if method == "lora" or method in BASELINES else welch(macro, lora)])
    gap = registry.metric(task, "parity_gap")
    return (f"### {title(task)}, {s.main_shots}-shot per language, curation {s.main_stage.upper()}\n\n"
            f"Accuracy (%), Macro = unweighted mean over languages, Δ = max - min accuracy ({gap.better}), "
            f"Avg-ECE = mean expected calibration error (%, 15 bins). Mean ± sd over seeds."
            f"{interval_note(s)}{accuracy_interval(s, task)}\n\n{s.scope()}\n\n" + table(header, rows))


def calibration_table(s: Study, task: str) -> str:
    """ECE before and after per-language temperature scaling, per method, with the temperatures."""
    # calibration.py imports torch; the report needs only its search bounds, and only here
    from govtune.evaluation.calibration import T_MAX, T_MIN

    langs = s.languages
    header = ["Method", f"{registry.name(task, 'avg_ece')} before", registry.name(task, "avg_ece_ts"),
              *[f"{registry.name(task, f'languages.{lang}.ece')} before → after" for lang in langs],
              f"T ({' / '.join(LANG_LABELS.get(lang, lang) for lang in langs)})"]
    t_digits = registry.metric(task, f"languages.{langs[0]}.temperature").digits
    rows = []
    for method in s.rows():
        runs = s.cell(method)
        if not s.values(runs, task, "avg_ece_ts"):
            continue
        temps = [mean(s.values(runs, task, f"languages.{lang}.temperature")) for lang in langs]
        rows.append([label(method), s.show(runs, task, "avg_ece", interval=False),
                     s.show(runs, task, "avg_ece_ts", interval=False),
                     *[f"{s.show(runs, task, f'languages.{lang}.ece', interval=False)} → "
                       f"{s.show(runs, task, f'languages.{lang}.ece_ts', interval=False)}" for lang in langs],
                     " / ".join("-" if t is None else f"{t:.{t_digits}f}" for t in temps)])
    n_val = (s.values(s.runs, task, f"languages.{langs[0]}.calibration_n") or [None])[0]
    val = f"{int(n_val)} validation examples per language" if n_val else "the run's validation examples"
    return (f"### Calibration: temperature scaling ({s.main_shots}-shot, curation {s.main_stage.upper()})\n\n"
            f"One temperature T per language, fit by NLL (LBFGS on log T) on {val} (drawn from the curated "
            f"pool minus the shots; for the base model from the raw pool; never test rows), applied to the "
            f"test probabilities as softmax(log p / T). ECE in % (15 bins, top label), mean ± sd over seeds; T "
            f"is the mean over seeds (T > 1: the model was over-confident). Scaling never changes a "
            f"prediction, so accuracy is unchanged. T fit on a few examples is noisy and can raise the ECE; "
            f"T near {T_MIN:g} or at {T_MAX:g} is the end of the search (validation examples all right or all "
            f"wrong).\n\n"
            f"{s.scope()}\n\n" + table(header, rows))


def translation_table(s: Study, task: str) -> str:
    keys = [f"pairs.{pair}.bleu" for pair in s.pairs] + ["average_bleu", "direction_gap"]
    header = ["Method", *_names(task, keys), registry.name(task, "average_chrf"), "p (Avg vs LoRA)"]
    chrf_digits = registry.metric(task, "average_chrf").digits
    lora = s.values(s.cell("lora"), task, "average_bleu")
    rows = []
    for method in s.rows():
        runs = s.cell(method)
        if not runs or not s.values(runs, task, "average_bleu"):
            continue
        # the mean over the study's directions, recomputed: stores of older runs have no average_chrf
        chrf = [mean([r["metrics"][task].get(f"pairs.{pair}.chrf") for pair in s.pairs]) for r in runs]
        avg = s.values(runs, task, "average_bleu")
        rows.append([label(method), *[s.show(runs, task, key) for key in keys],
                     fmt(chrf, chrf_digits, s.intervals.ci(runs, task, "average_chrf")),
                     "-" if method == "lora" or method in BASELINES else welch(avg, lora)])
    n_train = s.config.get("flores_train_pairs") or s.main_shots
    sample = f" (with the {s.main_shots}-shot {title(s.main_task)} sample)" if s.main_task else ""
    return (f"### {title(task)}, {n_train} training sentences per direction{sample}\n\n"
            "Detokenised corpus BLEU (sacreBLEU; `zh` tokenisation for Chinese targets, `13a` otherwise), "
            "their average and the direction gap; chrF++ beside it. Corpus BLEU on a few dozen sentences moves "
            f"by several points with the sample; compare methods on the same sentences only.{interval_note(s)}\n\n"
            f"{s.scope(task)}\n\n" + table(header, rows))


def lm_eval_table(s: Study) -> str:
    """The companion paper's general-benchmark table: lm-evaluation-harness tasks, one column per task and
    metric (stored as `tasks.<task>.<metric>`), one row per method."""
    columns = sorted({tuple(k.removeprefix("tasks.").rsplit(".", 1)) for r in s.runs
                      for k in r["metrics"].get("lm_eval", {}) if k.startswith("tasks.")
                      and not k.endswith(("_stderr", ".n"))})
    rows = []
    for method in (["base"] if s.cell("base") else []) + s.methods:
        runs = [r for r in s.cell(method) if "lm_eval" in r["metrics"]]
        if runs:
            rows.append([label(method), *[s.show(runs, "lm_eval", f"tasks.{t}.{m}", interval=False)
                                          for t, m in columns]])
    limit = s.config.get("lm_eval_limit")
    return ("### General benchmarks (lm-evaluation-harness)\n\n"
            "Each cell's adapted model scored by lm-evaluation-harness itself (the same numbers as `lm_eval "
            "--model hf` on the merged checkpoint), values as lm-eval reports them (accuracies as fractions), "
            f"mean ± sd over seeds; {f'the first {limit}' if limit else 'all'} test examples of each task. "
            "`govtune-xnli` is the XNLI table's prompt and evaluation rows, scored by lm-eval (`acc_norm` "
            "divides each label's log-likelihood by its length in characters); lm-eval's stderr per run is in "
            "`runs/*/lm_eval/results.json`.\n\n"
            f"*Model `{s.model}`, {len(s.seeds)} seed(s).*\n\n"
            + table(["Method", *_names("lm_eval", [f"tasks.{t}.{m}" for t, m in columns])], rows))


def robustness_table(s: Study, task: str) -> str:
    ops = sorted({k.split(".")[2] for r in s.runs for k in r["metrics"].get(task, {})
                  if k.startswith("robustness.by_operation.")} - {"none"})
    drop = registry.metric(task, "robustness.macro_drop")
    op_keys = [f"robustness.by_operation.{op}.drop" for op in ops]
    header = ["Method", f"{drop.name} (pp, {drop.better})", *_names(task, op_keys)]
    rows = []
    for method in s.rows():
        runs = s.cell(method)
        if not s.values(runs, task, drop.key):
            continue
        rows.append([label(method), s.show(runs, task, drop.key),
                     *[s.show(runs, task, key, interval=False) for key in op_keys]])
    return (f"### {title(task)} robustness to orthographic variants\n\n"
            "Each test example is perturbed by exactly one operation (punctuation normalisation, diacritics "
            "removal, whitespace compaction; chosen with the run's seed). Macro-accuracy drop from clean to "
            "perturbed, in points; per-operation columns as reported by the evaluator. Examples no operation "
            "changes keep their clean score, so the drop is bounded by the share actually perturbed; a model "
            f"at chance has no accuracy to lose.{interval_note(s)}\n\n{s.scope()}\n\n" + table(header, rows))


def curation_table(s: Study, task: str) -> str:
    header = ["Method", "Stage", registry.name(task, "macro"), "Δ", registry.name(task, "avg_ece"),
              "Pool kept (per language)"]
    rows = []
    for method in s.methods:
        for stage in s.stages:
            runs = s.cell(method, stage=stage)
            if not runs:
                continue
            rows.append([label(method), curation_label(stage), s.show(runs, task, "macro"),
                         s.show(runs, task, "parity_gap"), s.show(runs, task, "avg_ece"),
                         _kept(s, stage, task)])
    return (f"### Data curation ablation ({title(task)}, {s.main_shots}-shot)\n\n"
            "C0 = raw pool; C1 = + language identification + exact/near-duplicate removal; C2 = C1 + length, "
            "symbol/repetition and perplexity filters. Leakage against the evaluation rows is checked at "
            "every stage.\n\n" f"{s.scope()}\n\n" + table(header, rows))


def _kept(s: Study, stage: str, task: str) -> str:
    # the pool of the papers' task is curated as the stage itself; a task file's pool as TASK:STAGE
    counts = {lang: n for lang, n in s.kept(stage if task == s.main_task else f"{task}:{stage}").items() if n}
    return ", ".join(f"{lang}: {n}" for lang, n in sorted(counts.items())) or "-"


def scaling_table(s: Study, task: str) -> str:
    shots = [k for k in s.shots if k > 0]
    base = s.values(s.cell("base"), task, "macro")
    header = ["Method", *(["0 (base)"] if base else []), *[str(k) for k in shots]]
    rows = []
    for method in s.methods:
        rows.append([label(method), *([s.show(s.cell("base"), task, "macro")] if base else []),
                     *[s.show(s.cell(method, shots=k), task, "macro") for k in shots]])
    text = (f"### Few-shot scaling ({title(task)} Macro accuracy, curation {s.main_stage.upper()})\n\n"
            "Examples per language; 0 is the base model without tuning (one run: it has no seed).\n\n"
            f"{s.scope()}\n\n" + table(header, rows))
    gains = _gains_over_base(s, task, shots) if base else None
    return text + ("\n\n" + gains if gains else "")


def _gains_over_base(s: Study, task: str, shots: list[int]) -> str | None:
    """Each budget's Macro minus the base model's, paired on the same test rows: the budget where the
    interval first excludes 0 is where tuning measurably leaves the untuned model."""
    rows = []
    for method in s.methods:
        diffs = [s.intervals.difference(s.cell(method, shots=k), s.cell("base"), task) for k in shots]
        if all(d is None for d in diffs):
            continue
        rows.append([f"{label(method)} − Base", *[fmt_difference(d.get("macro")) if d else "-" for d in diffs]])
    if not rows:
        return None
    return ("Macro minus the base model's, in points, paired on the same test rows (1,000 resamples; * : the "
            "95% interval excludes 0):\n\n" + table(["Comparison", *[str(k) for k in shots]], rows))


def footprint_table(s: Study) -> str:
    keys = ["peak_memory_mb", "step_time_s", "tunable_params_m"]
    header = ["Method", *_names("footprint", keys), "Step time vs LoRA"]
    lora_t = mean([r["footprint"].get("step_time_s") for r in s.cell("lora")])
    rows = []
    for method in s.methods:
        runs = s.cell(method)
        if not runs:
            continue
        t = mean([r["footprint"].get("step_time_s") for r in runs])
        rel = f"{(t / lora_t - 1) * 100:+.0f}%" if lora_t and t and method != "lora" else "-"
        rows.append([label(method), *[fmt([r["footprint"].get(key) for r in runs],
                                          registry.metric("footprint", key).digits) for key in keys], rel])
    kinds = sorted({r["footprint"].get("memory_kind") for r in s.runs if r["footprint"].get("memory_kind")})
    return (f"### Training footprint ({s.main_shots}-shot)\n\n"
            f"Peak memory: {'; '.join(kinds)}. Step time: mean optimiser step after the first two "
            f"(warm-up) steps. Tunable parameters in millions. On a shared or CPU machine step times carry the "
            f"load of other work; ratios between methods of one study are what to read.\n\n"
            f"{s.scope()}\n\n" + table(header, rows) + _wall_text(s))


def _wall_text(s: Study) -> str:
    """The study's wall time (its runs', curation aside) and the machine's load while they ran."""
    timed = [r for r in s.runs if r["footprint"].get("wall_time_s") is not None]
    if not timed:
        return ""
    total = sum(r["footprint"]["wall_time_s"] for r in timed)
    longest = max(timed, key=lambda r: r["footprint"]["wall_time_s"])
    hours, minutes = int(total // 3600), int(total % 3600 // 60)
    text = (f"\n\nWall time: {hours} h {minutes:02d} min for {len(timed)} run(s), curation "
            f"aside; the longest {longest['footprint']['wall_time_s'] / 60:.1f} min ({longest['run_id']}).")
    loads = [v for r in timed for v in (r["footprint"].get("load_1min_start"), r["footprint"].get("load_1min_end"))
             if v is not None]
    cpus = timed[0]["footprint"].get("cpu_count")
    if loads and cpus:
        text += (f" Load average (1 min, the run's own processes included) at the start and end of each run: "
                 f"{min(loads):.2f} to {max(loads):.2f}, on {cpus} CPUs"
                 + (": above that, processes waited for a core, and step times carry the wait." if max(loads) > cpus
                    else "."))
    return text


def dynamics_table(s: Study) -> str:
    # Epoch 0 is the validation loss before the first step (the adapters at identity): it has no gradient.
    val_epochs = sorted({int(x) for r in s.runs for x, _ in r["curves"].get("epoch/val_loss", [])})
    grad_epochs = [e for e in val_epochs if e > 0]
    header = ["Method", *[f"val loss ep{e}" if e else "val loss before" for e in val_epochs],
              *[f"grad norm ep{e}" for e in grad_epochs]]
    rows = []
    for method in s.methods:
        runs = s.cell(method)
        row = [label(method)]
        for curve, epochs in (("epoch/val_loss", val_epochs), ("epoch/grad_norm", grad_epochs)):
            for e in epochs:
                row.append(fmt([dict(r["curves"].get(curve, [])).get(float(e)) for r in runs], 3))
        rows.append(row)
    return ("### Training dynamics\n\nValidation loss (per target token, on held-out pool examples) before training "
            "and after each epoch, and mean gradient norm (before clipping) per epoch; per-step curves in "
            "`figures/dynamics.png`.\n\n"
            f"{s.scope()}\n\n" + table(header, rows))


def lam_table(s: Study) -> str | None:
    rows = []
    for method in s.methods:
        finals = [r["lam_final"] for r in s.cell(method) if r.get("lam_final")]
        if not finals:
            continue
        vals = [v for f in finals for v in f.values()]
        rows.append([label(method), str(len(finals[0])), f"{mean(vals):.3f}", f"{min(vals):.3f}", f"{max(vals):.3f}"])
    if not rows:
        return None
    return ("### Hybrid mixing coefficient λ at the end of training\n\n"
            "λ weights the LoRA-GA branch, 1 - λ the BOFT branch, one per adapted layer (all seeds pooled). "
            "Trajectories: `figures/lam.png`.\n\n" f"{s.scope()}\n\n"
            + table(["Method", "Layers", "mean λ", "min λ", "max λ"], rows))


def build_markdown(s: Study, figures: list[str]) -> str:
    head = [f"# govtune report: {s.info.get('name', 'study')}", "", data_line(s), ""]
    head += [f"- {n}" for n in caveats(s)] + [""]
    main, translation, focus = s.main_task, s.translation_task, s.focus
    sections = [main_table(s, main)] if main else []
    if main and any("avg_ece_ts" in r["metrics"].get(main, {}) for r in s.runs):
        sections.append(calibration_table(s, main))
    if translation:
        sections.append(translation_table(s, translation))
    sections += [task_section(s, t) for t in s.tasks if not is_paper_task(t) and t not in OTHER_TABLES]
    if s.has("lm_eval"):
        sections.append(lm_eval_table(s))
    if main and any("robustness.macro_drop" in r["metrics"].get(main, {}) for r in s.runs):
        sections.append(robustness_table(s, main))
    differences = differences_section(s)
    if differences:
        sections.append(differences)
    if len(s.stages) > 1 and focus:
        sections.append(curation_table(s, focus))
    governance = governance_section(s)
    if governance:
        sections.append(governance)
    if focus and (len([k for k in s.shots if k > 0]) > 1 or (0 in s.shots and len(s.shots) > 1)):
        sections.append(scaling_table(s, focus))
    if s.methods:
        sections.append(footprint_table(s))
        sections.append(dynamics_table(s))
    lam = lam_table(s)
    if lam:
        sections.append(lam)
    footer = ["## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in figures]
    return "\n".join(head) + "\n" + "\n\n".join(sections) + "\n\n" + "\n".join(footer) + "\n"


def to_html(markdown_text: str, title: str) -> str:
    body = MarkdownIt("commonmark").enable("table").render(markdown_text)
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:4px 8px;"
             "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{style}</style>"
            f"</head><body>{body}</body></html>\n")


def write_report(out_dir: str | Path) -> Path:
    """Write OUT/report.md, OUT/report.html and OUT/figures/*.png from OUT/results.sqlite alone; returns the
    path of report.md."""
    layout = StudyLayout(out_dir)
    if not layout.database.exists():
        if layout.finished_runs():
            raise FileNotFoundError(f"{layout.root} holds finished runs but no results.sqlite: `govtune run CONFIG "
                                    f"--out {layout.root} --resume` rebuilds it from the runs' own files")
        raise FileNotFoundError(f"{layout.root} holds no results.sqlite: run a study there first "
                                f"(`govtune run configs/demo.yaml --out {layout.root}`)")
    check_study(layout)  # a damaged file is named with its fix, not met as a traceback in a reader
    s = Study(layout.root)
    md = build_markdown(s, draw_figures(s))
    path = atomic_write_text(layout.report_md, md)
    atomic_write_text(layout.report_html, to_html(md, f"govtune report: {s.info.get('name', '')}"))
    return path
