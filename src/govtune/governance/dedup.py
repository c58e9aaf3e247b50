"""Exact and near-duplicate removal with MinHash LSH over character n-grams.

Character n-grams (not words) make the same code work for Chinese and Hindi as for English. Text is
normalised first (NFKC, case folding, punctuation and symbols removed, whitespace collapsed), so copies that
differ in case or punctuation collide. An NLI pair is one example: it is a duplicate when premise and hypothesis both are (each
side gets its own signature block and the smaller similarity counts), never for a shared premise alone.

Signatures follow datasketch's `affine32` scheme exactly (the test checks it against `MinHash.update_batch`),
but are computed for thousands of records in a few numpy calls: datasketch hashes each shingle with a
Python-level function call, which dominates its run time at 100k records. The LSH index uses datasketch's
optimal banding for the threshold, stored compactly (`govtune.governance.lsh`: about a fifth of
datasketch's memory per entry).

The first occurrence is kept; later copies are dropped as `exact_duplicate` (identical text), or
`near_duplicate` (estimated Jaccard >= threshold), or `leakage` when the earlier copy is a protected
(evaluation) record, which is never dropped itself.
"""

from __future__ import annotations

import functools
import hashlib
import sys
import unicodedata
from collections.abc import Iterator, Sequence

import numpy as np
import regex
from datasketch import MinHash, MinHashLSH

from govtune.governance.config import DedupConfig
from govtune.governance.lsh import CompactLSH, band_keys
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
    """Exact keys and a compact LSH index per group (language and number of text fields) over the records
    seen so far (protected records first).

    Memory per indexed record: its exact key, an 8-byte hash in a Python set of ints (about 70 bytes with
    the set's slot), and its LSH entry (about 0.62 KB at 128 permutations, see `govtune.governance.lsh`):
    about 0.7 KB, so a million kept records take about 0.7 GB. Nothing else grows with the pool: records
    themselves are never held. An 8-byte exact hash makes a false exact match among a million records a
    chance of about 3e-8."""

    def __init__(self, config: DedupConfig | None = None):
        self.config = config or DedupConfig()
        self.hasher = MinHasher(self.config.num_perm, self.config.seed)
        self.lsh: dict[tuple[str, int], CompactLSH] = {}
        self.exact: dict[tuple[str, int], set[int]] = {}
        self.protected_exact: dict[tuple[tuple[str, int], int], object] = {}
        self.protected_entries: dict[tuple[str, int], dict[int, object]] = {}
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

    def _index_of(self, group: tuple[str, int], length: int) -> CompactLSH:
        lsh = self.lsh.get(group)
        if lsh is None:
            lsh = self.lsh[group] = CompactLSH(length, *_lsh_params(self.config.threshold, length))
        return lsh

    def check(self, groups: Sequence[tuple[str, int]], exact: Sequence[bytes], sigs: Sequence[np.ndarray | None],
              keys: Sequence[object], protected: bool = False, index_kept: bool = True) -> list[str | None]:
        """`add` from precomputed signatures (computed elsewhere, e.g. by parallel datatrove tasks).

        The band keys of the whole batch are computed and looked up in the index at once, and the pairs of
        batch records sharing a band found by one sort; records of the batch kept so far wait in `pending`
        (later records of the batch see them through those pairs) and join the index at the end."""
        groups = [tuple(g) for g in groups]
        bands, prior, earlier = self._query(groups, sigs)
        pending: dict[tuple[str, int], _Pending] = {}
        entry_of: dict[int, int] = {}  # batch position -> index entry, for records of this batch indexed
        verdicts: list[str | None] = []
        for i, (group, key, sig) in enumerate(zip(groups, keys, sigs)):
            ex = int.from_bytes(exact[i][:8], "little")
            reason, match = "exact_duplicate", self.protected_exact.get((group, ex))
            if match is None and ex in self.exact.get(group, ()):
                match = _POOL
            if match is None and sig is not None:
                pend = pending.setdefault(group, _Pending(self._index_of(group, len(sig))))
                seen = prior[i]
                if i in earlier:
                    seen = seen | {entry_of[j] for j in earlier[i] if j in entry_of}
                reason, match = "near_duplicate", self._near(group, sig, seen, pend)
            if match is not None and not protected:
                if match is not _POOL:
                    reason = "leakage"
                    self.leakage_pairs.append((key, match))
                verdicts.append(reason)
                continue
            verdicts.append(None)
            if not index_kept:
                continue
            if protected:
                self.protected_exact.setdefault((group, ex), key)
            else:
                self.exact.setdefault(group, set()).add(ex)
            if sig is not None and match is None:
                entry = entry_of[i] = pending[group].push(sig, bands[i])
                if protected:
                    self.protected_entries.setdefault(group, {})[entry] = key
        for pend in pending.values():
            pend.commit()
        return verdicts

    def _query(self, groups, sigs) -> tuple[list, list[set[int]], dict[int, list[int]]]:
        """Band keys of every record with a signature, the indexed entries sharing a band with it, and for
        the records sharing a band with earlier records of the same batch, those records' positions."""
        bands: list = [None] * len(groups)
        prior: list[set[int]] = [set() for _ in groups]
        earlier: dict[int, list[int]] = {}
        by_group: dict[tuple[str, int], list[int]] = {}
        for i, (group, sig) in enumerate(zip(groups, sigs)):
            if sig is not None:
                by_group.setdefault(group, []).append(i)
        for group, idx in by_group.items():
            lsh = self._index_of(group, len(sigs[idx[0]]))
            keys = band_keys(np.stack([sigs[i] for i in idx]), lsh.bands, lsh.rows)
            if len(lsh):
                for row, found in enumerate(lsh.candidates(keys)):
                    prior[idx[row]] = found
            for row, rows in _shared_bands(keys).items():
                earlier[idx[row]] = [idx[r] for r in rows]
            for row, i in enumerate(idx):
                bands[i] = keys[row]
        return bands, prior, earlier

    def _near(self, group: tuple[str, int], sig: np.ndarray, candidates: set[int], pend: _Pending) -> object | None:
        # LSH returns candidates sharing a band; confirm with the estimated Jaccard of every text field
        # (the smallest one counts: a pair is a duplicate only if both sides are). The most similar wins;
        # on a tie a protected record (leakage is the finding that matters), then the earliest.
        best, best_rank = None, None
        fields = len(sig) // self.config.num_perm
        protected = self.protected_entries.get(group, {})
        for entry in candidates:
            equal = (pend.signature(entry) == sig).reshape(fields, self.config.num_perm)
            sim = float(equal.mean(axis=1).min())
            rank = (sim, entry in protected, -entry)
            if sim >= self.config.threshold and (best_rank is None or rank > best_rank):
                best, best_rank = entry, rank
        if best is None:
            return None
        return protected.get(best, _POOL)

    def nbytes(self) -> int:
        """Approximate bytes held by the index (LSH arrays and exact-key sets)."""
        return (sum(lsh.nbytes() for lsh in self.lsh.values())
                + sum(sys.getsizeof(s) + 36 * len(s) for s in self.exact.values()))

    def __len__(self) -> int:
        return sum(len(s) for s in self.exact.values())


