"""Decontamination: drop a training record that contains text of any evaluation row of the study.

Containment, not similarity: a record is contaminated when it shares a 13-word n-gram (scripts written with
spaces; 13 as lm-evaluation-harness and GPT-3 use) or a 50-character n-gram (scripts written without spaces:
Han, kana, Thai, Lao, Khmer, Myanmar, Tibetan, ...) with an evaluation text. Both sides are normalised the
same way: NFKC, case folding, punctuation and symbols as spaces, whitespace collapsed (`dedup.normalise`),
so a copy that differs in case or punctuation still matches. An evaluation text shorter than n is matched
whole: its m < n words must appear as m consecutive words of the record (its characters as a substring in
the character mode), so that a short XNLI hypothesis embedded in a longer record is caught. Below
`min_words` (`min_chars`) a text is not checked: one to three words ("yes", "he left") recur by chance.

Which n applies is decided per evaluation text by its script (most of its letters in a script without
spaces: characters). A record is checked in both ways when it has any character of such a script (a Chinese
sentence quoted in an English page, or the reverse), in the word way otherwise. In the word way a run of
characters of a script without spaces is one word, so English next to Chinese still splits into words.

The evaluation n-grams form the index: 64-bit hashes in one sorted numpy array, with a bitmask of the
evaluation sets that hold each (16 bytes per distinct n-gram) and a bitmap over their low bits that
screens lookups (16 to 32 one-byte entries per n-gram), about 40 bytes an n-gram in all; training records
stream through in batches and nothing grows with them. A record's n-grams are hashed in numpy: the
polynomial hash of every substring comes from one prefix sum over the batch's code points. A short
evaluation text is found through its first `min_words` words (`min_chars` characters), its anchor, so a
record is hashed at n and at the floor, and at a short text's own length only where an anchor occurs.
Two different n-grams share a hash with probability about 2^-64 per pair.

Written here rather than taken from datatrove's `NGramsDecontFilter`: that filter tokenises words with one
language's tokenizer per filter (Chinese and Thai need word segmenters), gives an evaluation text shorter
than n no n-gram at all (most XNLI hypotheses would never be checked), reads lighteval's tasks rather than
lm-eval's, and hashes n-grams one Python call at a time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Union

import numpy as np
import regex

from govtune.governance.config import DecontamConfig
from govtune.governance.dedup import normalise
from govtune.governance.records import Record, Step, is_pair, texts_of

# Scripts written without spaces between words: their text is compared in characters.
_NO_SPACE_SCRIPTS = ("Han", "Hiragana", "Katakana", "Thai", "Lao", "Khmer", "Myanmar", "Tibetan", "Tai_Le",
                     "New_Tai_Lue", "Tai_Tham", "Tai_Viet", "Yi", "Javanese", "Balinese")
_NO_SPACE = "".join(rf"\p{{{s}}}" for s in _NO_SPACE_SCRIPTS)
_NO_SPACE_CHAR = regex.compile(f"[{_NO_SPACE}]")
_NO_SPACE_RUN = regex.compile(f"[{_NO_SPACE}]+")
_LETTER = regex.compile(r"[\p{L}\p{M}]")
_SPACES = regex.compile(r"\s+")

WORDS, CHARS = 0, 1  # the two ways of cutting text into n-gram tokens
_TAG = (np.uint64(0x5BD1E9955BD1E995), np.uint64(0x27D4EB2F165667C5))  # keeps the two hash domains apart
_P = 0x9E3779B97F4A7C15  # odd multiplier of the polynomial hash (mod 2^64); odd, so it has an inverse
_P_INV = pow(_P, -1, 1 << 64)
_LEN = np.uint64(0xC2B2AE3D27D4EB4F)
_SEP = "\x00"  # between texts of a batch: no window crosses it

EvalItem = Union[str, Record, Sequence[str]]
EvalSets = Mapping[str, Iterable[EvalItem]]


def _spaced(normalised: str) -> str:
    """Runs of a script without spaces set apart as words (the text already normalised)."""
    return _SPACES.sub(" ", _NO_SPACE_RUN.sub(r" \g<0> ", normalised)).strip()


def word_form(text: str) -> str:
    """Normalised text for word n-grams: runs of a script without spaces stand apart as words."""
    text = normalise(text)
    return _spaced(text) if _NO_SPACE_CHAR.search(text) else text


def char_form(text: str) -> str:
    """Normalised text for character n-grams: spaces removed."""
    return normalise(text).replace(" ", "")


def record_forms(text: str) -> tuple[str, str | None]:
    """(word form, character form or None when the text has no character of a script without spaces):
    one normalisation for both."""
    text = normalise(text)
    if not _NO_SPACE_CHAR.search(text):
        return text, None
    return _spaced(text), text.replace(" ", "")


def written_without_spaces(text: str) -> bool:
    """Whether most letters of the text are in a script written without spaces."""
    letters = len(_LETTER.findall(text))
    return letters > 0 and 2 * len(_NO_SPACE_CHAR.findall(text)) >= letters


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads the polynomial hash over all 64 bits."""
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


