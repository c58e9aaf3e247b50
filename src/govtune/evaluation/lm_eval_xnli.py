"""govtune's XNLI as an lm-evaluation-harness task: `govtune-xnli-{lang}` per shipped language and the group
`govtune-xnli` (Macro = unweighted mean of the languages' accuracies); `govtune-xnli-val-{lang}` and the group
`govtune-xnli-val` score the pool rows instead, a validation split for temperature scaling.

The task YAML is rendered from govtune's own prompt (`govtune.text.prompts`), so lm-eval scores exactly
the continuations `govtune eval` scores: context = `xnli_prompt(premise, hypothesis, lang)`, choices = the
three label words after the language's separator (`target_delimiter`). Data: `dataset_path: json` with
`data_files` set to the absolute path of the XNLI files of the installed package; that path is why the
YAML is written at run time (`write_tasks(dir)`) rather than shipped. Test docs are the evaluation rows
(`govtune.data.XNLI_EVAL_ROWS`), few-shot examples come from the pool rows, so `--num-fewshot` never
shows a test pair (nor its translation) as an example. Both selections are the functions below, which the
YAML names with `!function` (lm-eval imports them from the installed govtune)."""

from __future__ import annotations

from pathlib import Path

import yaml

from govtune.atomic import atomic_write_text
from govtune.data import DATA_DIR, XNLI_EVAL_ROWS, XNLI_POOL_ROWS
from govtune.data.jsonl import find
from govtune.data.xnli import LABELS, label_name
from govtune.text.prompts import XNLI_STRINGS, xnli_prompt

GROUP = "govtune-xnli"
VAL_GROUP = "govtune-xnli-val"  # the pool rows as test docs: a calibration split disjoint from the evaluation rows
SPLIT = "dev"
# The group's languages: the papers' three. govtune ships all 15 XNLI languages; the group stays the papers'
# Macro (lm-eval's hub tasks `xnli_{lang}` cover the others).
OFFLINE_LANGUAGES = ("en", "zh", "hi")


def task_name(lang: str, group: str = GROUP) -> str:
    return f"{group}-{lang}"


def languages(data_dir: Path = DATA_DIR) -> list[str]:
    """The papers' languages (OFFLINE_LANGUAGES) with both a prompt and a data file."""
    return [lang for lang in OFFLINE_LANGUAGES if lang in XNLI_STRINGS and _data_file(lang, data_dir) is not None]


def _data_file(lang: str, data_dir: Path) -> Path | None:
    """The language's XNLI file, plain or compressed (HF `datasets` reads .jsonl.xz as it is)."""
    return find(data_dir / "xnli" / f"{lang}.{SPLIT}.jsonl")


def _rows(dataset, rows: range, what: str):
    keep = [i for i in rows if i < len(dataset)]
    if not keep:
        raise ValueError(f"the XNLI file has {len(dataset)} rows, none of the {what} rows "
                         f"{rows.start}..{rows.stop - 1}: use the full XNLI dev split")
    out = dataset.select(keep)
    return out.add_column("gold", [LABELS.index(label_name(v)) for v in out["label"]])


def evaluation_docs(dataset):
    """lm-eval `process_docs` of the test split: the evaluation rows, with the gold class index."""
    return _rows(dataset, XNLI_EVAL_ROWS, "evaluation")


def pool_docs(dataset):
    """`process_docs` of the few-shot split: the pool rows, disjoint from the evaluation rows."""
    return _rows(dataset, XNLI_POOL_ROWS, "few-shot pool")


class _Function(str):
    """A YAML scalar written with lm-eval's `!function` tag."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Function, lambda d, v: d.represent_scalar("!function", str(v)))
# Prompts as literal blocks, so the YAML shows them as the model reads them.
_Dumper.add_representer(str, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v,
                                                             style="|" if "\n" in v else None))


def task_config(lang: str, data_dir: Path = DATA_DIR) -> dict:
    s = XNLI_STRINGS[lang]
    found = _data_file(lang, data_dir)
    if found is None:
        raise FileNotFoundError(f"no XNLI {lang} file under {data_dir / 'xnli'}: choose among "
                                f"{', '.join(languages(data_dir))}")
    path = str(found.resolve())
    # The Jinja fields go through govtune's template; `trim` is the .strip() xnli_prompt applies.
    text = xnli_prompt("{{premise|trim}}", "{{hypothesis|trim}}", lang)
    return {
        "task": task_name(lang),
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"pool": path, "test": path}},
        "output_type": "multiple_choice",
        "test_split": "test",
        "fewshot_split": "pool",
        "process_docs": _Function(f"{__name__}.evaluation_docs"),
        "fewshot_config": {"process_docs": _Function(f"{__name__}.pool_docs")},
        "doc_to_text": text,
        "doc_to_choice": list(s.words),
        "doc_to_target": "gold",
        "target_delimiter": s.sep,
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                        {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1.0},
    }


def val_task_config(lang: str, data_dir: Path = DATA_DIR) -> dict:
    """The same task on the pool rows (`govtune-xnli-val-{lang}`): the validation split that fits
    temperatures (`govtune lm-eval --calibrate-on govtune-xnli-val`), never an evaluation row."""
    cfg = task_config(lang, data_dir)
    return {**cfg, "task": task_name(lang, VAL_GROUP), "test_split": "pool",
            "process_docs": _Function(f"{__name__}.pool_docs")}


def group_config(langs: list[str], group: str = GROUP) -> dict:
    return {"group": group, "task": [task_name(lang, group) for lang in langs],
            "aggregate_metric_list": [{"metric": m, "aggregation": "mean", "weight_by_size": False}
                                      for m in ("acc", "acc_norm")],
            "metadata": {"version": 1.0}}


def write_tasks(out_dir: str | Path, data_dir: Path = DATA_DIR) -> Path:
    """Write the task and group YAMLs into out_dir (an lm-eval `--include_path`); returns out_dir."""
    out_dir = Path(out_dir)
    langs = languages(data_dir)
    files = {f"{task_name(lang)}.yaml": task_config(lang, data_dir) for lang in langs}
    files[f"{GROUP}.yaml"] = group_config(langs)
    files.update({f"{task_name(lang, VAL_GROUP)}.yaml": val_task_config(lang, data_dir) for lang in langs})
    files[f"{VAL_GROUP}.yaml"] = group_config(langs, VAL_GROUP)
    for name, cfg in files.items():
        atomic_write_text(out_dir / name, yaml.dump(cfg, Dumper=_Dumper, allow_unicode=True, sort_keys=False))
    return out_dir
