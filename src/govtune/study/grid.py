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
from tqdm.auto import tqdm

from govtune.adapters.lora_ga import GradientCache
from govtune.atomic import atomic_write_json, atomic_write_text
from govtune.evaluation.sharding import process_state
from govtune.constants import INCONTEXT
from govtune.report import write_report
from govtune.report.run_documents import write_run_documents
from govtune.results import manifest
from govtune.results.archive import check_restored
from govtune.results.integrity import check_study_file, repair_study
from govtune.results.layout import RunLayout, StudyLayout
from govtune.results.store import read_predictions, record_run, record_study, write_results_json
from govtune.study import ray_executor
from govtune.study.cell import Cell, CellRun, grid_cells
from govtune.study.cell import model_loader as model_loader_of
from govtune.study.config import GRID_KEYS, StudyConfig
from govtune.study.data import StudyData, curate_study, export_study
from govtune.study.ledger import record_curation
from govtune.study.lock import StudyLock, on_main
from govtune.study.provenance import study_inputs
from govtune.training import History, TrainingDiverged, make_accelerator

EXECUTORS = ("local", "ray")


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


class StudyRunner:
    """One study, read top to bottom like a recipe: set up once (the config, the output directory's layout and
    lock, the process group, how a cell loads its model), `open` the directory, `prepare` the data (tasks,
    curated pools, exports, the ledger's records) once, then `run_cell` for each unfinished cell, then the
    report. Every cell reads what it needs from here; nothing is fetched from deeper in a step.

    Under `accelerate launch` every process runs the grid (training is data-parallel); only the main
    process locks, checks, curates and writes, the others wait for it at each barrier."""

    def __init__(self, config: StudyConfig, out_dir: str | Path, progress: bool = True,
                 model_loader: Callable | None = None, executor: str = "local", ray_address: str | None = None):
        if executor not in EXECUTORS:
            raise ValueError(f"unknown executor {executor!r}: use one of {', '.join(EXECUTORS)}")
        self.config = config
        self.layout = StudyLayout(Path(out_dir))
        self.lock = StudyLock(self.layout.lock, self.layout.root)
        self.state = process_state()
        self.main = self.state.is_main_process
        self.progress = progress
        self.custom_loader = model_loader is not None
        self.load_model = model_loader or model_loader_of(config)
        self.executor, self.ray_address = executor, ray_address
        self.data: StudyData | None = None  # prepare() builds it
        self.accelerator = None  # one for every cell, made when a cell is to run in this process
        self.gradient_cache = GradientCache()  # LoRA-GA's gradient estimate, shared by the cells that need the same

    def run(self, resume: bool = False, report: bool = True,
            after_cell: Callable[[Cell], None] | None = None) -> StudyOutcome:
        """Run every unfinished cell of the study, then write the report. The main process holds the
        directory's lock throughout: a second run on it is refused (StudyLocked). With the Ray executor the
        cluster is joined and checked first, before any work (govtune.study.ray_executor)."""
        joined = self._join_ray() if self.executor == "ray" else False
        try:
            on_main(self.state, lambda: self.open(resume))
            self.state.wait_for_everyone()
            return self._run_grid(report, after_cell)
        finally:
            self.lock.release()
            if joined:
                ray_executor.ray_module().shutdown()

    def _join_ray(self) -> bool:
        """Connect to Ray and check that the cluster can hold a cell; True when this runner connected."""
        if self.state.num_processes > 1:
            raise ValueError("--executor ray runs each cell as one Ray task: start `govtune run` as one process "
                             "(not under accelerate launch or torchrun), or use --executor local")
        if self.custom_loader:
            raise ValueError("--executor ray loads each cell's model from the config's `model` on its node: a "
                             "model_loader of the calling process cannot travel to the workers")
        joined = ray_executor.connect(self.ray_address)
        try:
            ray_executor.check_resources(self.config.cell_resources, ray_executor.ray_module().nodes())
        except ValueError:
            if joined:
                ray_executor.ray_module().shutdown()
            raise
        return joined

    def open(self, resume: bool) -> None:
        """Take the directory's lock (one writer per study), check that it holds this study or nothing, repair
        what --resume can rebuild, and record the study. Main process only."""
        config, layout = self.config, self.layout
        self.lock.acquire()
        check_restored(layout)  # runs read without their archived histories and predictions would be redone
        check_study_file(layout)  # check_out_dir reads it
        check_out_dir(config, layout, resume)
        repaired = repair_study(layout)
        _write_study_file(config, layout)
        record_study(layout, config.name, config.model, config.settings_hash(), config.to_dict())
        aside = sorted(layout.root.glob(f"{layout.database.name}.damaged-*")) if repaired else []
        if not layout.manifest.exists() and layout.finished_runs():
            # a study run before manifests existed: its files are recorded as they are now, and said so
            manifest.record(layout.root, [layout.root], "adopt")
        else:
            manifest.record(layout.root, [layout.study, layout.database, layout.results_json, *aside],
                            "repair" if repaired else "open")

    def prepare(self, todo: list[Cell], finished: list[str]) -> None:
        """The study's data, once: its tasks; on the main process every curated pool the unfinished cells
        need (written before any cell runs: C2 scores with the base model), the exports, the ledger's
        records and the finished runs recorded again."""
        config, layout = self.config, self.layout
        self.data = StudyData(config, layout, progress=self.progress and self.main)
        if todo and self.executor == "local":
            self.accelerator = make_accelerator(config.mixed_precision, config.grad_accum)
        if self.main:
            stages = {c.curation for c in todo if c.curation != "none"}
            curate_study(self.data, stages, self.load_model)
            # every cell's shots drawn once: a language curation emptied stops the study before any training
            self.data.check_samples([(c.curation, c.shots) for c in todo if c.shots > 0]
                                    + [(c.curation, config.incontext_shots) for c in todo if c.method == INCONTEXT])
            export_study(self.data, stages)
            record_curation(self.data)
            _record_finished(layout, finished)
            write_results_json(layout, _finished_results(layout))
            manifest.record(layout.root, [layout.curation_dir, layout.tasks_dir, layout.export_dir,
                                          layout.database, layout.results_json], "curate",
                            inputs=study_inputs(config.to_dict(), self.data.tasks))

    def _run_grid(self, report: bool, after_cell: Callable[[Cell], None] | None) -> StudyOutcome:
        config, layout, out_dir = self.config, self.layout, self.layout.root
        outcome = StudyOutcome(out_dir)
        cells = grid_cells(config)
        todo = [c for c in cells if not layout.run(c.run_id).is_done()]
        outcome.skipped = [c.run_id for c in cells if c not in todo]
        try:
            self.prepare(todo, outcome.skipped)
            self.state.wait_for_everyone()
            bar = tqdm(total=len(cells), initial=len(cells) - len(todo), desc="grid", unit="run",
                       disable=not (self.progress and self.main))
            with bar:  # closed before an error propagates: the error is the last line printed
                if self.executor == "ray":
                    ray_executor.RayCells(self).run(todo, outcome, bar)
                    todo = []
                for cell in todo:
                    bar.set_postfix_str(cell.run_id)
                    failure = self.run_cell(cell)
                    if failure is None:
                        outcome.ran.append(cell.run_id)
                    else:
                        outcome.failed[cell.run_id] = failure
                    bar.update(1)
                    if failure is None and after_cell is not None:
                        after_cell(cell)
        except (torch.OutOfMemoryError, MemoryError) as e:
            raise MemoryError(
                f"model {config.model!r} does not fit in memory ({e.__class__.__name__}: "
                f"{str(e).splitlines()[0] if str(e) else 'out of memory'}). Lower batch_size or max_length, "
                f"set grad_accum, use mixed_precision=bf16 on a GPU, or a smaller model. Finished runs in "
                f"{out_dir} are kept; rerun with --resume.") from None
        if report and self.main:
            outcome.report = write_report(out_dir)
        return outcome

    def run_cell(self, cell: Cell) -> str | None:
        """Train and evaluate one cell and, on the main process, write its result, record it in the store and
        mark it done (in that order: a crash before `done` leaves the cell to be rerun). Returns None, or
        why training diverged (the cell is then marked failed)."""
        run = self.layout.run(cell.run_id)
        if self.main:
            self.start_attempt(run)
        self.state.wait_for_everyone()
        try:
            result, curves = CellRun(self, cell, run).result()
        except TrainingDiverged as e:
            if self.main:
                self.mark_failed(run, cell, str(e))
            return str(e)
        if self.main:
            self.record_cell(run, cell, result, curves)
        self.state.wait_for_everyone()
        return None

    def start_attempt(self, run: RunLayout) -> None:
        """Before a cell runs (again): clear an earlier attempt's files, keeping its epoch checkpoint."""
        _clear_attempt(run)
        run.dir.mkdir(parents=True, exist_ok=True)
        manifest.record(self.layout.root, [run.dir], "clear")  # forget an earlier attempt's files

    def mark_failed(self, run: RunLayout, cell: Cell, message: str) -> None:
        """A cell that cannot finish (diverged, or its worker died too often): `failed`, retried by --resume."""
        atomic_write_text(run.failed, message + "\n")
        tqdm.write(f"{cell.run_id}: {message}")

    def record_cell(self, run: RunLayout, cell: Cell, result: dict, curves: dict) -> None:
        """A finished cell, in the order that keeps a crash anywhere recoverable: its result, the documents
        beside its adapter, the database rows, `done`, results.json, the manifest. Only the study's one
        writer (the main process, the Ray driver) calls this."""
        layout = self.layout
        atomic_write_json(run.result, result)
        if run.adapter.exists():
            write_run_documents(layout, cell.run_id)  # model card and datasheet beside the adapter
        record_run(layout, result, curves, read_predictions(run))
        atomic_write_text(run.done, result["finished_at"] + "\n")
        write_results_json(layout, _finished_results(layout))
        manifest.record(layout.root, [run.dir, layout.database, layout.results_json], "run")


def run_study(config: StudyConfig, out_dir: str | Path, resume: bool = False, progress: bool = True,
              report: bool = True, after_cell: Callable[[Cell], None] | None = None,
              model_loader: Callable | None = None, executor: str = "local",
              ray_address: str | None = None) -> StudyOutcome:
    """Run every unfinished cell of the study into out_dir, then write the report (a `StudyRunner`);
    `executor="ray"` runs the cells as Ray tasks with the same results (govtune.study.ray_executor)."""
    return StudyRunner(config, out_dir, progress=progress, model_loader=model_loader, executor=executor,
                       ray_address=ray_address).run(resume, report, after_cell)