class _Tokens:
    """The tokens (words, or characters) of a batch of normalised texts, and the hash of any run of them."""

    def __init__(self, texts: Sequence[str], way: int):
        joined = _SEP.join(texts) + _SEP
        cps = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        n = len(cps)
        with np.errstate(over="ignore"):
            powers = np.full(n, _P, dtype=np.uint64)
            powers[0] = 1
            powers = np.cumprod(powers)
            inverse = np.full(n, _P_INV, dtype=np.uint64)
            inverse[0] = 1
            self.inverse = np.cumprod(inverse)
            self.prefix = np.zeros(n + 1, dtype=np.uint64)
            np.cumsum(cps * powers, out=self.prefix[1:])
        inside = (cps != 0) & (cps != 32)  # texts are normalised: single spaces, no edge spaces
        text_of = np.cumsum(cps == 0)  # position -> index of its text
        if way == CHARS:
            self.start = np.flatnonzero(inside)
            self.end = self.start + 1
        else:
            before = np.concatenate([[False], inside[:-1]])
            after = np.concatenate([inside[1:], [False]])
            self.start = np.flatnonzero(inside & ~before)
            self.end = np.flatnonzero(inside & ~after) + 1
        self.text = text_of[self.start]
        self.tag = _TAG[way]

    def counts(self, n_texts: int) -> np.ndarray:
        return np.bincount(self.text, minlength=n_texts)

    def windows(self, m: int, k: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Hashes of the runs of m consecutive tokens within one text (starting at token positions `k`, by
        default every position), the text each belongs to and its first token."""
        last = len(self.start) - m + 1
        k = np.arange(max(last, 0)) if k is None else k[k < last]
        k = k[self.text[k] == self.text[k + m - 1]]
        a, b = self.start[k], self.end[k + m - 1]
        with np.errstate(over="ignore"):
            h = (self.prefix[b] - self.prefix[a]) * self.inverse[a]
            h = _mix(h + (b - a).astype(np.uint64) * _LEN + self.tag)
        return h, self.text[k], k


def eval_texts(item: Any, where: str) -> list[str]:
    """The texts of one evaluation row: a string, a record (`text`, or `premise` and `hypothesis`) or a
    sequence of strings (the texts of one row)."""
    if isinstance(item, str):
        return [item]
    if isinstance(item, Mapping):
        if item.get("text") is None and not is_pair(item):
            raise ValueError(f"{where}: an evaluation row must have `text` (or `premise` and `hypothesis`), or "
                             f"be a string or a list of strings; it has fields {sorted(item)[:8]}")
        return [t for t in texts_of(item) if isinstance(t, str)]
    if isinstance(item, Sequence) and all(isinstance(t, str) for t in item):
        return list(item)
    raise ValueError(f"{where}: an evaluation row must be a string, a record or a list of strings, "
                     f"got {type(item).__name__}")


class ContaminationIndex:
    """The n-grams of every evaluation set, hashed: built once, then asked which sets a record touches."""

    def __init__(self, eval_sets: EvalSets, config: DecontamConfig | None = None):
        self.config = config or DecontamConfig()
        if not isinstance(eval_sets, Mapping):
            raise ValueError("eval_sets must map an evaluation set's name to its rows, e.g. {'xnli:test': rows}")
        self.names = [str(name) for name in eval_sets]
        if any(not name for name in self.names):
            raise ValueError("an evaluation set needs a non-empty name")
        self.sets: dict[str, dict[str, int]] = {}
        self.sizes = ((self.config.word_ngram, self.config.min_words), (self.config.char_ngram, self.config.min_chars))
        texts: list[list[str]] = [[], []]  # per way: normalised texts
        owner: list[list[int]] = [[], []]  # per way: the set of each text
        for s, (name, rows) in enumerate(eval_sets.items()):
            info = self.sets[name] = {"rows": 0, "texts": 0, "too_short": 0}
            for i, item in enumerate(rows):
                info["rows"] += 1
                for text in eval_texts(item, f"evaluation set {name!r}, row {i}"):
                    info["texts"] += 1
                    way = CHARS if written_without_spaces(text) else WORDS
                    texts[way].append(char_form(text) if way == CHARS else word_form(text))
                    owner[way].append(s)
        self.words = max(1, (len(self.names) + 63) // 64)  # uint64 words of each key's bitmask of sets
        keys, masks, anchors, spans = [], [], [], []
        self.long = [False, False]  # per way: whether the index holds n-grams of full size n
        self.short: list[list[int]] = [[], []]  # per way: the sizes of the texts shorter than n it holds
        for way, (n, floor) in enumerate(self.sizes):
            if not texts[way]:
                continue
            tokens = _Tokens(texts[way], way)
            size = np.minimum(tokens.counts(len(texts[way])), n)
            sets = np.asarray(owner[way])
            for name in np.asarray(self.names)[sets[size < floor]]:
                self.sets[str(name)]["too_short"] += 1
            for m in sorted({int(x) for x in size[size >= floor]}):
                h, text, k = tokens.windows(m)
                chosen = size[text] == m  # a text shorter than n: its one whole window; longer: its n-grams
                keys.append(h[chosen])
                masks.append(self._bits(sets[text[chosen]]))
                if m == n:
                    self.long[way] = True
                    continue
                # A short text is found through its first `floor` tokens (its anchor): a record is hashed at
                # two sizes (n and the floor), and at a short text's own size only where its anchor occurs.
                self.short[way].append(m)
                anchors.append(tokens.windows(floor, k[chosen])[0])
                spans.append(np.full(int(chosen.sum()), np.uint64(1) << np.uint64(m), dtype=np.uint64))
        self.keys, self.masks = _merge(keys, masks, self.words)
        self.anchors, self.anchor_sizes = _merge(anchors, [s[:, None] for s in spans], 1)
        self.anchor_sizes = self.anchor_sizes[:, 0]  # bit m set: a short text of m tokens starts with it
        # A bitmap over the low bits of the n-grams and anchors: almost every window of a clean record misses
        # it, so only the few that hit are searched in the sorted arrays (a gather instead of a binary search).
        screened = np.concatenate([self.keys, self.anchors])
        self.bits = max(16, min(26, int(np.ceil(np.log2(max(len(screened), 1)))) + 4))
        self.bitmap = np.zeros(1 << self.bits, dtype=bool)
        self.bitmap[(screened & np.uint64((1 << self.bits) - 1)).astype(np.int64)] = True

    def _bits(self, sets: np.ndarray) -> np.ndarray:
        bits = np.zeros((len(sets), self.words), dtype=np.uint64)
        bits[np.arange(len(sets)), sets // 64] = np.left_shift(np.uint64(1), (sets % 64).astype(np.uint64))
        return bits

    def __len__(self) -> int:
        return len(self.keys)

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.keys, self.masks, self.anchors, self.anchor_sizes, self.bitmap))

    def match(self, records: Sequence[Record]) -> list[tuple[str, ...]]:
        """For each record, the names of the evaluation sets it shares an n-gram with (empty: clean)."""
        forms = [[record_forms(t) for t in texts_of(r)] for r in records]
        hit = np.zeros((len(records), self.words), dtype=np.uint64)
        if not len(self.keys):
            return [()] * len(records)
        for way, (n, floor) in enumerate(self.sizes):
            if not (self.long[way] or self.short[way]):
                continue
            texts, item_of = [], []
            for i, fields in enumerate(forms):
                for form in fields:
                    if form[way] is not None:
                        texts.append(form[way])
                        item_of.append(i)
            if not texts:
                continue
            tokens, item_of = _Tokens(texts, way), np.asarray(item_of)
            if self.long[way]:
                h, text, _ = tokens.windows(n)
                self._look_up(h, text, item_of, hit)
            if self.short[way]:
                h, text, k = tokens.windows(floor)
                at, found = self._find(self.anchors, h)
                sizes, k = self.anchor_sizes[at[found]], k[found]
                for m in self.short[way]:
                    with_m = ((sizes >> np.uint64(m)) & np.uint64(1)).astype(bool)
                    h, text, _ = tokens.windows(m, k[with_m])
                    self._look_up(h, text, item_of, hit)
        return [self._names(row) for row in hit]

    def _find(self, table: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions of hashes `h` in the sorted `table`, and which are there (screened by the bitmap)."""
        at = np.zeros(len(h), dtype=np.int64)
        found = self.bitmap[(h & np.uint64((1 << self.bits) - 1)).astype(np.int64)]
        if len(table):
            at[found] = np.minimum(np.searchsorted(table, h[found]), len(table) - 1)
            found &= table[at] == h
        else:
            found[:] = False
        return at, found

    def _look_up(self, h: np.ndarray, text: np.ndarray, item_of: np.ndarray, hit: np.ndarray) -> None:
        at, found = self._find(self.keys, h)
        np.bitwise_or.at(hit, item_of[text[found]], self.masks[at[found]])

    def _names(self, bits: np.ndarray) -> tuple[str, ...]:
        if not bits.any():
            return ()
        return tuple(name for s, name in enumerate(self.names) if int(bits[s // 64]) >> (s % 64) & 1)


def _merge(keys: list[np.ndarray], masks: list[np.ndarray], words: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct keys, each with the OR of the set bitmasks of its copies."""
    if not keys:
        return np.empty(0, np.uint64), np.empty((0, words), np.uint64)
    k, m = np.concatenate(keys), np.concatenate(masks)
    order = np.argsort(k, kind="stable")
    k, m = k[order], m[order]
    first = np.flatnonzero(np.concatenate([[True], k[1:] != k[:-1]]))
    return k[first], np.bitwise_or.reduceat(m, first, axis=0)


def contamination_index(eval_sets: EvalSets | ContaminationIndex | None, protected: Sequence[Record] | None,
                        config: DecontamConfig | None = None) -> ContaminationIndex | None:
    """The index of `eval_sets` (named sets), or of the protected records as one set named "protected" when
    no sets are named; None when there is nothing to check against."""
    if isinstance(eval_sets, ContaminationIndex):
        return eval_sets
    if eval_sets is None:
        if not protected:
            return None
        eval_sets = {"protected": protected}
    return ContaminationIndex(eval_sets, config)


class DecontaminationStep(Step):
    """Drops a record that shares an n-gram with an evaluation set (reason `contamination`), counted per
    evaluation set and language. A record is judged alone against a fixed index: per record."""

    name = "decontam"
    stage = "c1"
    per_record = True

    def __init__(self, index: ContaminationIndex, examples: int = 5):
        self.index = index
        self.by_set: Counter = Counter()  # (set, language) -> records dropped that touch that set
        self.examples: list[dict] = []
        self.max_examples = examples
        self.last: list[tuple[str, ...]] = []  # the sets each record of the last batch touched

    def judge(self, records: Sequence[Record]) -> list[str | None]:
        self.last = self.index.match(records)
        for i, sets in enumerate(self.last):
            for name in sets:
                self.by_set[name, records[i].get("lang", "?")] += 1
            if sets and len(self.examples) < self.max_examples:
                self.examples.append({"id": records[i].get("id"), "lang": records[i].get("lang"),
                                      "eval_sets": list(sets)})
        return ["contamination" if sets else None for sets in self.last]

    def details(self) -> dict:
        c = self.index.config
        by_set: dict[str, dict[str, int]] = {name: {} for name in self.index.names}
        for (name, lang), n in sorted(self.by_set.items()):
            by_set[name][lang] = n
        return {"word_ngram": c.word_ngram, "char_ngram": c.char_ngram, "min_words": c.min_words,
                "min_chars": c.min_chars, "normalisation": "NFKC, case folding, punctuation and symbols as "
                                                            "spaces, whitespace collapsed",
                "eval_sets": self.index.sets, "index_ngrams": len(self.index),
                "index_mb": round(self.index.nbytes() / 2**20, 1),
                "contaminated_by_set": by_set, "contamination_examples": self.examples}


def details_markdown(step: dict) -> list[str]:
    """The report's lines for a decontamination step (`DecontaminationStep.details`)."""
    lines = ["", "## Decontamination", "",
             f"Dropped: a record sharing a {step['word_ngram']}-word n-gram (scripts with spaces) or a "
             f"{step['char_ngram']}-character n-gram (scripts without) with an evaluation text, or containing "
             f"a shorter evaluation text whole (from {step['min_words']} words / {step['min_chars']} characters); "
             f"normalisation: {step['normalisation']}. A record touching several sets counts under each.", "",
             "| evaluation set | rows | texts too short to check | records dropped, by language |", "|---|---|---|---|"]
    for name, info in step["eval_sets"].items():
        by_lang = step["contaminated_by_set"].get(name, {})
        shown = ", ".join(f"{lang} {n}" for lang, n in by_lang.items()) or "0"
        lines.append(f"| {name} | {info['rows']} | {info['too_short']} | {shown} |")
    return lines
