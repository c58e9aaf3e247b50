"""lm-evaluation-harness's per-sample outputs: written beside its results in the JSONL format its own
`--log_samples` writes (`samples_<task>_<date>.jsonl`), read back from a directory, and turned into what
govtune's per-language analysis needs: per multiple-choice document, the raw log-likelihood of every choice,
the gold choice and the document's identity (`doc_id`, `doc_hash`); and each task's language.

The files are the interface: the analysis of a run `govtune lm-eval` just made and of a directory `lm_eval
--log_samples --output_path` wrote are one code path, so two runs can be compared from their directories."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from govtune import languages
from govtune.atomic import atomic_write_text

RESULTS_FILE = "results.json"
MAPPED = "mapped"  # the suite of ungrouped tasks whose language the user's mapping gives
MULTIPLE_CHOICE = "multiple_choice"
# lm-eval's EvaluationTracker names: samples_<task>_<date_id>.jsonl, results_<date_id>.json, with date_id
# datetime.now().isoformat() with ":" -> "-" (2026-12-07T10-50-47.123456)
_DATE = r"\d{4}-\d{2}-\d{2}T[0-9.\-]+"
_SAMPLES = re.compile(rf"samples_(?P<task>.+)_(?P<date>{_DATE})\.jsonl$")
_RESULTS = re.compile(rf"results_(?P<date>{_DATE})\.json$")


def date_id() -> str:
    """lm-eval's file date stamp (EvaluationTracker.date_id)."""
    return datetime.now().isoformat().replace(":", "-")


def _sample_line(sample: Mapping[str, Any]) -> str:
    """One sample as lm-eval's EvaluationTracker.save_results_samples writes it: arguments as
    {gen_args_i: {arg_j: ...}}, responses stringified (sanitize_list), the target as a string."""
    from lm_eval.utils import handle_non_serializable, sanitize_list

    row = dict(sample)
    row["arguments"] = {f"gen_args_{i}": {f"arg_{j}": a for j, a in enumerate(arg)}
                        for i, arg in enumerate(sample["arguments"])}
    row["resps"] = sanitize_list(sample["resps"])
    row["filtered_resps"] = sanitize_list(sample["filtered_resps"])
    row["target"] = str(sample["target"])
    return json.dumps(row, default=handle_non_serializable, ensure_ascii=False) + "\n"


def write_samples(out_dir: str | Path, samples: Mapping[str, Iterable[Mapping]], stamp: str | None = None
                  ) -> dict[str, str]:
    """Write lm-eval's logged samples ({task: [sample]}, `simple_evaluate(log_samples=True)["samples"]`) as
    out_dir/samples_<task>_<date>.jsonl, each file atomically (lm-eval appends to its own). Returns {task:
    file name}, which results.json records so a later run's files are never mixed with an older one's."""
    stamp = stamp or date_id()
    names = {}
    for task, rows in samples.items():
        names[task] = f"samples_{task}_{stamp}.jsonl"
        atomic_write_text(Path(out_dir) / names[task], "".join(_sample_line(s) for s in rows))
    return names


# --- reading a run's directory -------------------------------------------------------------------------
@dataclass(frozen=True)
class LmEvalRun:
    """lm-eval's results dict and its samples ({task: [sample]}) as read from one output directory."""
    dir: Path
    results: dict[str, Any]
    samples: dict[str, list[dict]]

    def output_type(self, task: str) -> str | None:
        return self.results.get("configs", {}).get(task, {}).get("output_type")


def _results_file(d: Path) -> Path:
    if (d / RESULTS_FILE).is_file():
        return d / RESULTS_FILE
    found = sorted(p for p in d.iterdir() if _RESULTS.match(p.name)) if d.is_dir() else []
    if found:
        return found[-1]  # lm-eval's own --output_path: the newest results_<date>.json
    raise FileNotFoundError(f"{d} holds no lm-eval results ({RESULTS_FILE} of `govtune lm-eval --out`, or the "
                            f"results_<date>.json of `lm_eval --output_path`): pass the directory a run wrote")


