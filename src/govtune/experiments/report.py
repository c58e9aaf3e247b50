"""`OUT/report.md` and `OUT/report.html`: the papers' tables for what was run, from `OUT/results.sqlite`.

Each table states the model, the data and the number of seeds, and what its numbers can and cannot show.
Tables appear only for what the study ran (no curation table with one stage, no scaling with one k)."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from govtune.experiments.config import BASELINES
from govtune.experiments.ledger import curation_label, governance_section
from govtune.experiments.significance import Intervals, differences_section, interval_note
from govtune.experiments.store import load_runs
from govtune.atomic import atomic_write_text

PAPER_METHOD_ORDER = ["base", "icl", "full", "lora", "boft", "lora_ga", "unitary", "unitary_full", "hybrid"]
METHOD_LABELS = {"base": "Base (no tuning)", "icl": "Base + in-context", "full": "Full FT", "lora": "LoRA",
                 "boft": "BOFT", "lora_ga": "LoRA-GA", "unitary": "uRNN (unitary)", "unitary_full": "uRNN (dense)",
                 "hybrid": "Hybrid"}
LANG_LABELS = {"en": "EN", "zh": "ZH", "hi": "HI", "es": "ES"}


def label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def _stats():
    from govtune.evaluation import stats

    return stats


def fmt(values: list[float], digits: int = 1, ci: tuple[float, float] | None = None) -> str:
    """mean +- sd over seeds; a single seed has no sd, so none is shown. ci: its 95% interval, after it."""
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return "-"
    interval = f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else ""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}{interval}"
    mean, sd = _stats().mean_sd(values)
    return f"{mean:.{digits}f} ± {sd:.{digits}f}{interval}"


def mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def welch(a: list[float], b: list[float]) -> str:
    if len(a) < 2 or len(b) < 2:
        return "n/a"
    import warnings

    with warnings.catch_warnings():  # scipy warns on (near-)identical samples; the p-value says enough
        warnings.simplefilter("ignore", RuntimeWarning)
        p = _stats().welch_p(a, b)
    return "n/a" if p is None or (isinstance(p, float) and math.isnan(p)) else f"{p:.3f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


class Study:
    """The finished runs of one output directory, grouped for the tables."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.info = json.loads((out_dir / "study.json").read_text()) if (out_dir / "study.json").exists() else {}
        self.config = self.info.get("config", {})
        self.runs = load_runs(out_dir)
        if not self.runs:
            raise FileNotFoundError(f"{out_dir} has no finished runs yet; run `govtune run CONFIG --out {out_dir}`")
        self.groups: dict[tuple, list[dict]] = defaultdict(list)
        for r in self.runs:
            self.groups[(r["method"], r["shots"], r["curation"])].append(r)
        trained = [r for r in self.runs if r["shots"] > 0]
        self.shots = sorted({r["shots"] for r in self.runs})
        self.stages = sorted({r["curation"] for r in trained})
        self.main_shots = 32 if any(r["shots"] == 32 for r in trained) else max((r["shots"] for r in trained),
                                                                                 default=0)
        # the most curated plain stage (c2 > c1 > c0); a study of variants only: its last one
        plain = [st for st in ("c2", "c1", "c0") if st in self.stages]
        self.main_stage = plain[0] if plain else (self.stages[-1] if self.stages else "none")
        found = {r["method"] for r in trained}
        self.methods = [m for m in PAPER_METHOD_ORDER if m in found] + sorted(found - set(PAPER_METHOD_ORDER))
        self.seeds = sorted({r["seed"] for r in trained})
        self.model = self.info.get("model") or self.runs[0].get("model")
        self.intervals = Intervals(out_dir)

    def cell(self, method: str, shots: int | None = None, stage: str | None = None) -> list[dict]:
        if method in BASELINES:  # untuned: one run, whatever the shots and stage asked for
            return [r for r in self.runs if r["method"] == method]
        return self.groups.get((method, shots or self.main_shots, stage or self.main_stage), [])

    def rows(self) -> list[str]:
        """The table rows: the untuned baselines that ran, then the tuned methods."""
        return [b for b in BASELINES if self.cell(b)] + self.methods

    def values(self, runs: list[dict], task: str, metric: str) -> list[float]:
        return [r["metrics"].get(task, {}).get(metric) for r in runs if metric in r["metrics"].get(task, {})]

    def show(self, runs: list[dict], task: str, metric: str, digits: int = 1) -> str:
        """A headline cell: mean (± sd over seeds) and its 95% bootstrap interval when the store has one."""
        return fmt(self.values(runs, task, metric), digits, self.intervals.ci(runs, task, metric))

    def has(self, task: str) -> bool:
        return any(task in r["metrics"] for r in self.runs)

    # --- the words around every table ----------------------------------------------------------------
    def caveats(self) -> list[str]:
        notes = []
        m = str(self.model).lower()
        if "smollm2" in m:
            notes.append("SmolLM2-135M-Instruct was trained mostly on English: ZH and HI accuracies near chance "
                         "(33.3%) and low FLORES BLEU into ZH say more about the base model than about the "
                         "tuning methods; the papers use BloomZ-7B1 and Wizard-Vicuna-30B.")
        if "gemma3-270m" in m or "gemma-3-270m" in m:
            notes.append("Gemma 3 270M is a small multilingual *base* model (4-bit Q4_K_M weights dequantised to "
                         "float32; Google's Gemma Terms of Use): untuned it does not follow the prompt's format, "
                         "so the base row shows the format as much as the knowledge; the papers use BloomZ-7B1 "
                         "and Wizard-Vicuna-30B.")
        if self.cell("icl"):
            k = self.config.get("incontext_shots")
            notes.append(f"Base + in-context: the untuned model with {k} examples per language (FLORES: per "
                         f"direction) before every test prompt, the k-shot sample of the same seed and curation "
                         f"stage (never test rows): a tuned method that does not beat it bought nothing over "
                         f"showing the model examples.")
        if m.startswith("tiny-"):
            notes.append("A tiny random model: these numbers exercise the pipeline and say nothing about "
                         "the methods.")
        n = len(self.seeds)
        if n == 1:
            notes.append("One seed: no standard deviation and no Welch test (p = n/a); differences between "
                         "methods of a few points are within seed-to-seed noise at this evaluation size.")
        elif n < 3:
            notes.append(f"{n} seeds: standard deviations and Welch p-values are very rough.")
        kinds = {r["footprint"].get("memory_kind") for r in self.runs if r["footprint"].get("memory_kind")}
        if any(k and k.startswith("cpu") for k in kinds):
            notes.append("Trained on the CPU: peak memory is the process's peak RSS (model, data and Python "
                         "included), not accelerator memory; step times depend on the machine's load.")
        return notes

    def scope(self, task: str = "xnli") -> str:
        """One line under every table: model, data size, seeds."""
        n_seeds = len(self.seeds)
        seeds = f"{n_seeds} seed{'s' if n_seeds != 1 else ''}"
        if task == "flores":
            n = self.values(self.runs[:1], "flores", next((k for k in self.runs[0]["metrics"].get("flores", {})
                                                            if k.endswith(".n")), "-")) or [None]
            data = f"{int(n[0])} FLORES test sentences per direction" if n[0] else "FLORES"
        else:
            n = self.values(self.runs[:1], "xnli", "languages.en.n") or [None]
            data = f"{int(n[0])} XNLI test examples per language" if n[0] else "XNLI"
        return f"*Model `{self.model}`, {data}, {seeds}.*"

    def accuracy_interval(self) -> str:
        """What one accuracy on n examples can resolve: the 95% binomial half-width at 50% accuracy."""
        n = (self.values(self.runs[:1], "xnli", "languages.en.n") or [None])[0]
        if not n:
            return ""
        half = 196 * math.sqrt(0.25 / n)
        return (f" With {int(n)} examples per language one accuracy has a 95% interval of about ±{half:.0f} "
                f"points (±{half / math.sqrt(3):.0f} for Macro over three languages): smaller differences "
                f"between methods are not evidence. Chance is 33.3%.")

    def data_line(self) -> str:
        c = self.config
        ns = self.values(self.runs[:1], "xnli", "languages.en.n") or []
        parts = [f"model `{self.model}`",
                 f"XNLI dev rows {c.get('xnli_eval_rows')} for evaluation"
                 + (f" ({int(ns[0])} per language)" if ns else ""),
                 f"few-shot pool rows {c.get('xnli_pool_rows')} curated at {', '.join(self.stages) or '-'}",
                 f"{len(self.seeds)} seed(s) {self.seeds}", f"{c.get('epochs')} epoch(s)"]
        if self.has("flores"):
            parts.append(f"FLORES dev lines from {c.get('flores_eval_lines', [None])[0]} "
                         f"({c.get('flores_eval_limit')} per direction)")
        return "; ".join(parts) + "."


