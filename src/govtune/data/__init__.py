"""Real XNLI, FLORES and SIB-200 data shipped with govtune (see NOTICE for the licences)."""

from pathlib import Path

DATA_DIR = Path(__file__).parent
"""Laid out as `xnli/{lang}.{split}.jsonl.xz`, `sib200/{flores_code}.{split}.jsonl.xz` and
`flores/{flores_code}.{split}`, the layout `--data` reads (there JSON-lines files may be plain or compressed)."""

# The XNLI dev rows are aligned across languages (row i is the same pair everywhere). Few-shot pools are
# drawn from the first half and evaluation from the second, so no example (nor its translation) is both.
XNLI_POOL_ROWS = range(0, 1245)
XNLI_EVAL_ROWS = range(1245, 2490)
# FLORES dev lines are aligned the same way: training prompts from the first 500, evaluation after.
FLORES_POOL_LINES = range(0, 500)
FLORES_EVAL_LINES = range(500, 997)
# The name of the FLORES-200 dev split as a corpus that several tasks draw sentences from (SIB-200's rows are
# its lines): a study keeps the lines one task uses out of the others (Task.reserved_lines / exclude_lines).
FLORES_DEV = "flores200-dev"
