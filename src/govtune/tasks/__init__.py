"""Tasks: the one interface a study talks to (`govtune.tasks.task.Task`), task files (`spec`, `rows`,
`splits`, `registry`), the built-in XNLI and FLORES-200 tasks and their prompts, shared by evaluation and
training; the token encoding and padding is `govtune.text.encoding` (not imported here: it needs torch, the
rest does not)."""

from govtune.data.flores import load_flores
from govtune.data.xnli import LABELS, load_xnli
from govtune.text.prompts import (XNLI_LABEL_WORDS, flores_prompt, flores_training_pair, xnli_prompt,
                                   xnli_training_pair)

__all__ = ["LABELS", "XNLI_LABEL_WORDS", "flores_prompt", "flores_training_pair", "load_flores",
           "load_xnli", "xnli_prompt", "xnli_training_pair"]