_POOL = object()  # a match that is a pool record (not protected): its identity does not matter


def _shared_bands(keys: np.ndarray) -> dict[int, list[int]]:
    """For each row of band keys (n, bands) sharing a band with earlier rows, those rows (one sort of the
    flat keys; rows sharing a band are rare, so they are collected in Python)."""
    bands = keys.shape[1]
    flat = keys.reshape(-1)
    order = np.argsort(flat, kind="stable")
    ordered = flat[order]
    same = np.flatnonzero(ordered[1:] == ordered[:-1])
    out: dict[int, set[int]] = {}
    if not len(same):
        return {}
    # runs of equal keys: consecutive positions of `same` belong to one run
    breaks = np.flatnonzero(np.diff(same) != 1) + 1
    for run in np.split(same, breaks):
        rows = sorted({int(r) for r in order[run[0]:run[-1] + 2] // bands})
        for j, row in enumerate(rows[1:], start=1):
            out.setdefault(row, set()).update(rows[:j])
    return {row: sorted(rows) for row, rows in out.items()}


class _Pending:
    """Records of the current batch kept so far, before they join a group's index."""

    def __init__(self, lsh: CompactLSH):
        self.lsh = lsh
        self.sigs: list[np.ndarray] = []
        self.keys: list[np.ndarray] = []

    def push(self, sig: np.ndarray, keys: np.ndarray) -> int:
        self.sigs.append(sig)
        self.keys.append(keys)
        return len(self.lsh) + len(self.sigs) - 1

    def signature(self, entry: int) -> np.ndarray:
        return self.lsh.signature(entry) if entry < len(self.lsh) else self.sigs[entry - len(self.lsh)]

    def commit(self) -> None:
        if self.sigs:
            self.lsh.add(np.stack(self.sigs), np.stack(self.keys))


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
        self.index: DuplicateIndex | None = None

    def judge(self, records: Sequence[Record]) -> list[str | None]:
        self.index = None  # a whole pool: a fresh index
        return self.judge_stream(records, 0)

    def judge_stream(self, records: Sequence[Record], start: int) -> list[str | None]:
        """The next batch of a stream (`start`: position of its first record): each record is compared
        with every earlier one kept, across batches, exactly as if the pool came in one piece."""
        if self.index is None:
            self.index = DuplicateIndex(self.config)
            if self.protected:
                self.index.add(self.protected, [("protected", p.get("id", j)) for j, p in enumerate(self.protected)],
                               protected=True)
        keys = [r.get("id", start + i) for i, r in enumerate(records)]  # named in leakage pairs only
        verdicts = self.index.add(records, keys, index_kept=self.within_pool)
        self.leakage_pairs = [(key, pid[1]) for key, pid in self.index.leakage_pairs]
        return verdicts

    def details(self) -> dict:
        return {"threshold": self.config.threshold, "num_perm": self.config.num_perm,
                "ngram": dict(self.config.ngram), "protected_records": len(self.protected),
                "within_pool": self.within_pool,
                "leakage": len(self.leakage_pairs),
                "leakage_examples": [{"id": a, "protected_id": b} for a, b in self.leakage_pairs[:5]],
                "index_records": len(self.index) if self.index else 0,
                "index_mb": round(self.index.nbytes() / 2**20, 1) if self.index else 0.0}