# --- tables ------------------------------------------------------------------------------------------
def xnli_table(s: Study) -> str:
    langs = s.config.get("languages") or ["en", "zh", "hi"]
    header = ["Method", *[LANG_LABELS.get(l, l) for l in langs], "Macro", "Δ (parity gap)", "Avg-ECE",
              "p (Macro vs LoRA)"]
    lora = s.values(s.cell("lora"), "xnli", "macro")
    rows = []
    for method in s.rows():
        runs = s.cell(method)
        if not runs:
            continue
        macro = s.values(runs, "xnli", "macro")
        rows.append([label(method), *[s.show(runs, "xnli", f"languages.{l}.accuracy") for l in langs],
                     s.show(runs, "xnli", "macro"), s.show(runs, "xnli", "parity_gap"),
                     s.show(runs, "xnli", "avg_ece"),
                     "-" if method == "lora" or method in BASELINES else welch(macro, lora)])
    return (f"### XNLI, {s.main_shots}-shot per language, curation {s.main_stage.upper()}\n\n"
            f"Accuracy (%), Macro = unweighted mean over languages, Δ = max - min accuracy (lower is better), "
            f"Avg-ECE = mean expected calibration error (%, 15 bins). Mean ± sd over seeds."
            f"{interval_note(s)}{s.accuracy_interval()}\n\n{s.scope()}\n\n" + table(header, rows))


