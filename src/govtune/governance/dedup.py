"""Exact and near-duplicate removal with MinHash LSH over character n-grams.

Character n-grams (not words) make the same code work for Chinese and Hindi as for English. Text is
normalised first (NFKC, case folding, punctuation and symbols removed, whitespace collapsed), so copies that
differ in case or punctuation collide. An NLI pair is one example: it is a duplicate when premise and hypothesis both are (each
side gets its own signature block and the smaller similarity counts), never for a shared premise alone.

Signatures follow datasketch's `affine32` scheme exactly (the test checks it against `MinHash.update_batch`),
but are computed for thousands of records in a few numpy calls: datasketch hashes each shingle with a
Python-level function call, which dominates its run time at 100k records. The LSH index itself is
datasketch's `MinHashLSH` over `LeanMinHash` objects.

The first occurrence is kept; later copies are dropped as `exact_duplicate` (identical text), or
`near_duplicate` (estimated Jaccard >= threshold), or `leakage` when the earlier copy is a protected
(evaluation) record, which is never dropped itself.
"""

from __future__ import annotations

import functools
import hashlib
import unicodedata
from collections.abc import Iterator, Sequence

import numpy as np
import regex
from datasketch import LeanMinHash, MinHash, MinHashLSH

from govtune.governance.config import DedupConfig
from govtune.governance.records import Record, Step, text_fields, texts_of

_PUNCT_OR_SYMBOL = regex.compile(r"[\p{P}\p{S}]+")
_SPACES = regex.compile(r"\s+")
_POLY = np.uint64(0x100000001B3)  # FNV-64 prime: an odd multiplier for the rolling polynomial hash
_PAD = "\x01"  # fills texts shorter than n so that they still yield one shingle
_CHUNK_CHARS = 1 << 16  # (chars x num_perm) uint32 per chunk: 32 MB at 128 permutations
_FMIX32 = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35), np.uint32(16))


def normalise(text: str) -> str:
    """NFKC, case-folded, punctuation and symbols replaced by spaces, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _SPACES.sub(" ", _PUNCT_OR_SYMBOL.sub(" ", text)).strip()


def exact_key(text: str) -> bytes:
    """Identity of a text up to Unicode composition and surrounding whitespace."""
    return hashlib.blake2b(unicodedata.normalize("NFC", text).strip().encode("utf-8"), digest_size=16).digest()


def shingle_hashes(texts: Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """32-bit hashes of every character n-gram of every text, and the index of the text each belongs to.

    All texts are hashed at once: their code points are concatenated, a rolling polynomial hash over n
    positions is n vectorised multiply-adds, and windows that cross a text boundary are masked out.
    Texts must be non-empty; ones shorter than n are padded and yield a single shingle."""
    padded = [t if len(t) >= n else t + _PAD * (n - len(t)) for t in texts]
    lengths = np.fromiter(map(len, padded), dtype=np.int64, count=len(padded))
    ends = np.cumsum(lengths)
    cps = np.frombuffer("".join(padded).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    windows = len(cps) - n + 1
    h = np.zeros(windows, dtype=np.uint64)
    for j in range(n):  # h = sum_j cp[p + j] * POLY^(n-1-j)  (mod 2^64)
        h = h * _POLY + cps[j:j + windows]
    owner = np.repeat(np.arange(len(padded)), lengths)[:windows]
    valid = np.arange(windows) + n <= ends[owner]
    h, owner = h[valid], owner[valid]
    return ((h ^ (h >> np.uint64(32))) & np.uint64(0xFFFFFFFF)).astype(np.uint32), owner


def _fmix32(hv: np.ndarray) -> np.ndarray:
    s1, m1, s2, m2, s3 = _FMIX32
    hv = hv ^ (hv >> s1)
    hv = hv * m1
    hv = hv ^ (hv >> s2)
    hv = hv * m2
    return hv ^ (hv >> s3)


class MinHasher:
    """Batched MinHash signatures in datasketch's affine32 scheme (uint32, `(a * fmix32(h) + b) mod 2^32`)."""

    def __init__(self, num_perm: int = 128, seed: int = 1):
        self.num_perm, self.seed = num_perm, seed
        a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
        self.a, self.b = a.astype(np.uint32)[:, None], b.astype(np.uint32)[:, None]

    def signatures(self, texts: Sequence[str], n: int) -> np.ndarray:
        """(len(texts), num_perm) uint32 signatures of already normalised, non-empty texts."""
        out = np.empty((len(texts), self.num_perm), dtype=np.uint32)
        for lo, hi in _chunks(texts):
            hv, owner = shingle_hashes(texts[lo:hi], n)
            with np.errstate(over="ignore"):
                phv = self.a * _fmix32(hv)[None, :] + self.b  # (num_perm, shingles), wraps mod 2^32
            # Each record's shingles are one contiguous run of columns: a segmented min along the rows
            # (contiguous in memory, several times faster than reducing the transposed layout).
            starts = np.searchsorted(owner, np.arange(hi - lo))
            out[lo:hi] = np.minimum.reduceat(phv, starts, axis=1).T
        return out

    def lean(self, signature: np.ndarray) -> LeanMinHash:
        return LeanMinHash(seed=self.seed, hashvalues=signature, scheme="affine32")


@functools.lru_cache(maxsize=16)
def _lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """datasketch's optimal (bands, rows) for a threshold: computed once, not per index (it integrates
    numerically, about 0.2 s each)."""
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return lsh.b, lsh.r


def _chunks(texts: Sequence[str]) -> Iterator[tuple[int, int]]:
    lo, size = 0, 0
    for i, t in enumerate(texts):
        size += len(t) + 8
        if size >= _CHUNK_CHARS:
            yield lo, i + 1
            lo, size = i + 1, 0
    if lo < len(texts):
        yield lo, len(texts)


