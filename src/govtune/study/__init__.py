"""Studies: the config (methods x seeds x shots x curation and shared settings) and the grid runner with
resumable per-run directories (`run_study`, a `StudyRunner` per study). What a study writes (the layout of its
output directory, the results store) is govtune.results; its report is govtune.report. Both are re-exported
here, where a study's user looks for them."""

from govtune.results.layout import RunLayout, StudyLayout
from govtune.results.store import load_runs
from govtune.study.config import StudyConfig
from govtune.study.loading import build_config, load_config, parse_overrides

__all__ = ["RunLayout", "StudyConfig", "StudyLayout", "StudyRunner", "build_config", "load_config", "load_runs",
           "parse_overrides", "run_study", "write_report"]


def __getattr__(name: str):
    # The runner and the report pull in torch and matplotlib: imported when asked for, so that loading and
    # checking a config does not pay for them.
    if name in ("run_study", "StudyRunner"):
        from govtune.study import grid

        return getattr(grid, name)
    if name == "write_report":
        from govtune.report import write_report

        return write_report
    raise AttributeError(f"module 'govtune.study' has no attribute {name!r}")