def calibration_table(s: Study) -> str:
    """ECE before and after per-language temperature scaling, per method, with the temperatures."""
    from govtune.evaluation.calibration import T_MAX, T_MIN

    langs = s.config.get("languages") or ["en", "zh", "hi"]
    header = ["Method", "Avg-ECE before", "Avg-ECE after", *[f"{LANG_LABELS.get(l, l)} ECE before → after"
                                                             for l in langs],
              f"T ({' / '.join(LANG_LABELS.get(l, l) for l in langs)})"]
    rows = []
    for method in s.rows():
        runs = s.cell(method)
        if not s.values(runs, "xnli", "avg_ece_ts"):
            continue
        temps = [mean(s.values(runs, "xnli", f"languages.{l}.temperature")) for l in langs]
        rows.append([label(method), fmt(s.values(runs, "xnli", "avg_ece")), fmt(s.values(runs, "xnli", "avg_ece_ts")),
                     *[f"{fmt(s.values(runs, 'xnli', f'languages.{l}.ece'))} → "
                       f"{fmt(s.values(runs, 'xnli', f'languages.{l}.ece_ts'))}" for l in langs],
                     " / ".join("-" if t is None else f"{t:.2f}" for t in temps)])
    n_val = (s.values(s.runs, "xnli", f"languages.{langs[0]}.calibration_n") or [None])[0]
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


def flores_table(s: Study) -> str:
    pairs = s.config.get("flores_pairs") or ["en-zh", "en-es"]
    header = ["Method", *[f"{p.replace('-', '→').upper()} BLEU" for p in pairs], "Avg BLEU", "Δ (direction gap)",
              "chrF++ (avg)", "p (Avg vs LoRA)"]
    lora = s.values(s.cell("lora"), "flores", "average_bleu")
    rows = []
    for method in s.rows():
        runs = s.cell(method)
        if not runs or not s.values(runs, "flores", "average_bleu"):
            continue
        chrf = [mean([r["metrics"]["flores"].get(f"pairs.{p}.chrf") for p in pairs]) for r in runs]
        avg = s.values(runs, "flores", "average_bleu")
        rows.append([label(method), *[s.show(runs, "flores", f"pairs.{p}.bleu") for p in pairs],
                     s.show(runs, "flores", "average_bleu"), s.show(runs, "flores", "direction_gap"),
                     fmt(chrf, ci=s.intervals.ci(runs, "flores", "average_chrf")),
                     "-" if method == "lora" or method in BASELINES else welch(avg, lora)])
    n_train = s.config.get("flores_train_pairs") or s.main_shots
    return (f"### FLORES, {n_train} training sentences per direction (with the {s.main_shots}-shot XNLI sample)\n\n"
            "Detokenised corpus BLEU (sacreBLEU; `zh` tokenisation for Chinese targets, `13a` otherwise), "
            "their average and the direction gap; chrF++ beside it. Corpus BLEU on a few dozen sentences moves "
            f"by several points with the sample; compare methods on the same sentences only.{interval_note(s)}\n\n"
            f"{s.scope('flores')}\n\n" + table(header, rows))


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
            rows.append([label(method), *[fmt(s.values(runs, "lm_eval", f"tasks.{t}.{m}"), 3) for t, m in columns]])
    limit = s.config.get("lm_eval_limit")
    return ("### General benchmarks (lm-evaluation-harness)\n\n"
            "Each cell's adapted model scored by lm-evaluation-harness itself (the same numbers as `lm_eval "
            "--model hf` on the merged checkpoint), values as lm-eval reports them (accuracies as fractions), "
            f"mean ± sd over seeds; {f'the first {limit}' if limit else 'all'} test examples of each task. "
            "`govtune-xnli` is the XNLI table's prompt and evaluation rows, scored by lm-eval (`acc_norm` "
            "divides each label's log-likelihood by its length in characters); lm-eval's stderr per run is in "
            "`runs/*/lm_eval/results.json`.\n\n"
            f"*Model `{s.model}`, {len(s.seeds)} seed(s).*\n\n"
            + table(["Method", *[f"{t} {m}" for t, m in columns]], rows))


