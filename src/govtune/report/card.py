"""A Hugging Face model card for one tuned run of a study: the README.md of its adapter directory, built with
`huggingface_hub`'s `ModelCard` / `ModelCardData` / `EvalResult`, so the hub reads its `model-index`.

Everything in it is read from the study's files (the run's result.json, study.json, the curation reports),
nothing from memory: `govtune card OUT` rebuilds the same card after the study. `model-index` has no field
for an interval, so it carries the point estimates (equal to results.json) and the card's tables carry the
95% intervals. The limitations section says what the evaluation measured against the run, including what
did not work: languages whose interval reaches chance, the largest gaps, calibration that temperature
scaling made worse, robustness drops whose interval excludes zero."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from govtune.atomic import atomic_write_text
from govtune.report import reading
from govtune.report.reading import table
from govtune.report.facts import (DatasetFacts, base_model_facts, dataset_facts, language_tags, run_facts)

# The kind of a stored task (its metrics' shape) -> the hub's task type.
TASK_TYPES = {"classification": "text-classification", "translation": "translation",
              "completion": "text-generation"}
# Per-unit metrics each kind reports, in the card's column order: (key in the unit's dict, title, hub metric).
UNIT_METRICS = {
    "classification": (("accuracy", "Accuracy", "accuracy"), ("ece", "ECE", "ece"),
                       ("ece_ts", "ECE after T", "ece")),
    "translation": (("bleu", "BLEU", "bleu"), ("chrf", "chrF++", "chrf")),
    "completion": (("chrf", "chrF++", "chrf"), ("bleu", "BLEU", "bleu"), ("exact_match", "Exact match",
                                                                        "exact_match")),
}
# Aggregates each kind reports: (key, title).
AGGREGATES = {
    "classification": (("macro", "Macro accuracy"), ("parity_gap", "Parity gap (max - min)"),
                       ("decile_gap", "Parity gap (best - worst decile)"), ("avg_ece", "Avg-ECE"),
                       ("avg_ece_ts", "Avg-ECE after T"), ("robustness.macro_drop", "Robustness drop (Macro)")),
    "translation": (("average_bleu", "Average BLEU"), ("direction_gap", "Direction gap (BLEU)"),
                    ("average_chrf", "Average chrF++")),
    "completion": (("average_chrf", "Average chrF++"), ("average_bleu", "Average BLEU"),
                   ("average_exact_match", "Average exact match"), ("chrf_gap", "chrF++ gap")),
}


def task_kind(metrics: dict[str, Any]) -> str | None:
    """classification / translation / completion from a task's stored metrics, None for a section that is
    not a task (lm_eval)."""
    if "pairs" in metrics:
        return "translation"
    units = metrics.get("languages")
    if not isinstance(units, dict) or not units:
        return None
    first = next(iter(units.values()))
    return "classification" if "accuracy" in first else "completion"


def units_of(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return metrics.get("pairs") or metrics.get("languages") or {}


def _get(metrics: dict[str, Any], dotted: str) -> Any:
    value: Any = metrics
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def fmt(value: float | None, ci: list[float] | None = None, digits: int = 1) -> str:
    """One run's value with its interval, as the report writes it (one value: no sd)."""
    return reading.fmt([value], digits, ci)


@dataclass
class CardInputs:
    """What a card is made of, read from the study's files (see `govtune.report.facts.run_facts`)."""

    result: dict[str, Any]
    config: dict[str, Any]
    curation: dict[str, dict[str, Any]] = field(default_factory=dict)  # task -> its curation stage report
    base: dict[str, Any] | None = None  # the study's untuned base run, when it has one
    datasheet: str | None = None  # file name of the datasheet beside the card


def eval_results(inputs: CardInputs) -> list:
    """One `EvalResult` per task, unit and metric, and one per task aggregate: the point estimates."""
    from huggingface_hub import EvalResult  # heavy: only when a card is written

    out = []
    for task, metrics in inputs.result["metrics"].items():
        kind = task_kind(metrics)
        if kind is None:
            continue
        facts = dataset_facts(task, inputs.config)
        for unit, values in units_of(metrics).items():
            for key, title, hub_metric in UNIT_METRICS[kind]:
                if isinstance(values.get(key), (int, float)):
                    out.append(EvalResult(
                        task_type=TASK_TYPES[kind], dataset_type=facts.hub or task, dataset_name=f"{facts.title} ({unit})",
                        dataset_config=unit, dataset_split=facts.split, metric_type=hub_metric,
                        metric_name=f"{title} ({unit})", metric_value=float(values[key])))
        for key, title in AGGREGATES[kind]:
            value = _get(metrics, key)
            if isinstance(value, (int, float)):
                out.append(EvalResult(
                    task_type=TASK_TYPES[kind], dataset_type=facts.hub or task, dataset_name=facts.title,
                    dataset_split=facts.split, metric_type=key, metric_name=title, metric_value=float(value)))
    return out