class DuplicateIndex:
    """An LSH index per language over records seen so far (protected records first)."""

    def __init__(self, config: DedupConfig | None = None):
        self.config = config or DedupConfig()
        self.hasher = MinHasher(self.config.num_perm, self.config.seed)
        self.lsh: dict[str, MinHashLSH] = {}
        self.exact: dict[tuple[str, bytes], object] = {}
        self.sigs: dict[object, np.ndarray] = {}
        self.leakage_pairs: list[tuple[object, object]] = []

    def _group(self, record: Record) -> tuple[str, int]:
        return ("*" if self.config.across_languages else record["lang"], len(text_fields(record)))

    def signatures(self, records: Sequence[Record]) -> tuple[list[bytes], list[np.ndarray | None]]:
        """Exact keys of the whole examples and MinHash signatures, one block of num_perm per text field.

        A pair's signature is premise block + hypothesis block: two pairs are near-duplicates only when
        both sides are, so pairs sharing a premise with different hypotheses (as XNLI has) stay."""
        exact = [exact_key("\x00".join(texts_of(r))) for r in records]
        fields = [[normalise(t) for t in texts_of(r)] for r in records]
        sigs: list[np.ndarray | None] = [None] * len(records)
        jobs: dict[tuple[int, int], list[int]] = {}  # (n-gram size, field position) -> record indices
        for i, r in enumerate(records):
            if all(fields[i]):  # a side with nothing left after normalisation: no near-duplicate test
                n = self.config.ngram_for(r["lang"])
                for pos in range(len(fields[i])):
                    jobs.setdefault((n, pos), []).append(i)
        blocks: dict[int, list[np.ndarray]] = {}
        for (n, pos), idx in sorted(jobs.items()):
            block = self.hasher.signatures([fields[i][pos] for i in idx], n)
            for row, i in enumerate(idx):
                blocks.setdefault(i, []).append(block[row])
        for i, parts in blocks.items():
            sigs[i] = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return exact, sigs

    def add(self, records: Sequence[Record], keys: Sequence[object], protected: bool = False,
            index_kept: bool = True) -> list[str | None]:
        """Check records in order against everything indexed so far; index the ones kept (unless
        index_kept is False: then they are only checked)."""
        exact, sigs = self.signatures(records)
        return self.check([self._group(r) for r in records], exact, sigs, keys, protected, index_kept)

    def check(self, groups: Sequence[tuple[str, int]], exact: Sequence[bytes], sigs: Sequence[np.ndarray | None],
              keys: Sequence[object], protected: bool = False, index_kept: bool = True) -> list[str | None]:
        """`add` from precomputed signatures (computed elsewhere, e.g. by parallel datatrove tasks)."""
        verdicts: list[str | None] = []
        for group, key, ex, sig in zip(groups, keys, exact, sigs):
            group = tuple(group)
            match, reason = self.exact.get((group, ex)), "exact_duplicate"
            if match is None and sig is not None and group in self.lsh:
                match, reason = self._near(group, sig), "near_duplicate"
            if match is not None and not protected:
                if isinstance(match, tuple) and match[0] == "protected":
                    reason = "leakage"
                    self.leakage_pairs.append((key, match[1]))
                verdicts.append(reason)
                continue
            verdicts.append(None)
            if not index_kept:
                continue
            self.exact.setdefault((group, ex), key)
            if sig is not None and match is None:
                lsh = self.lsh.get(group)
                if lsh is None:
                    lsh = self.lsh[group] = MinHashLSH(num_perm=len(sig),
                                                       params=_lsh_params(self.config.threshold, len(sig)))
                lsh.insert(key, self.hasher.lean(sig), check_duplication=False)
                self.sigs[key] = sig
        return verdicts

    def _near(self, group: tuple[str, int], sig: np.ndarray) -> object | None:
        # LSH returns candidates sharing a band; confirm with the estimated Jaccard of every text field
        # (the smallest one counts: a pair is a duplicate only if both sides are).
        best, best_sim = None, self.config.threshold
        fields = len(sig) // self.config.num_perm
        for key in self.lsh[group].query(self.hasher.lean(sig)):
            equal = (self.sigs[key] == sig).reshape(fields, self.config.num_perm)
            sim = float(equal.mean(axis=1).min())
            if sim >= best_sim:
                best, best_sim = key, sim
        return best


class DeduplicationStep(Step):
    name = "dedup"
    stage = "c1"
    per_record = False

    def __init__(self, config: DedupConfig | None = None, protected: Sequence[Record] | None = None,
                 within_pool: bool = True):
        """within_pool=False: leakage check only (pool records are compared with the protected ones, never
        with each other), for the leave-dedup-out ablation."""
        self.config = config or DedupConfig()
        self.protected = list(protected or [])
        self.within_pool = within_pool
        self.leakage_pairs: list[tuple[object, object]] = []

    def judge(self, records: Sequence[Record]) -> list[str | None]:
        index = DuplicateIndex(self.config)
        if self.protected:
            index.add(self.protected, [("protected", p.get("id", j)) for j, p in enumerate(self.protected)],
                      protected=True)
        verdicts = index.add(records, list(range(len(records))), index_kept=self.within_pool)
        self.leakage_pairs = [(records[i].get("id", i), pid) for i, pid in index.leakage_pairs]
        return verdicts

    def details(self) -> dict:
        return {"threshold": self.config.threshold, "num_perm": self.config.num_perm,
                "ngram": dict(self.config.ngram), "protected_records": len(self.protected),
                "within_pool": self.within_pool,
                "leakage": len(self.leakage_pairs),
                "leakage_examples": [{"id": a, "protected_id": b} for a, b in self.leakage_pairs[:5]]}
