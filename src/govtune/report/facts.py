"""What a model card and a datasheet say about the things a run used: the base weights (hub name, licence,
terms), each task's data (hub name, licence, citation, which split the test rows come from) and the run's
settings. Kept apart from the writers so both documents say the same thing the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DatasetFacts:
    task: str
    title: str
    hub: str | None  # the dataset's hub name (model-index `dataset.type`)
    license: str
    citation: str
    split: str  # the hub split the test rows come from (model-index `dataset.split`)
    held_out: str  # how the test rows are kept apart from the training rows
    description: str
    source: str
    classes: int = 0  # classification: number of labels (chance = 1 / classes)


# The built-in tasks' data, as shipped (src/govtune/data/NOTICE) and on the hub.
BUILTIN = {
    "xnli": DatasetFacts("xnli", "XNLI", "facebook/xnli", "CC BY-NC 4.0", "Conneau et al., 2018",
                         "validation", "dev rows of the second half, held out from the few-shot pool (the first half)",
                         "Natural language inference: premise and hypothesis, entailment / neutral / contradiction.",
                         "XNLI 1.0 dev split as shipped with govtune", 3),
    "flores": DatasetFacts("flores", "FLORES-200", "facebook/flores", "CC BY-SA 4.0",
                           "NLLB Team, 2022; Goyal et al., 2021", "dev",
                           "dev lines held out from the training and demonstration lines",
                           "Sentence translation, greedy decoding, sacreBLEU corpus BLEU and chrF++.",
                           "FLORES-200 dev split as shipped with govtune"),
    "sib200": DatasetFacts("sib200", "SIB-200", "Davlan/sib200", "CC BY-SA 4.0", "Adelani et al., 2024",
                           "train+dev", "rows held out by index_id, the same sentences in every language",
                           "Topic classification of FLORES-200 sentences into 7 categories.",
                           "SIB-200 train and dev rows as shipped with govtune", 7),
}
# License identifiers the hub knows, for the base weights' terms govtune can name.
LICENSE_IDS = {"Apache-2.0": "apache-2.0", "Gemma": "gemma", "MIT": "mit"}


@dataclass(frozen=True)
class BaseModelFacts:
    hub: str | None
    terms: str
    license_id: str


def base_model_facts(model: str) -> BaseModelFacts:
    """The base weights a run adapted: an offline model's hub name and terms, else the name as given."""
    from govtune.models import TINY_BLOOM, TINY_LLAMA, offline_model  # transformers: only for a card

    if model in (TINY_LLAMA, TINY_BLOOM):
        return BaseModelFacts(None, "random weights made for tests (no licence applies)", "other")
    known = offline_model(model)
    if known is None:
        return BaseModelFacts(model, f"those of `{model}` (see its model card)", "other")
    hub = next((a for a in known.aliases if "/" in a), None)
    license_id = next((v for k, v in LICENSE_IDS.items() if known.terms.startswith(k)), "other")
    return BaseModelFacts(hub, known.terms, license_id)


def dataset_facts(task: str, config: dict[str, Any]) -> DatasetFacts:
    """A task's data: a built-in's known facts, or what a task file says of itself."""
    if task in BUILTIN:
        return BUILTIN[task]
    spec = _task_file_spec(task, config)
    hub = getattr(spec, "dataset", None)
    labels = len(getattr(spec, "labels", None) or [])
    description = (getattr(spec, "description", "") or f"Task file `{task}`.").rstrip(".") + "."
    source = f"hub dataset `{hub}`" if hub else f"the task file's data files ({getattr(spec, 'data_files', '?')})"
    return DatasetFacts(task, f"`{task}`", hub, "not recorded in the task file: state the data's licence here",
                        "the data's owner", "test", "the task's test split, kept apart from its train split",
                        description, source, labels)


def _task_file_spec(task: str, config: dict[str, Any]):
    """The spec of a study's task file named `task`, or None when it cannot be read any more."""
    from govtune.tasks.registry import is_task_file, task_spec  # the task classes import torch

    for entry in config.get("tasks") or []:
        if isinstance(entry, str) and is_task_file(entry):
            try:
                spec = task_spec(entry)
            except (OSError, ValueError):
                continue
            if spec.name == task:
                return spec
    return None


def language_tags(metrics: dict[str, Any]) -> list[str]:
    """The languages a run was evaluated in, as the hub's `language:` list wants them (ISO 639 codes)."""
    tags: set[str] = set()
    for m in metrics.values():
        if not isinstance(m, dict):
            continue
        for unit in (m.get("languages") or {}):
            tags.add(_iso(unit))
        for pair in (m.get("pairs") or {}):
            tags.update(_iso(side) for side in pair.split("-"))
    return sorted(tags)


def _iso(code: str) -> str:
    # FLORES-200 codes carry the script (`zho_Hant`); the hub's language field takes the ISO 639 part.
    return code.split("_")[0]


def method_label(method: str, config: dict[str, Any]) -> str:
    variant = (config.get("variants") or {}).get(method)
    if not variant:
        return method
    extra = ", ".join(f"{k}={v}" for k, v in variant.items() if k != "method")
    return f"{variant.get('method', method)} ({extra})" if extra else variant.get("method", method)


def run_facts(result: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The method and the settings the run trained with, as the card's training table shows them."""
    method = result["method"]
    variant = dict((config.get("variants") or {}).get(method) or {})
    adapter = {**(config.get("adapter") or {}), **{k: v for k, v in variant.items() if k != "method"}}
    lr = (config.get("lr_per_method") or {}).get(method, config.get("lr"))
    settings = {"method": variant.get("method", method), **adapter, "learning rate": lr,
                "epochs": config.get("epochs"), "batch size": config.get("batch_size"),
                "schedule": config.get("schedule"), "warm-up ratio": config.get("warmup_ratio"),
                "weight decay": config.get("weight_decay"), "max length": config.get("max_length"),
                "shots per language": result["shots"], "seed": result["seed"], "curation": result["curation"]}
    if variant.get("method", method) == "hybrid" and config.get("lr_branches"):
        settings["branch learning rates"] = config["lr_branches"]
    for key in ("quantize", "head"):
        if config.get(key) not in (None, "lm"):
            settings[key] = config[key]
    return {"method": variant.get("method", method), "method_label": method_label(method, config),
            "settings": {k: v for k, v in settings.items() if v is not None}}