def robustness_table(s: Study) -> str:
    ops = sorted({k.split(".")[2] for r in s.runs for k in r["metrics"].get("xnli", {})
                  if k.startswith("robustness.by_operation.")} - {"none"})
    header = ["Method", "Macro drop (pp, lower is better)", *[f"{o}" for o in ops]]
    rows = []
    for method in s.rows():
        runs = s.cell(method)
        drop = s.values(runs, "xnli", "robustness.macro_drop")
        if not drop:
            continue
        per_op = []
        for op in ops:
            keys = sorted({k for r in runs for k in r["metrics"]["xnli"]
                           if k.startswith(f"robustness.by_operation.{op}")})
            key = next((k for k in keys if k.endswith("drop")), keys[0] if keys else None)
            per_op.append(fmt(s.values(runs, "xnli", key)) if key else "-")
        rows.append([label(method), s.show(runs, "xnli", "robustness.macro_drop"), *per_op])
    return ("### XNLI robustness to orthographic variants\n\n"
            "Each test example is perturbed by exactly one operation (punctuation normalisation, diacritics "
            "removal, whitespace compaction; chosen with the run's seed). Macro-accuracy drop from clean to "
            "perturbed, in points; per-operation columns as reported by the evaluator. Examples no operation "
            "changes keep their clean score, so the drop is bounded by the share actually perturbed; a model "
            f"at chance has no accuracy to lose.{interval_note(s)}\n\n{s.scope()}\n\n" + table(header, rows))


def curation_table(s: Study) -> str:
    header = ["Method", "Stage", "Macro", "Δ", "Avg-ECE", "Pool kept (per language)"]
    rows = []
    for method in s.methods:
        for stage in s.stages:
            runs = s.cell(method, stage=stage)
            if not runs:
                continue
            rows.append([label(method), curation_label(stage), s.show(runs, "xnli", "macro"),
                         s.show(runs, "xnli", "parity_gap"), s.show(runs, "xnli", "avg_ece"),
                         _kept(s, stage)])
    return (f"### Data curation ablation (XNLI, {s.main_shots}-shot)\n\n"
            "C0 = raw pool; C1 = + language identification + exact/near-duplicate removal; C2 = C1 + length, "
            "symbol/repetition and perplexity filters. Leakage against the evaluation rows is checked at "
            "every stage.\n\n" f"{s.scope()}\n\n" + table(header, rows))


def _kept(s: Study, stage: str) -> str:
    path = s.out_dir / "curation" / f"{stage}.jsonl"
    if not path.exists():
        return "-"
    counts: dict[str, int] = defaultdict(int)
    for line in path.read_text(encoding="utf-8").splitlines():
        if line:
            counts[json.loads(line).get("lang", "?")] += 1
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))


