"""One grid cell, top to bottom (`CellRun`): load the model, sample and encode the data, inject the adapter,
train, evaluate every task, and write the run's files. The grid runner (`StudyRunner`) decides which cells
run and records them."""

from __future__ import annotations

import inspect
import os
import shutil
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from govtune.adapters import AdapterConfig, inject, merged_for_inference, save_adapter
from govtune.adapters.registry import GRADIENT_INIT
from govtune.atomic import atomic_write_json, atomic_write_jsonl, atomic_write_text
from govtune.constants import BASE, INCONTEXT
from govtune.evaluation.lm_eval_analysis import PER_LANGUAGE_FILE, analyse, markdown, run_metrics
from govtune.evaluation.lm_eval_harness import check_languages, evaluate_lm_eval, summarize, task_manager
from govtune.evaluation.lm_eval_samples import read_run
from govtune.heads import unfreeze_head, with_classifier_head
from govtune.machine_load import load_1min
from govtune.results.layout import RunLayout
from govtune.study.config import StudyConfig
from govtune.study.data import StudyData
from govtune.study.resources import cell_threads
from govtune.text.encoding import PairCollator, encode_training_pairs, pad_token_id
from govtune.training import ResumeMismatch, train


@dataclass(frozen=True)
class Cell:
    method: str
    seed: int
    shots: int
    curation: str

    @property
    def run_id(self) -> str:
        return f"{self.method}-k{self.shots}-{self.curation}-s{self.seed}"


def grid_cells(config: StudyConfig) -> list[Cell]:
    """The study's runs, in the order they run. shots = 0 is the base model: no training data, so one
    cell regardless of method, seed and curation."""
    cells = []
    if 0 in config.shots:
        cells.append(Cell(BASE, config.seeds[0], 0, "none"))
    if config.incontext_shots:
        cells.append(Cell(INCONTEXT, config.seeds[0], 0, config.curation[-1]))
    for stage in config.curation:
        for shots in sorted(k for k in set(config.shots) if k > 0):
            for method in config.methods:
                for seed in config.seeds:
                    cells.append(Cell(method, seed, shots, stage))
    return cells


def _calibration_batches(model, tokenizer, pairs, config: StudyConfig, device) -> list[dict[str, torch.Tensor]]:
    """A few training batches (with labels) for the LoRA-GA gradient estimate, in a fixed order."""
    enc = encode_training_pairs(tokenizer, pairs[: config.batch_size * config.calibration_batches], config.max_length)
    collate = PairCollator(pad_token_id(tokenizer))
    keys = {"input_ids", "attention_mask", "labels"}
    if "position_ids" in inspect.signature(model.forward).parameters:
        keys.add("position_ids")  # left padding: positions must not count the pads
    return [{k: v.to(device) for k, v in collate(enc[i:i + config.batch_size]).items() if k in keys}
            for i in range(0, len(enc), config.batch_size)]


def model_loader(config: StudyConfig):
    """What loads a cell's model: the config's model, quantised as it asks."""
    from govtune.models import load_model  # transformers: loaded when a cell runs, not when a config is read

    return lambda: load_model(config.model, quantize=config.quantize)


