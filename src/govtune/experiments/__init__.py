"""Studies: the config (methods x seeds x shots x curation and shared settings), the grid runner with
resumable per-run directories, the layout of a study's output directory, the results store (SQLite +
results.json) and the report."""

from govtune.experiments.config import StudyConfig, build_config, load_config, parse_overrides
from govtune.experiments.layout import RunLayout, StudyLayout
from govtune.experiments.store import load_runs

__all__ = ["RunLayout", "StudyConfig", "StudyLayout", "build_config", "load_config", "load_runs", "parse_overrides",
           "run_study", "write_report"]


def __getattr__(name: str):
    # The runner and report pull in torch and matplotlib; import them only when asked.
    if name == "run_study":
        from govtune.experiments.grid import run_study

        return run_study
    if name == "write_report":
        from govtune.experiments.report import write_report

        return write_report
    raise AttributeError(f"module 'govtune.experiments' has no attribute {name!r}")
