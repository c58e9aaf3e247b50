"""A study's report, from its results store alone: the papers' tables, one section per other task, paired
differences and their significance, the governance ledger and the figures (report.md, report.html,
figures/*.png). `write_report(out_dir)` is the entry point; the runner calls it when a study ends."""

from govtune.report.document import write_report

__all__ = ["write_report"]
