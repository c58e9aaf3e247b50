"""What a study writes, read by its runner and by its report alike: the layout of its output directory
(`StudyLayout`, `RunLayout`: the one place that spells a study's file names), the results store
(results.sqlite and results.json) and the integrity checks of both. Below govtune.study and govtune.report,
so that `govtune report` reads an archived study without importing the runner (torch, the pillars)."""

from govtune.results.layout import RunLayout, StudyLayout
from govtune.results.store import load_runs

__all__ = ["RunLayout", "StudyLayout", "load_runs"]