def scaling_table(s: Study) -> str:
    shots = [k for k in s.shots if k > 0]
    base = s.values(s.cell("base"), "xnli", "macro")
    header = ["Method", *(["0 (base)"] if base else []), *[str(k) for k in shots]]
    rows = []
    for method in s.methods:
        rows.append([label(method), *([s.show(s.cell("base"), "xnli", "macro")] if base else []),
                     *[s.show(s.cell(method, shots=k), "xnli", "macro") for k in shots]])
    return (f"### Few-shot scaling (XNLI Macro accuracy, curation {s.main_stage.upper()})\n\n"
            "Examples per language; 0 is the base model without tuning (one run: it has no seed).\n\n"
            f"{s.scope()}\n\n" + table(header, rows))


def footprint_table(s: Study) -> str:
    header = ["Method", "Peak memory (MB)", "Step time (s)", "Tunable params (M)", "Step time vs LoRA"]
    lora_t = mean([r["footprint"].get("step_time_s") for r in s.cell("lora")])
    rows = []
    for method in s.methods:
        runs = s.cell(method)
        if not runs:
            continue
        t = [r["footprint"].get("step_time_s") for r in runs]
        rel = f"{(mean(t) / lora_t - 1) * 100:+.0f}%" if lora_t and mean(t) and method != "lora" else "-"
        rows.append([label(method), fmt([r["footprint"].get("peak_memory_mb") for r in runs], 0),
                     fmt(t, 3), fmt([r["footprint"].get("tunable_params_m") for r in runs], 3), rel])
    kinds = sorted({r["footprint"].get("memory_kind") for r in s.runs if r["footprint"].get("memory_kind")})
    return (f"### Training footprint ({s.main_shots}-shot)\n\n"
            f"Peak memory: {'; '.join(kinds)}. Step time: mean optimiser step after the first two "
            f"(warm-up) steps. Tunable parameters in millions. On a shared or CPU machine step times carry the "
            f"load of other work; ratios between methods of one study are what to read.\n\n"
            f"{s.scope()}\n\n" + table(header, rows))


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
    head = [f"# govtune report: {s.info.get('name', 'study')}", "", s.data_line(), ""]
    head += [f"- {n}" for n in s.caveats()] + [""]
    sections = [xnli_table(s)]
    if any("avg_ece_ts" in r["metrics"].get("xnli", {}) for r in s.runs):
        sections.append(calibration_table(s))
    if s.has("flores"):
        sections.append(flores_table(s))
    if s.has("lm_eval"):
        sections.append(lm_eval_table(s))
    if any("robustness.macro_drop" in r["metrics"].get("xnli", {}) for r in s.runs):
        sections.append(robustness_table(s))
    differences = differences_section(s)
    if differences:
        sections.append(differences)
    if len(s.stages) > 1:
        sections.append(curation_table(s))
    governance = governance_section(s)
    if governance:
        sections.append(governance)
    if len([k for k in s.shots if k > 0]) > 1 or (0 in s.shots and len(s.shots) > 1):
        sections.append(scaling_table(s))
    if s.methods:
        sections.append(footprint_table(s))
        sections.append(dynamics_table(s))
    lam = lam_table(s)
    if lam:
        sections.append(lam)
    footer = ["## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in figures]
    return "\n".join(head) + "\n" + "\n\n".join(sections) + "\n\n" + "\n".join(footer) + "\n"


def to_html(markdown_text: str, title: str) -> str:
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(markdown_text)
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:4px 8px;"
             "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{style}</style>"
            f"</head><body>{body}</body></html>\n")


def write_report(out_dir: str | Path) -> Path:
    """Write OUT/report.md, OUT/report.html and OUT/figures/*.png; returns the path of report.md."""
    from govtune.experiments.figures import draw_figures

    out_dir = Path(out_dir)
    if not (out_dir / "results.sqlite").exists():
        raise FileNotFoundError(f"{out_dir} holds no results.sqlite: run a study there first "
                                f"(`govtune run configs/demo.yaml --out {out_dir}`)")
    s = Study(out_dir)
    figures = draw_figures(s)
    md = build_markdown(s, figures)
    path = atomic_write_text(out_dir / "report.md", md)
    atomic_write_text(out_dir / "report.html", to_html(md, f"govtune report: {s.info.get('name', '')}"))
    return path


def summary(s: Study) -> dict[str, Any]:
    """Main-table numbers as a dict (for scripts and tests): method -> {macro, parity_gap, avg_ece}."""
    return {m: {k: mean(s.values(s.cell(m), "xnli", k)) for k in ("macro", "parity_gap", "avg_ece")}
            for m in s.methods}
