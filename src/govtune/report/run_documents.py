"""The documents beside a tuned run's adapter (`OUT/runs/<run_id>/adapter/`): the model card (README.md) and a
datasheet per curated task (DATASHEET.md, or DATASHEET-<task>.md when the run trained on several), read from
the study's files alone. The study writes them as each tuned run finishes; `govtune card OUT` writes them
again for every finished run (after the report, say, or for a study that predates them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from govtune.atomic import atomic_write_text
from govtune.report.card import CardInputs, task_kind, write_card
from govtune.report.datasheet import datasheet
from govtune.results.layout import StudyLayout


def _curation_reports(layout: StudyLayout, result: dict[str, Any], config: dict[str, Any]) -> dict[str, dict]:
    """task -> its curation stage report for the run's curation, for the tasks that curate."""
    from govtune.tasks.registry import load_task  # reads the task files' specs, not their data

    if result["curation"] == "none":
        return {}
    reports = {}
    for entry in config.get("tasks") or []:
        try:
            task = load_task(entry)
        except (OSError, ValueError):  # a task file moved since: its datasheet says the data is unknown
            continue
        path = layout.curation_report(result["curation"], task.curation_dir)
        if task.curates and task.name in result["metrics"] and path.exists():
            reports[task.name] = json.loads(path.read_text())
    return reports


def card_inputs(layout: StudyLayout, run_id: str) -> CardInputs:
    run = layout.run(run_id)
    if not run.result.exists():
        raise FileNotFoundError(f"{run.result} not found: run {run_id!r} of {layout.root} has not finished; "
                                f"finished runs: {', '.join(r.dir.name for r in layout.finished_runs()) or 'none'}")
    result = json.loads(run.result.read_text())
    config = layout.read_study().get("config", {})
    base = next((json.loads(r.result.read_text()) for r in layout.finished_runs() if r.dir.name.startswith("base-")),
                None)
    return CardInputs(result=result, config=config, curation=_curation_reports(layout, result, config), base=base)


def datasheet_name(task: str, tasks: list[str]) -> str:
    return "DATASHEET.md" if len(tasks) == 1 else f"DATASHEET-{task}.md"


def write_run_documents(layout: StudyLayout, run_id: str, directory: str | Path | None = None) -> list[Path]:
    """README.md (the model card) and the datasheets of one finished, tuned run, into `directory` (default:
    the run's adapter directory); returns the files written."""
    inputs = card_inputs(layout, run_id)
    if inputs.result["shots"] == 0:
        raise ValueError(f"run {run_id!r} trained nothing (shots 0): a model card describes a tuned adapter; "
                         f"choose a tuned run")
    directory = Path(directory) if directory is not None else layout.run(run_id).adapter
    tasks = [t for t, m in inputs.result["metrics"].items() if task_kind(m) is not None and t in inputs.curation]
    written = []
    for task in tasks:
        path = directory / datasheet_name(task, tasks)
        atomic_write_text(path, datasheet(task, inputs.curation[task], inputs.config, inputs.result["shots"],
                                          inputs.result["seed"]))
        written.append(path)
    if len(tasks) == 1:
        inputs.datasheet = datasheet_name(tasks[0], tasks)
    written.insert(0, write_card(inputs, directory))
    return written


def tuned_runs(layout: StudyLayout) -> list[str]:
    """Finished runs that trained an adapter and saved it."""
    return [r.dir.name for r in layout.finished_runs() if r.adapter.exists()]
