"""The grid runner: every cell (method x seed x shots x curation) is a run with its own directory
`OUT/runs/<run_id>/`, finished when its `done` marker exists. A study interrupted anywhere resumes with
`--resume`: finished cells are skipped (never run twice), an interrupted one continues from its last epoch
checkpoint, a diverged one starts over.

Order of writes per cell: run files, then the database rows (one transaction), then `done`, then
`results.json` (rebuilt from the finished runs). A crash before `done` leaves the cell to be rerun; its rows
are then replaced, not duplicated. Every path comes from govtune.results.layout."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from accelerate import PartialState
from tqdm.auto import tqdm

from govtune.atomic import atomic_write_json, atomic_write_text
from govtune.evaluation.sharding import process_state
from govtune.models import load_model
from govtune.report import write_report
from govtune.results.integrity import check_study_file, repair_study
from govtune.results.layout import RunLayout, StudyLayout
from govtune.results.store import read_predictions, record_run, record_study, write_results_json
from govtune.study.cell import Cell, grid_cells, run_cell
from govtune.study.config import GRID_KEYS, StudyConfig
from govtune.study.data import StudyData, curate_study, export_study
from govtune.study.ledger import record_curation
from govtune.study.lock import StudyLock, on_main
from govtune.training import History, TrainingDiverged, make_accelerator


@dataclass
class StudyOutcome:
    out_dir: Path
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    report: Path | None = None


def _clear_attempt(run: RunLayout) -> None:
    """Clear an unfinished earlier attempt of a cell. An interrupted one keeps its epoch checkpoint, from
    which training resumes (the cell's data and adapter init are rebuilt identically from its seed); one
    that diverged (`failed`) starts over."""
    if not run.dir.exists():
        return
    keep = None if run.failed.exists() else run.checkpoint
    for child in run.dir.iterdir():
        if child != keep:
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def check_out_dir(config: StudyConfig, layout: StudyLayout, resume: bool) -> None:
    """Refuse to write where another study's results live; nothing is touched before this passes."""
    if layout.is_empty():
        return
    out_dir = layout.root
    if not layout.study.exists():
        raise FileExistsError(f"{out_dir} is not empty and holds no govtune study ({layout.study.name} missing); "
                              f"choose a new or empty --out directory")
    saved = layout.read_study()
    if saved.get("settings_hash") != config.settings_hash():
        old, new = saved.get("settings", {}), config.settings()
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise FileExistsError(
            f"{out_dir} holds another study's results (settings hash {saved.get('settings_hash')} != "
            f"{config.settings_hash()}; differing keys: {', '.join(diff) or 'unknown'}). --resume only "
            f"continues the same study (it may add methods, seeds, shots or curation stages); "
            f"choose a new --out directory, or delete {out_dir} to start over")
    if not resume:
        finished = len(layout.finished_runs())
        raise FileExistsError(f"{out_dir} already holds this study ({finished} finished runs); pass --resume "
                              f"to continue it (finished runs are kept and not rerun), or choose a new --out")


def _write_study_file(config: StudyConfig, layout: StudyLayout) -> None:
    grids = layout.read_study().get("grids", [])
    grid = {k: getattr(config, k) for k in GRID_KEYS}
    if grid not in grids:
        grids.append(grid)
    atomic_write_json(layout.study, {"name": config.name, "model": config.model,
                                     "settings_hash": config.settings_hash(), "settings": config.settings(),
                                     "grids": grids, "config": config.to_dict()})


def _finished_results(layout: StudyLayout) -> list[dict]:
    results = [json.loads(run.result.read_text()) for run in layout.finished_runs()]
    order = {"base": 0, "icl": 1}
    return sorted(results, key=lambda r: (r["curation"], r["shots"], order.get(r["method"], 2), r["method"],
                                          r["seed"]))


def _record_finished(layout: StudyLayout, run_ids: list[str]) -> None:
    """Record the finished runs again from their own files (result, history, predictions: the source of
    truth), so that the store holds every one of them with today's tables, even one a lost database or an
    older govtune left out. record_run replaces a run's rows, so this is idempotent."""
    for run_id in run_ids:
        run = layout.run(run_id)
        curves = History.from_dict(json.loads(run.history.read_text())).curves() if run.history.exists() else {}
        record_run(layout, json.loads(run.result.read_text()), curves, read_predictions(run))


def _model_loader(config: StudyConfig) -> Callable:
    return lambda: load_model(config.model, quantize=config.quantize)


def _open_study(config: StudyConfig, layout: StudyLayout, resume: bool, lock: StudyLock) -> None:
    """Take the directory's lock (one writer per study), check that it holds this study or nothing, repair
    what --resume can rebuild, and record the study. Main process only."""
    lock.acquire()
    check_study_file(layout)  # check_out_dir reads it
    check_out_dir(config, layout, resume)
    repair_study(layout)
    _write_study_file(config, layout)
    record_study(layout, config.name, config.model, config.settings_hash(), config.to_dict())


def run_study(config: StudyConfig, out_dir: str | Path, resume: bool = False, progress: bool = True,
              report: bool = True, after_cell: Callable[[Cell], None] | None = None,
              model_loader: Callable | None = None) -> StudyOutcome:
    """Run every unfinished cell of the study into out_dir, then write the report. The main process holds
    the directory's lock throughout: a second run on it is refused (StudyLocked)."""
    # Under `accelerate launch` every process runs the grid (training is data-parallel); only the main
    # process locks, checks, curates and writes, the others wait for it at each barrier.
    state = process_state()
    out_dir = Path(out_dir)
    layout = StudyLayout(out_dir)
    lock = StudyLock(layout.lock, out_dir)
    try:
        on_main(state, lambda: _open_study(config, layout, resume, lock))
        state.wait_for_everyone()
        return _run_grid(config, layout, state, progress, report, after_cell, model_loader)
    finally:
        lock.release()


def _run_grid(config: StudyConfig, layout: StudyLayout, state: PartialState, progress: bool, report: bool,
              after_cell: Callable[[Cell], None] | None, model_loader: Callable | None) -> StudyOutcome:
    main, out_dir = state.is_main_process, layout.root
    loader = model_loader or _model_loader(config)
    outcome = StudyOutcome(out_dir)
    data = StudyData(config, layout, progress=progress and main)
    cells = grid_cells(config)
    todo = [c for c in cells if not layout.run(c.run_id).is_done()]
    outcome.skipped = [c.run_id for c in cells if c not in todo]
    accelerator = make_accelerator(config.mixed_precision, config.grad_accum) if todo else None
    try:
        if main:  # every curated pool is written before any cell runs (C2 scores with the base model)
            curate_study(data, {c.curation for c in todo if c.curation != "none"}, loader)
            export_study(data, {c.curation for c in todo if c.curation != "none"})
            record_curation(data)
            _record_finished(layout, outcome.skipped)
            write_results_json(layout, _finished_results(layout))
        state.wait_for_everyone()
        bar = tqdm(total=len(cells), initial=len(cells) - len(todo), desc="grid", unit="run",
                   disable=not (progress and main))
        with bar:  # closed before an error propagates: the error is the last line printed
            _run_cells(todo, config, data, layout, accelerator, loader, state, progress, outcome, bar,
                       after_cell)
    except (torch.OutOfMemoryError, MemoryError) as e:
        raise MemoryError(
            f"model {config.model!r} does not fit in memory ({e.__class__.__name__}: "
            f"{str(e).splitlines()[0] if str(e) else 'out of memory'}). Lower batch_size or max_length, "
            f"set grad_accum, use mixed_precision=bf16 on a GPU, or a smaller model. Finished runs in "
            f"{out_dir} are kept; rerun with --resume.") from None
    if report and main:
        outcome.report = write_report(out_dir)
    return outcome


def _run_cells(todo: list[Cell], config: StudyConfig, data: StudyData, layout: StudyLayout, accelerator,
               loader: Callable, state: PartialState, progress: bool, outcome: StudyOutcome, bar,
               after_cell: Callable[[Cell], None] | None) -> None:
    """Run the unfinished cells in order, recording each finished one (main process) before the next."""
    main = state.is_main_process
    for cell in todo:
        bar.set_postfix_str(cell.run_id)
        run = layout.run(cell.run_id)
        if main:
            _clear_attempt(run)
            run.dir.mkdir(parents=True, exist_ok=True)
        state.wait_for_everyone()
        try:
            result, curves = run_cell(cell, config, data, run, accelerator, loader,
                                      progress=progress and main, write=main)
        except TrainingDiverged as e:
            if main:
                atomic_write_text(run.failed, str(e) + "\n")
                tqdm.write(f"{cell.run_id}: {e}")
            outcome.failed[cell.run_id] = str(e)
            bar.update(1)
            continue
        if main:
            atomic_write_json(run.result, result)
            record_run(layout, result, curves, read_predictions(run))
            atomic_write_text(run.done, result["finished_at"] + "\n")
            write_results_json(layout, _finished_results(layout))
        state.wait_for_everyone()
        outcome.ran.append(cell.run_id)
        bar.update(1)
        if after_cell is not None:
            after_cell(cell)
