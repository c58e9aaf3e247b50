"""Where a generated line ends: sentence ends by script (ASCII marks need the whitespace after them, the
full-width and script-specific marks end a sentence at once), and lm-evaluation-harness's stop-string cut.
Text handling only (no model), shared by generation (govtune.evaluation.scoring) and its tests."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

# Sentence-final marks per ISO 15924 script. ASCII marks end a sentence only when whitespace follows
# ("3.5", "e.g.x" stay whole); the full-width and script-specific marks below end it at once, since
# those scripts write no space after them.
_ASCII_MARKS = ".!?"
_SCRIPT_MARKS = {
    "Hans": "。！？", "Hant": "。！？", "Jpan": "。！？", "Kore": "。！？",
    "Deva": "।॥", "Beng": "।॥", "Guru": "।॥", "Gujr": "।॥", "Orya": "।॥",
    "Arab": "؟۔", "Ethi": "።፧", "Mymr": "။", "Khmr": "។", "Tibt": "།", "Armn": "։",
    "Grek": ";",  # the Greek question mark, usually typed as U+003B
}
_CLOSERS = "\"'”’»」』）)]"


@lru_cache(maxsize=64)
def _sentence_regex(script: str) -> re.Pattern:
    wide = "".join(ch for ch in _SCRIPT_MARKS.get(script, "") if ch not in _ASCII_MARKS)
    ascii_ = re.escape(_ASCII_MARKS + (";" if script == "Grek" else ""))
    closers = re.escape(_CLOSERS)
    parts = [f"[{ascii_}]+[{closers}]*(?=\\s|$)"]
    if wide:
        parts.insert(0, f"[{re.escape(wide)}{ascii_}]*[{re.escape(wide)}][{ascii_}{re.escape(wide)}]*[{closers}]*")
    return re.compile("|".join(parts))


def _mark_ends(line: str, script: str):
    """Ends (exclusive) of the sentences of one line, each after a final mark that some letter or digit
    precedes since the previous end (so "..." or "!" alone is not a sentence)."""
    start = 0
    for m in _sentence_regex(script).finditer(line):
        if any(ch.isalnum() for ch in line[start:m.start()]):
            yield m.end()
            start = m.end()


def count_sentences(text: str, script: str = "Latn") -> int:
    """Sentence ends in `text` by the script's rule (a final mark at the very end counts): how many
    sentences a source line holds, so that its translation may end after as many."""
    return sum(1 for _ in _mark_ends(text.replace("\n", " "), script))


def sentence_end(text: str, script: str = "Latn", sentences: int = 1) -> int | None:
    """End (exclusive, after the final mark and any closing quote) of the `sentences`-th sentence of `text`,
    or of its first line if that comes first (before the newline); None when neither is in `text` yet.

    At the end of `text` an ASCII mark counts too: a caller that is still generating must wait for the
    next character (see `translation_done`)."""
    if sentences < 1:
        raise ValueError(f"sentences must be >= 1, got {sentences}")
    nl = text.find("\n")
    line = text if nl < 0 else text[:nl]
    for k, end in enumerate(_mark_ends(line, script), 1):
        if k == sentences:
            return end
    return None if nl < 0 else nl


def cut_sentence(text: str, script: str = "Latn", sentences: int = 1) -> str:
    """`text` up to the end of its `sentences`-th sentence or of its first line (final mark kept), stripped."""
    end = sentence_end(text, script, sentences)
    return (text if end is None else text[:end]).strip()


def cut_until(text: str, until: Sequence[str]) -> str:
    """`text` before the earliest of the stop strings `until` (the stop string not kept), stripped; all of
    it, stripped, when none occurs or `until` is empty. lm-evaluation-harness's generate_until cut
    (`postprocess_generated_text`: split at each stop string in turn, keep the head)."""
    for stop in until:
        if stop:
            text = text.split(stop, 1)[0]
    return text.strip()


def stopped(text: str, until: Sequence[str]) -> bool:
    return any(stop and stop in text for stop in until)


def translation_done(text: str, script: str, sentences: int) -> bool:
    """A row's translation is complete once its last sentence end (or the newline) is confirmed by something
    after it: a newline, the space after ". ", any character after "。". So the "." inside "3.5" does not
    stop the row."""
    end = sentence_end(text, script, sentences)
    return end is not None and end < len(text)
