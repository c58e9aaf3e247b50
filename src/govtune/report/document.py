"""`OUT/report.md` and `OUT/report.html`: the papers' tables for what was run (govtune.report.tables), from
`OUT/results.sqlite`; here the words around them, the cost tables, and the document itself.

Each table states the model, the data and the number of seeds, and what its numbers can and cannot show.
Tables appear only for what the study ran (no curation table with one stage, no scaling with one k)."""

from __future__ import annotations

from pathlib import Path

from markdown_it import MarkdownIt

from govtune.atomic import atomic_write_text
from govtune.data.papers import TITLES, is_paper_task
from govtune.evaluation import metric_registry as registry
from govtune.report.figures import draw_figures
from govtune.report.findings import findings
from govtune.report.ledger import governance_section
from govtune.report.reading import Study, fmt, label, mean, table
from govtune.report.significance import differences_section
from govtune.report.tables import (_n, _names, calibration_table, curation_table, main_table, robustness_table,
                                   scaling_table, translation_table)
from govtune.report.task_sections import task_section
from govtune.results.integrity import check_study
from govtune.results.layout import StudyLayout
from govtune.results import manifest
from govtune.results.archive import check_restored

# The store's sections that are not tasks: they have tables of their own below.
OTHER_TABLES = ("footprint", "lm_eval")


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


def data_line(s: Study) -> str:
    c = s.config
    main, translation = s.main_task, s.translation_task
    if main is None:
        return (f"model `{s.model}`; tasks {', '.join(s.tasks)}; curated at {', '.join(s.stages) or '-'}; "
                f"{len(s.seeds)} seed(s) {s.seeds}; {c.get('epochs')} epoch(s).")
    parts = [f"model `{s.model}`",
             f"{TITLES[main]} dev rows {s.task_setting('xnli', 'xnli_eval_rows')} for evaluation"
             + (f" ({int(n)} per language)" if (n := _n(s, main)) else ""),
             f"few-shot pool rows {s.task_setting('xnli', 'xnli_pool_rows')} curated at {', '.join(s.stages) or '-'}",
             f"{len(s.seeds)} seed(s) {s.seeds}", f"{c.get('epochs')} epoch(s)"]
    if translation:
        lines = s.task_setting("flores", "flores_eval_lines") or [None]
        parts.append(f"{TITLES[translation]} dev lines from {lines[0]} "
                     f"({s.task_setting('flores', 'flores_eval_limit')} per direction)")
    return "; ".join(parts) + "."


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
    head = [f"# govtune report: {s.info.get('name', 'study')}", ""]
    lead = findings(s, caveats(s))  # a study over many languages leads with what it found
    if lead:
        head += [lead, data_line(s), ""]
    else:
        head += [data_line(s), ""] + [f"- {n}" for n in caveats(s)] + [""]
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
    check_restored(layout)
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
    # A study written before manifests existed is taken as it is now (said in the manifest's action).
    adopt = not layout.manifest.exists()
    manifest.record(layout.root, [layout.root] if adopt else [layout.report_md, layout.report_html, layout.figures],
                    "adopt" if adopt else "report")
    return path