def _task_section(task: str, metrics: dict[str, Any], ci: dict[str, list[float]], facts: DatasetFacts) -> str:
    kind = task_kind(metrics)
    cols = [(key, title) for key, title, _ in UNIT_METRICS[kind]
            if any(isinstance(v.get(key), (int, float)) for v in units_of(metrics).values())]
    prefix = "pairs" if kind == "translation" else "languages"
    rows = []
    for unit, values in sorted(units_of(metrics).items(), key=lambda kv: -(kv[1].get(cols[0][0]) or 0)):
        rows.append([unit] + [fmt(values.get(key), ci.get(f"{prefix}.{unit}.{key}")) for key, _ in cols]
                    + [str(values.get("n", "–"))])
    aggregates = [[title, fmt(_get(metrics, key), ci.get(key))] for key, title in AGGREGATES[kind]
                  if isinstance(_get(metrics, key), (int, float))]
    return "\n\n".join([
        f"### {facts.title}",
        f"{facts.description} Data: {facts.source}; licence {facts.license}. Test rows: {facts.held_out}.",
        table(["unit"] + [title for _, title in cols] + ["n"], rows),
        table(["metric", "value [95% interval]"], aggregates) if aggregates else ""]).strip()


def limitations(inputs: CardInputs) -> list[str]:
    """What the evaluation measured that a user of the model must know, each a sentence with its numbers."""
    out = []
    for task, metrics in inputs.result["metrics"].items():
        kind = task_kind(metrics)
        if kind is None:
            continue
        ci = inputs.result.get("ci95", {}).get(task, {})
        facts = dataset_facts(task, inputs.config)
        if kind == "classification":
            out += _classification_limits(facts, metrics, ci, inputs)
        else:
            units = units_of(metrics)
            key = "bleu" if kind == "translation" else "chrf"
            scored = {u: v[key] for u, v in units.items() if isinstance(v.get(key), (int, float))}
            if len(scored) > 1:
                worst = min(scored, key=scored.get)
                out.append(f"{facts.title}: the weakest {'direction' if kind == 'translation' else 'language'} is "
                           f"{worst} ({key} {scored[worst]:.1f} against {max(scored.values()):.1f} for the best).")
    return out


def _classification_limits(facts: DatasetFacts, metrics: dict, ci: dict, inputs: CardInputs) -> list[str]:
    out = []
    langs = metrics["languages"]
    chance = 100.0 / facts.classes if facts.classes else None
    if chance is not None:
        at_chance = [lang for lang in langs if (low := (ci.get(f"languages.{lang}.accuracy") or [None])[0]) is not None
                     and low <= chance]
        if at_chance:
            out.append(f"{facts.title}: in {len(at_chance)} of {len(langs)} languages the accuracy's 95% interval "
                       f"reaches chance ({chance:.1f}%): {', '.join(sorted(at_chance))}. The model does not do "
                       f"the task reliably there.")
    acc = {lang: v["accuracy"] for lang, v in langs.items()}
    if len(acc) > 1:
        worst, best = min(acc, key=acc.get), max(acc, key=acc.get)
        gap_ci = ci.get("parity_gap")
        out.append(f"{facts.title}: accuracy ranges from {acc[worst]:.1f} ({worst}) to {acc[best]:.1f} ({best}); "
                   f"the parity gap is {fmt(metrics.get('parity_gap'), gap_ci)} points.")
    worse = [lang for lang, v in langs.items() if isinstance(v.get("ece_ts"), (int, float)) and v["ece_ts"] > v["ece"]]
    if worse:
        out.append(f"{facts.title}: temperature scaling fit on the run's validation rows made calibration worse in "
                   f"{', '.join(sorted(worse))} (ECE after T above ECE before).")
    drop, drop_ci = _get(metrics, "robustness.macro_drop"), ci.get("robustness.macro_drop")
    if drop is not None and drop_ci and drop_ci[0] > 0:
        out.append(f"{facts.title}: one orthographic change per test example (punctuation, diacritics, "
                   f"whitespace) costs {fmt(drop, drop_ci)} points of Macro accuracy.")
    base = (inputs.base or {}).get("metrics", {}).get(facts.task)
    if base and isinstance(base.get("macro"), (int, float)) and isinstance(metrics.get("macro"), (int, float)):
        out.append(f"{facts.title}: the untuned base model scores {base['macro']:.1f} Macro on the same test rows, "
                   f"this run {metrics['macro']:.1f}; the study's report gives the paired interval of the difference.")
    return out