def read_run(path: str | Path) -> LmEvalRun:
    """A run's results and samples from the directory `govtune lm-eval --out` (or a study's
    runs/<id>/lm_eval/) wrote, or lm-eval's own `--output_path --log_samples` directory (or its per-model
    subdirectory). Refuses a directory without samples files, before any analysis."""
    d = Path(path)
    if d.is_dir() and not (d / RESULTS_FILE).is_file() and not any(_RESULTS.match(p.name) for p in d.iterdir()):
        subs = [p for p in d.iterdir() if p.is_dir() and any(_RESULTS.match(q.name) for q in p.iterdir())]
        if len(subs) == 1:  # lm_eval --output_path DIR writes DIR/<model>/results_<date>.json
            d = subs[0]
    results = json.loads(_results_file(d).read_text(encoding="utf-8"))
    named = results.get("config", {}).get("samples") or {}
    if not named:  # lm-eval's own directory: the newest file of each task
        for p in sorted(d.iterdir()):
            if (m := _SAMPLES.match(p.name)) and m["task"] in results.get("configs", {}):
                named[m["task"]] = p.name
    if not named:
        raise FileNotFoundError(f"{d} holds lm-eval results but no per-sample files (samples_<task>_<date>.jsonl):"
                                f" rerun `govtune lm-eval` (it writes them), or `lm_eval` with --log_samples")
    samples = {}
    for task, name in named.items():
        if not (d / name).is_file():
            raise FileNotFoundError(f"{d / name} (the samples of {task!r} that {d / RESULTS_FILE} names) is "
                                    f"missing: rerun the evaluation into this directory")
        with open(d / name, encoding="utf-8") as f:
            samples[task] = [json.loads(line) for line in f if line.strip()]
    return LmEvalRun(d, results, samples)


# --- multiple-choice scores ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChoiceScores:
    """One multiple-choice task's documents in doc_id order: (N, C) raw log-likelihood sums of the choices
    (what lm-eval's `acc` takes the arg-max of), gold choice indices, and the documents' identity."""
    task: str
    doc_ids: tuple[int, ...]
    doc_hashes: tuple[str, ...]
    lls: np.ndarray
    gold: np.ndarray


def _filter_rows(task: str, rows: list[dict]) -> list[dict]:
    filters = sorted({r.get("filter", "none") for r in rows})
    if len(filters) > 1:  # multiple-choice tasks have lm-eval's one `none` filter; keep it if there are more
        if "none" not in filters:
            raise ValueError(f"{task!r} has the filters {filters} and no `none`: its log-likelihoods are not "
                             f"the raw ones; analyse a task with lm-eval's default filter")
        rows = [r for r in rows if r.get("filter", "none") == "none"]
    return rows


def _gold(task: str, sample: Mapping, n: int) -> int:
    """The gold choice index as lm-eval's process_results reads doc_to_target (an index, or the text of a
    choice), recovered from the samples file, where the target is a string and each choice's continuation is
    `target_delimiter + choice`; checked against the document's own `acc` when the file has it."""
    target = str(sample["target"])
    conts = [str(a["arg_1"]) if isinstance(a, Mapping) else str(a[1]) for a in _arguments(sample)]
    readings = set()
    if re.fullmatch(r"\d+", target) and int(target) < n:
        readings.add(int(target))
    for i, c in enumerate(conts):  # the text of choice i, with the delimiter every continuation starts with
        if c.endswith(target) and all(o.startswith(c[: len(c) - len(target)]) for o in conts):
            readings.add(i)
    if "acc" in sample and len(readings) > 1:
        pred = int(np.argmax(_lls(sample)))
        readings = {g for g in readings if float(pred == g) == float(sample["acc"])} or readings
    if len(readings) != 1:
        raise ValueError(f"{task!r} doc {sample.get('doc_id')}: cannot tell the gold choice from the target "
                         f"{target!r} (choices {conts}); a task with several gold answers or a target that is "
                         f"neither a choice index nor a choice is not analysed")
    return readings.pop()


def _arguments(sample: Mapping) -> list:
    args = sample["arguments"]
    return list(args.values()) if isinstance(args, Mapping) else list(args)


def _lls(sample: Mapping) -> list[float]:
    # [[ll, is_greedy], ...] per choice; stringified in the file, where str(float) round-trips exactly
    return [float(r[0]) for r in sample["filtered_resps"]]


