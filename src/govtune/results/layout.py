"""Every path of a study's output directory, in one place. Nothing else in govtune spells a file name of a
study; code asks the layout.

    OUT/
      study.json                      the study's identity (settings hash) and config: what --resume checks
      curation/<stage>.jsonl          kept records of a curation stage (its presence marks the stage done)
      curation/<stage>.dropped.jsonl  dropped records, each with reason and stage
      curation/<stage>.report.json    the stage's counts per step and language
      curation/<task>/<stage>.*       the same for a task file's task
      tasks/<task>.splits.json        a task file's carved train / validation / test row ids
      export/<task>/                  its curated splits as TRL JSONL and an lm-eval task YAML
      runs/<run_id>/result.json       one run's metrics, intervals and footprint
      runs/<run_id>/history.json      its training curves
      runs/<run_id>/predictions/<task>.jsonl
      runs/<run_id>/checkpoint/       the last epoch checkpoint (resume continues from it)
      runs/<run_id>/adapter/          a tuned run's adapter, its model card (README.md) and datasheet
      runs/<run_id>/lm_eval/results.json   lm-evaluation-harness results
      runs/<run_id>/lm_eval/samples_<task>_<date>.jsonl   its per-sample outputs (lm-eval's --log_samples format)
      runs/<run_id>/lm_eval/per_language.json, .md   govtune's per-language analysis of its multiple-choice tasks
      runs/<run_id>/lm_eval/tasks/    the task YAMLs generated for it
      runs/<run_id>/done | failed     markers: finished, or diverged (start over)
      .govtune.lock                   held by the one `govtune run` writing here (its pid and host inside)
      results.sqlite                  every finished run (the store the report reads)
      results.json                    the same, as JSON
      report.md, report.html, figures/<name>.png
      manifest.json                   provenance: input and output sha256, versions (govtune verify)
      bulk.tar.xz, bulk.tar.xz.sha256 what `govtune archive` packed of the files above (`BULK`): the
                                      study's bulk, restored by `govtune restore` (govtune.results.archive)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DONE = "done"
LOCK = ".govtune.lock"
ARCHIVE = "bulk.tar.xz"
# What `govtune archive` packs (paths relative to the study, glob patterns): the files that weigh most and
# that a reader of the study needs least: the training curves, the per-example predictions, the curated
# pools, the exports. What stays out is what a reader opens (study.json, each run's result.json and
# markers, the curation counts, the report) and what --resume rebuilds from the runs (results.sqlite,
# results.json), or never keeps (checkpoints).
BULK = ("runs/*/history.json", "runs/*/predictions/*.jsonl", "curation/*.jsonl", "curation/*/*.jsonl",
        "export/**/*")


@dataclass(frozen=True)
class RunLayout:
    """The files of one run: `OUT/runs/<run_id>/`."""

    dir: Path

    @property
    def result(self) -> Path:
        return self.dir / "result.json"

    @property
    def history(self) -> Path:
        return self.dir / "history.json"

    @property
    def checkpoint(self) -> Path:
        return self.dir / "checkpoint"

    @property
    def adapter(self) -> Path:
        """The trained adapter (govtune.save_adapter) with its model card and datasheet: ready to upload."""
        return self.dir / "adapter"

    @property
    def lm_eval_results(self) -> Path:
        return self.dir / "lm_eval" / "results.json"

    @property
    def lm_eval_tasks(self) -> Path:
        return self.dir / "lm_eval" / "tasks"

    @property
    def done(self) -> Path:
        return self.dir / DONE

    @property
    def failed(self) -> Path:
        return self.dir / "failed"

    def predictions(self, task: str) -> Path:
        return self.dir / "predictions" / f"{task}.jsonl"

    def is_done(self) -> bool:
        return self.done.exists() and self.result.exists()


@dataclass(frozen=True)
class StudyLayout:
    """The files of one study: `OUT/`."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def of(cls, where: StudyLayout | str | Path) -> StudyLayout:
        """The layout of a study directory, given as its layout or its path."""
        return where if isinstance(where, StudyLayout) else cls(where)

    @property
    def study(self) -> Path:
        return self.root / "study.json"

    def read_study(self) -> dict[str, Any]:
        """The content of study.json; {} before the study has written it."""
        return json.loads(self.study.read_text()) if self.study.exists() else {}

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def lock(self) -> Path:
        return self.root / LOCK

    @property
    def database(self) -> Path:
        return self.root / "results.sqlite"

    @property
    def results_json(self) -> Path:
        return self.root / "results.json"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    def figure(self, name: str) -> Path:
        return self.figures / name

    @property
    def curation_dir(self) -> Path:
        return self.root / "curation"

    def task_curation_dir(self, task: str | None = None) -> Path:
        """Where a task's curated pools go: curation/<task>/ (None: curation/ itself, the XNLI pool's place
        since before studies had other tasks)."""
        return self.curation_dir if task is None else self.curation_dir / task

    def curated(self, stage: str, task: str | None = None) -> Path:
        return self.task_curation_dir(task) / f"{stage}.jsonl"

    def dropped(self, stage: str, task: str | None = None) -> Path:
        return self.task_curation_dir(task) / f"{stage}.dropped.jsonl"

    def curation_report(self, stage: str, task: str | None = None) -> Path:
        return self.task_curation_dir(task) / f"{stage}.report.json"

    @property
    def tasks_dir(self) -> Path:
        """Each carved task split, written down (<task>.splits.json) so a resumed study uses the same rows."""
        return self.root / "tasks"

    @property
    def export_dir(self) -> Path:
        """Each task's curated splits as TRL JSONL and an lm-eval task YAML."""
        return self.root / "export"

    def curated_stages(self, task: str | None = None) -> list[str]:
        """The curation stages cached in this study (for a task file's task: `task`), sorted."""
        return sorted(p.name[:-len(".jsonl")] for p in self.task_curation_dir(task).glob("*.jsonl")
                      if not p.name.endswith(".dropped.jsonl"))

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def run(self, run_id: str) -> RunLayout:
        return RunLayout(self.runs_dir / run_id)

    def finished_runs(self) -> list[RunLayout]:
        """Runs with a `done` marker, sorted by run id."""
        return [RunLayout(p.parent) for p in sorted(self.runs_dir.glob(f"*/{DONE}"))]

    @property
    def archive(self) -> Path:
        return self.root / ARCHIVE

    @property
    def archive_checksum(self) -> Path:
        """The archive's sha256, as `sha256sum` writes it (`sha256sum -c` checks it too)."""
        return self.root / f"{ARCHIVE}.sha256"

    def bulk_files(self) -> list[Path]:
        """The study's files that `govtune archive` packs (`BULK`), sorted."""
        found = {p for pattern in BULK for p in self.root.glob(pattern) if p.is_file()}
        return sorted(found)

    def is_empty(self) -> bool:
        """Nothing in it but, at most, the lock file of a run that is starting."""
        return not self.root.exists() or all(p.name == LOCK for p in self.root.iterdir())