def _curation_section(inputs: CardInputs) -> str:
    if not inputs.curation:
        return "No curation: the run trained on its task's rows as given."
    parts = []
    for task, report in inputs.curation.items():
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(report.get("by_reason", {}).items())) or "none"
        parts.append(f"- {task}, stage {report.get('stage')}: {report.get('input')} records in, "
                     f"{report.get('kept')} kept, {report.get('dropped')} dropped ({reasons}).")
        changed = Counter()  # entities redacted in kept records (PII), per type, over stages and languages
        for block in (report.get("stages") or {}).values():
            for by_type in (block.get("changed_by_type") or {}).values():
                changed.update(by_type)
        if changed:
            parts.append(f"  Kept with personal data redacted: {report.get('changed', sum(changed.values()))} records ("
                         + ", ".join(f"{t} {n}" for t, n in sorted(changed.items())) + ").")
    sheet = f" Per language and reason: [{inputs.datasheet}]({inputs.datasheet})." if inputs.datasheet else ""
    return "\n".join(parts) + ("\n\n" + sheet.strip() if sheet else "")


def _cost_section(result: dict[str, Any]) -> str:
    fp = result.get("footprint") or {}
    rows = [["Tunable parameters (M)", fmt(fp.get("tunable_params_m"), digits=3)],
            ["Training steps", str(fp.get("train_steps", "–"))],
            ["Step time (s, mean after warm-up)", fmt(fp.get("step_time_s"), digits=3)],
            ["Peak memory (MB)", fmt(fp.get("peak_memory_mb"), digits=0) + (f" ({fp['memory_kind']})"
                                                                              if fp.get("memory_kind") else "")],
            ["Wall time of the run (s, training and evaluation)", fmt(fp.get("wall_time_s"), digits=0)],
            ["Device", f"{fp.get('cpu_count', '?')} CPU cores" + (f", load {fp['load_1min_start']}-{fp['load_1min_end']}"
                                                               if fp.get("load_1min_start") is not None else "")]]
    return table(["cost", "value"], rows)


def model_card(inputs: CardInputs):
    """The `huggingface_hub.ModelCard` of one run."""
    from huggingface_hub import ModelCard, ModelCardData  # heavy: only when a card is written

    result, config = inputs.result, inputs.config
    base = base_model_facts(result["model"])
    facts = run_facts(result, config)
    tasks = [t for t, m in result["metrics"].items() if task_kind(m) is not None]
    datasets = [dataset_facts(t, config) for t in tasks]
    data = ModelCardData(
        model_name=f"{result['model']} + govtune {facts['method_label']} ({result['run_id']})",
        base_model=base.hub, license=base.license_id, library_name="govtune",
        language=language_tags(result["metrics"]), datasets=sorted({d.hub for d in datasets if d.hub}),
        tags=["govtune", "peft", facts["method"], "multilingual"], eval_results=eval_results(inputs))
    sections = [
        f"# {result['model']} + govtune {facts['method_label']}: run `{result['run_id']}` of study "
        f"`{config.get('name', '?')}`",
        f"An adapter trained by govtune on {result['shots']} examples per language (curation {result['curation']}, "
        f"seed {result['seed']}) over the frozen base `{base.hub or result['model']}`. Load it with "
        f"`govtune.load_adapter(model, DIR)` on that base, or merge it (`govtune.merge_and_unload`).",
        "## Training", table(["setting", "value"], [[k, f"`{v}`"] for k, v in facts["settings"].items()]),
        "## Evaluation",
        "Point estimates with 95% percentile-bootstrap intervals over the test examples (one run, one seed; "
        "the study's report gives the mean and sd over seeds and paired differences between methods).",
        *[_task_section(t, result["metrics"][t], result.get("ci95", {}).get(t, {}), d) for t, d in zip(tasks, datasets)],
        "## Limitations measured", "\n".join(f"- {line}" for line in limitations(inputs)) or "- None measured.",
        "Untested: languages, tasks and domains outside the tables above; generation beyond the tasks' prompts.",
        "## Curation of the training data", _curation_section(inputs),
        "## Cost", _cost_section(result),
        "## Licences",
        "\n".join([f"- Base weights: {base.terms}.", *[f"- {d.title}: {d.license} ({d.citation})." for d in datasets]]),
        "## Provenance",
        f"Settings hash `{result.get('settings_hash')}`, finished {result.get('finished_at')}. The study's "
        f"`manifest.json` records the sha256 of its inputs and of every file it wrote, with the versions of govtune "
        f"and its libraries; `govtune verify OUT` checks them.",
    ]
    return ModelCard.from_template(data, template_str="---\n{{ card_data }}\n---\n\n" + "\n\n".join(sections) + "\n")


def write_card(inputs: CardInputs, directory: str | Path) -> Path:
    """README.md in `directory` (an adapter's), written atomically."""
    path = Path(directory) / "README.md"
    atomic_write_text(path, str(model_card(inputs)))
    return path