def choice_scores(task: str, rows: list[dict]) -> ChoiceScores:
    """A multiple-choice task's samples -> ChoiceScores; every document must have the same number of choices
    (a temperature and an (N, C) probability table need it)."""
    rows = sorted(_filter_rows(task, rows), key=lambda r: int(r["doc_id"]))
    if not rows:
        raise ValueError(f"{task!r} has no samples: evaluate at least one document")
    lls = [_lls(r) for r in rows]
    sizes = sorted({len(x) for x in lls})
    if len(sizes) != 1 or sizes[0] < 2:
        raise ValueError(f"{task!r}: documents have {sizes} choices; the analysis needs the same number (>= 2) "
                         f"for every document")
    gold = np.array([_gold(task, r, sizes[0]) for r in rows])
    table = np.array(lls, dtype=np.float64)
    if any("acc" in r and float(r["acc"]) != float(p == g) for r, p, g in zip(rows, table.argmax(axis=1), gold)):
        raise ValueError(f"{task!r}: the arg-max of the samples' log-likelihoods disagrees with lm-eval's own "
                         f"per-document acc (an acc_mutual_info or custom process_results task?): not analysed")
    doc_ids = tuple(int(r["doc_id"]) for r in rows)
    if len(set(doc_ids)) != len(doc_ids):
        raise ValueError(f"{task!r}: a doc_id occurs twice in its samples (two runs appended to one file?); "
                         f"rerun into an empty directory")
    return ChoiceScores(task, doc_ids, tuple(str(r.get("doc_hash", "")) for r in rows), table, gold)


# --- languages and suites --------------------------------------------------------------------------------
def normalise(code: str) -> str:
    """One internal form of a language code: govtune.languages' `normalize` where it has one, else its ISO
    639-1 reading of an ISO or FLORES-200 code."""
    norm = getattr(languages, "normalize", None)
    return norm(code) if norm is not None else languages.iso_code(code)


def task_language(task: str, lang_map: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """(language, the task name without it) of a task: the user's mapping first, else a trailing language
    code of the name (`xnli_sw`, `belebele_swh_Latn`, `govtune-xnli-en`): the last two `-`/`_` parts as a
    FLORES-200 code, then the last part. None when neither names a language."""
    if lang_map and task in lang_map:
        return normalise(lang_map[task]), MAPPED
    parts = re.split(r"([-_])", task)  # names, separators, names, ...
    for k in (3, 1):  # "swh", "_", "Latn" -> swh_Latn; then "en"
        if len(parts) > k + 1:
            code = "".join(parts[-k:]).replace("-", "_")
            try:
                return normalise(code), "".join(parts[: -k - 1])
            except (ValueError, KeyError):
                continue
    return None


def top_groups(results: Mapping) -> dict[str, str]:
    """{leaf task: its outermost group} from lm-eval's `group_subtasks`."""
    children = results.get("group_subtasks", {})
    parent = {c: g for g, cs in children.items() for c in cs if c != g}
    out = {}
    for task in parent:
        top = task
        while top in parent:
            top = parent[top]
        out[task] = top
    return out


def suites(tasks: Iterable[str], results: Mapping, lang_map: Mapping[str, str] | None = None
           ) -> dict[str, dict[str, str]]:
    """{suite: {language: task}}: a group's subtasks form one suite (named after the outermost group); other
    tasks one per name without its language (`xnli_en`, `xnli_sw` -> `xnli`), those the mapping names one
    suite `mapped`. Refuses, before any scoring,
    a task whose language is unknown or two tasks of one language in one suite."""
    groups = top_groups(results)
    out: dict[str, dict[str, str]] = {}
    unknown = []
    for task in tasks:
        found = task_language(task, lang_map)
        if found is None:
            unknown.append(task)
            continue
        lang, rest = found
        suite = groups.get(task) or rest
        if lang in out.setdefault(suite, {}):
            raise ValueError(f"{out[suite][lang]!r} and {task!r} are both {lang!r} in {suite!r}: analyse one task "
                             f"per language and suite (run them separately, or map them apart with --lang-map)")
        out[suite][lang] = task
    if unknown:
        raise ValueError(f"no language found in the task name{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(map(repr, unknown))}: name it with --lang-map TASK=LANG,... (a study: "
                         f"lm_eval_lang_map: {{TASK: LANG}}), with an ISO 639-1/639-3 or FLORES-200 code")
    return out
