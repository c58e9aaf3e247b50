"""Light quality rules (stage C2): length bounds per script, symbol / digit / repetition ratios, boilerplate.

Each text field of a record is checked on its own (a pair whose hypothesis is junk is junk); the first rule
that fails names the reason. The rules are Gopher/C4-style heuristics counted in characters rather than
words, so that they mean the same for Chinese, Hindi and English.
"""

from __future__ import annotations

from collections.abc import Sequence

import regex

from govtune.governance.config import QualityConfig, script_of
from govtune.governance.records import Record, Step, texts_of

_SYMBOL = regex.compile(r"[\p{P}\p{S}]")
_DIGIT = regex.compile(r"\p{Nd}")
_SPACE = regex.compile(r"\s+")
# a non-digit character followed by 3+ copies of itself (digit runs are numbers: "10000")
_RUN = regex.compile(r"([^\p{Nd}])\1{3,}", regex.DOTALL)
_URL = regex.compile(r"(https?://|www\.)\S+", regex.IGNORECASE)
_LETTER = regex.compile(r"\p{L}")
_DUP_NGRAM = {"cjk": 4, "default": 10}  # a CJK character is about a word: 4 of them make a phrase
_DUP_MIN_CHARS = 20


def quality_reason(text: str, lang: str, config: QualityConfig, boilerplate: regex.Pattern) -> str | None:
    """The first quality rule `text` fails, or None."""
    stripped = text.strip()
    if len(stripped) < config.min_for(lang):
        return "too_short"
    if len(stripped) > config.max_for(lang):
        return "too_long"
    if boilerplate.search(stripped) or len(_LETTER.findall(_URL.sub("", stripped))) < 3:
        return "boilerplate"
    dense = _SPACE.sub("", stripped)
    if len(_SYMBOL.findall(dense)) > config.max_symbol_ratio * len(dense):
        return "symbol_ratio"
    if len(_DIGIT.findall(dense)) > config.max_digit_ratio * len(dense):
        return "digit_ratio"
    if sum(len(m.group(0)) for m in _RUN.finditer(dense)) > config.max_char_run_ratio * len(dense):
        return "repetition"
    n = _DUP_NGRAM.get(script_of(lang), _DUP_NGRAM["default"])
    if len(dense) >= max(_DUP_MIN_CHARS, 2 * n):
        grams = [dense[i:i + n] for i in range(len(dense) - n + 1)]
        if 1.0 - len(set(grams)) / len(grams) > config.max_duplicate_ngram_ratio:
            return "repetition"
    return None


class QualityStep(Step):
    name = "quality"
    stage = "c2"
    per_record = True

    def __init__(self, config: QualityConfig | None = None):
        self.config = config or QualityConfig()
        self.boilerplate = regex.compile("|".join(f"(?:{p})" for p in self.config.boilerplate) or r"(?!)",
                                         regex.IGNORECASE)

    def judge(self, records: Sequence[Record]) -> list[str | None]:
        out = []
        for record in records:
            reason = None
            for text in texts_of(record):
                reason = quality_reason(text, record["lang"], self.config, self.boilerplate)
                if reason:
                    break
            out.append(reason)
        return out

    def details(self) -> dict:
        c = self.config
        return {"min_chars": dict(c.min_chars), "max_chars": dict(c.max_chars),
                "max_symbol_ratio": c.max_symbol_ratio, "max_digit_ratio": c.max_digit_ratio,
                "max_char_run_ratio": c.max_char_run_ratio,
                "max_duplicate_ngram_ratio": c.max_duplicate_ngram_ratio,
                "boilerplate_patterns": len(c.boilerplate)}