@contextmanager
def torch_threads(n: int | None):
    """Run with `n` torch threads (None: leave torch's choice), restoring the count after."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# The footprint of a cell that trains nothing (the base model and the in-context baseline).
UNTRAINED = {"peak_memory_mb": None, "step_time_s": None, "tunable_params_m": 0.0, "memory_kind": None,
             "train_steps": 0}


class CellRun:
    """One cell of a `StudyRunner`, top to bottom: load the model, train (tuned cells), evaluate every task, run
    lm-eval when the study asks. Everything it needs (config, data, accelerator, model loader, whether this
    process writes) is read from the runner, set up once for the study."""

    def __init__(self, runner, cell: Cell, run: RunLayout):
        self.config: StudyConfig = runner.config
        self.data: StudyData = runner.data
        self.accelerator = runner.accelerator
        self.load_model = runner.load_model
        self.progress = runner.progress and runner.main
        self.write = runner.main  # the main process writes the run's files
        self.cell, self.run = cell, run
        # the runner's last LoRA-GA gradient estimate: a hybrid cell after the LoRA-GA cell of the same seed and
        # sample starts from the same gradient without estimating it again (None: each cell estimates its own)
        self.gradient_cache = getattr(runner, "gradient_cache", None)

    def result(self) -> tuple[dict[str, Any], dict[str, list]]:
        """Train and evaluate the cell; returns (result, curves). Writes the run's history, predictions and
        adapter (when `write`: the main process); the runner records the result and marks the cell done. With
        `cell_resources.num_cpus` the cell runs on that many torch threads, whichever executor runs it: float
        reductions follow the thread count."""
        with torch_threads(cell_threads(self.config.cell_resources)):
            return self._result()

    def _result(self) -> tuple[dict[str, Any], dict[str, list]]:
        cell, config, accelerator = self.cell, self.config, self.accelerator
        t0, load_start = time.perf_counter(), load_1min()
        torch.manual_seed(cell.seed)
        model, tokenizer = self.load_model()
        model.to(accelerator.device)
        if cell.shots > 0:
            model, trained = self._train(model, tokenizer)
            if self.write and config.adapter_options(cell.method)["method"] != "full":
                # The adapter alone, ready to load or upload; its model card is written beside it once the
                # run's result exists (full fine-tuning has no adapter: its weights are the whole model).
                save_adapter(model, self.run.adapter)
        else:
            trained = {"curves": {}, "lam_final": None, "data": {}, "footprint": dict(UNTRAINED)}
        model.eval()
        with merged_for_inference(model):  # evaluated at the base model's cost; the adapter is saved above
            metrics, ci95 = self._evaluate(model, tokenizer)
            if config.lm_eval_tasks:
                metrics["lm_eval"], ci95["lm_eval"] = self._lm_eval(model, tokenizer)
        accelerator.free_memory()
        del model
        result = {"run_id": cell.run_id, "method": cell.method, "seed": cell.seed, "shots": cell.shots,
                  "curation": cell.curation, "model": config.model, "settings_hash": config.settings_hash(),
                  "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "metrics": metrics,
                  "ci95": ci95, "footprint": {**trained["footprint"], **_wall(t0, load_start),
                                              "threads": torch.get_num_threads()},
                  "lam_final": trained["lam_final"], "data": trained["data"]}
        return result, trained["curves"]

    def _train(self, model, tokenizer) -> tuple[Any, dict[str, Any]]:
        """Sample the shots, inject the adapter, train (continuing an interrupted attempt); returns the trained
        model and what the result records of training: curves, final lam, data counts, footprint. With
        `head: classifier` the model is the backbone with a sequence-classification head (seeded by the
        cell's seed), trained with the adapter on the same sample as (premise, hypothesis, class) rows."""
        cell, config, data, run, accelerator = self.cell, self.config, self.data, self.run, self.accelerator
        head = config.head == "classifier"
        if head:
            pairs, val_pairs, data_counts = data.head_examples(cell.curation, cell.shots, cell.seed)
            model = with_classifier_head(model, tokenizer, data.head_labels(), seed=cell.seed)
        else:
            pairs, val_pairs, data_counts = data.training_pairs(cell.curation, cell.shots, cell.seed, tokenizer)
        options = config.adapter_options(cell.method)
        calibration = None
        if options["method"] in GRADIENT_INIT:
            calibration = _calibration_batches(model, tokenizer, pairs, config, accelerator.device)
            options.setdefault("ga_batches", len(calibration))
        torch.manual_seed(cell.seed)  # adapter init depends on the seed only, not on what ran before
        inject(model, AdapterConfig(**options), calibration=calibration, gradient_cache=self.gradient_cache)
        if head:
            unfreeze_head(model)  # inject froze every weight outside the adapter
        tc = config.train_config(cell.method, cell.seed, self.progress)
        try:  # continues an interrupted attempt from its last epoch checkpoint, if any
            result = train(model, tokenizer, pairs, val_pairs, tc, out_dir=run.checkpoint, accelerator=accelerator)
        except ResumeMismatch:  # a checkpoint of an older govtune (nothing was loaded): start the cell over
            if self.write:
                shutil.rmtree(run.checkpoint)
            accelerator.wait_for_everyone()
            result = train(model, tokenizer, pairs, val_pairs, replace(tc, resume=False), out_dir=run.checkpoint,
                           accelerator=accelerator)
        if self.write:
            atomic_write_json(run.history, result.history.to_dict())
        fp = result.footprint.to_dict()
        footprint = {"peak_memory_mb": fp["peak_memory_mb"], "step_time_s": fp["step_time_s"],
                     "tunable_params_m": fp["tunable_params_m"], "memory_kind": fp["memory_kind"],
                     "train_steps": result.steps}
        return accelerator.unwrap_model(model), {"curves": result.history.curves(),
                                                 "lam_final": result.history.lam_final(), "data": data_counts,
                                                 "footprint": footprint}

    def _evaluate(self, model, tokenizer) -> tuple[dict[str, dict], dict[str, dict]]:
        """Every task of the study on the cell's test sets (a classification task with temperature scaling on
        the run's validation examples); returns (metrics per task, 95% intervals per task) and writes the
        predictions."""
        cell, data = self.cell, self.data
        metrics: dict[str, dict] = {}
        ci95: dict[str, dict] = {}  # task -> {metric: [low, high]}: percentile bootstrap over the test examples
        with torch.no_grad():
            for task in data.tasks.values():
                tests, val = data.evaluation_sets(task, cell.method == INCONTEXT, cell.curation, cell.shots,
                                                  cell.seed)
                calibration = (_calibration_examples(val, cell, task.settings.val_per_language)
                               if task.calibrates and val is not None else None)
                m, pred = task.evaluate(model, tokenizer, tests, seed=cell.seed, progress=self.progress,
                                        calibration=calibration)
                metrics[task.name], ci95[task.name] = m, task.intervals(pred)
                if self.write:
                    atomic_write_jsonl(self.run.predictions(task.name), pred)
        return metrics, ci95

    def _lm_eval(self, model, tokenizer) -> tuple[dict[str, Any], dict]:
        """lm-evaluation-harness on the adapted model in memory; lm-eval's results go to lm_eval/results.json,
        its samples beside them, the per-task metrics (values as lm-eval reports them) into the cell's result
        and, unless lm_eval_per_language is off, govtune's per-language analysis of the multiple-choice tasks
        (lm_eval/per_language.json and .md; `per_language` in the metrics, its intervals as the section's
        ci95)."""
        config, run = self.config, self.run
        tasks = config.lm_eval_run_tasks()
        manager = task_manager(tasks, run.lm_eval_tasks, config.lm_eval_include_path)
        if config.lm_eval_per_language:  # a task without a language fails before lm-eval scores anything
            check_languages(tasks, manager, config.lm_eval_lang_map, config.lm_eval_calibrate_on)
        with tempfile.TemporaryDirectory() as tmp:
            where = run.lm_eval_results.parent if self.write else Path(tmp)  # other processes: read, dropped
            results = evaluate_lm_eval(model, tokenizer, tasks, manager, limit=config.lm_eval_limit,
                                       batch_size=config.eval_batch_size, samples_dir=where)
            results["config"]["calibrate_on"] = config.lm_eval_calibrate_on
            atomic_write_json(where / run.lm_eval_results.name, results)
            out = {"task": "lm_eval", "tasks": summarize(results), "limit": config.lm_eval_limit}
            ci95: dict[str, list[float]] = {}
            if config.lm_eval_per_language:
                analysis = analyse(read_run(where), config.lm_eval_lang_map, config.lm_eval_calibrate_on)
                if self.write:  # the run's own view: the numbers and a compact table per suite
                    atomic_write_json(where / PER_LANGUAGE_FILE, analysis)
                    atomic_write_text(where / "per_language.md", markdown(analysis))
                out["per_language"], ci95 = run_metrics(analysis)
        return out, ci95


def _wall(t0: float, load_start: float | None) -> dict[str, Any]:
    """What a run's wall time was and how busy the machine was while it ran: a step time read without the
    load beside it can be several times the machine's own."""
    return {"wall_time_s": round(time.perf_counter() - t0, 1), "cpu_count": os.cpu_count(),
            "load_1min_start": load_start, "load_1min_end": load_1min()}


def _calibration_examples(val: dict[str, list[dict]], cell: Cell, val_per_language: int
                          ) -> dict[str, list[dict]] | None:
    """The run's validation examples for temperature scaling (`val_per_language`: the task's); None (no
    scaling) when a language has none."""
    if val_per_language == 0:
        return None
    empty = [lang for lang, exs in val.items() if not exs]
    if empty:
        warnings.warn(f"{cell.run_id}: no validation examples for {', '.join(empty)} (the curated pool holds only "
                      f"the shots), so no temperature scaling; lower shots or relax the curation")
        return None
    return val
