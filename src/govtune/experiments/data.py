"""The data of one study: the XNLI few-shot pool and its curated versions, the evaluation sets, and each
run's (prompt, target) training and validation pairs.

Curation is one explicit step, `curate_study`, run once before any cell: it writes each curation stage's
cache in `OUT/curation/` (kept records, dropped records, report), and `StudyData.curated` only reads that
cache. So every cell of a stage, and a resumed study, trains from exactly the same curated pool, and C2's
perplexity cut always scores with the base model."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Callable, Iterable

from govtune.atomic import atomic_write_json, atomic_write_jsonl
from govtune.evaluation.incontext import attach, flores_demonstrations
from govtune.experiments.config import StudyConfig
from govtune.experiments.layout import StudyLayout
from govtune.governance import curate, sample_kshot
from govtune.tasks.flores import load_flores
from govtune.tasks.prompts import flores_training_pair, xnli_training_pair
from govtune.tasks.xnli import load_xnli


def _split_pair(pair: str) -> tuple[str, str]:
    src, tgt = pair.split("-")
    return src, tgt


class StudyData:
    def __init__(self, config: StudyConfig, layout: StudyLayout, progress: bool = True):
        self.config = config
        self.layout = layout
        self.progress = progress
        self._pool: list[dict] | None = None
        self._curated: dict[str, list[dict]] = {}
        self._xnli_eval: dict[str, list[dict]] | None = None
        self._flores_eval: dict[str, list[dict]] | None = None

    # --- evaluation sets -----------------------------------------------------------------------------
    def xnli_eval(self) -> dict[str, list[dict]]:
        if self._xnli_eval is None:
            c = self.config
            self._xnli_eval = {lang: load_xnli(lang, data_dir=c.data_dir, rows=range(*c.xnli_eval_rows),
                                               limit=c.eval_limit) for lang in c.languages}
        return self._xnli_eval

    def flores_eval(self) -> dict[str, list[dict]]:
        if self._flores_eval is None:
            c = self.config
            self._flores_eval = {p: load_flores(*_split_pair(p), data_dir=c.data_dir,
                                                lines=range(*c.flores_eval_lines), limit=c.flores_eval_limit)
                                 for p in c.flores_pairs}
        return self._flores_eval

    # --- the few-shot pool ---------------------------------------------------------------------------
    def pool(self) -> list[dict]:
        if self._pool is None:
            c = self.config
            self._pool = [r for lang in c.languages
                          for r in load_xnli(lang, data_dir=c.data_dir, rows=range(*c.xnli_pool_rows))]
        return self._pool

    def curated(self, stage: str) -> list[dict]:
        """The pool after curation `stage` (c0 = as given; or a curation variant's name), as `curate_study`
        cached it."""
        if stage not in self._curated:
            path = self.layout.curated(stage)
            if not path.exists():
                raise FileNotFoundError(
                    f"curation stage {stage!r} has not been run in this study ({path} is missing): run the "
                    f"study's curation step first (`govtune run CONFIG --out {self.layout.root} --resume`, or "
                    f"govtune.experiments.data.curate_study)")
            self._curated[stage] = _read_jsonl(path)
        return self._curated[stage]

    def curation_report(self, stage: str) -> dict | None:
        path = self.layout.curation_report(stage)
        return json.loads(path.read_text()) if path.exists() else None

    def curation_dropped(self, stage: str) -> list[dict] | None:
        """The records curation `stage` dropped, each with `reason` and `stage`; None if not stored."""
        path = self.layout.dropped(stage)
        return _read_jsonl(path) if path.exists() else None

    # --- one run's pairs -----------------------------------------------------------------------------
    def training_examples(self, stage: str, shots: int, seed: int) -> tuple[list[dict], list[dict]]:
        """k-shot sample per language (balanced across labels) and a disjoint validation sample."""
        kept = self.curated(stage)
        langs = list(self.config.languages)
        train = sample_kshot(kept, langs, k=shots, seed=seed, report=self.curation_report(stage))
        return train, self._validation_sample(kept, {record_key(r) for r in train}, seed)

    def _validation_sample(self, records: list[dict], taken: set[tuple], seed: int) -> list[dict]:
        """`val_per_language` records per language not in `taken`, seeded."""
        rng = random.Random(f"val-{seed}")
        val: list[dict] = []
        for lang in self.config.languages:
            rest = [r for r in records if r.get("lang") == lang and record_key(r) not in taken]
            val += rng.sample(rest, min(self.config.val_per_language, len(rest)))
        return val

    def validation_examples(self, stage: str, shots: int, seed: int) -> dict[str, list[dict]]:
        """The run's validation examples per language (for temperature scaling): those of
        `training_examples`, or for the base model (shots 0, no curation) the same number drawn from the
        raw pool. Pool rows only, so never a test row."""
        if shots > 0:
            _, val = self.training_examples(stage, shots, seed)
        else:
            val = self._validation_sample(self.pool(), set(), seed)
        return {lang: [r for r in val if r.get("lang") == lang] for lang in self.config.languages}

    def incontext_sets(self, stage: str, seed: int
                       ) -> tuple[dict[str, list[dict]], dict[str, list[dict]], dict[str, list[dict]]]:
        """XNLI and FLORES test sets and validation examples of the in-context baseline, each prompt
        preceded by `incontext_shots` demonstrations: for XNLI the k-shot sample a fine-tuning run with as
        many shots and the same seed trains on, for FLORES lines drawn from the pool lines. The validation
        examples (the rest of the curated pool, as for that run) carry the same demonstrations."""
        c = self.config
        shots, val = self.training_examples(stage, c.incontext_shots, seed)
        xnli = attach(self.xnli_eval(), {lang: [r for r in shots if r.get("lang") == lang] for lang in c.languages},
                      "xnli")
        val_by_lang = {lang: [{**r, "context": xnli[lang][0]["context"]} for r in val if r.get("lang") == lang]
                       for lang in c.languages}
        flores = self.flores_eval() if "flores" in c.tasks else {}
        if flores:
            demos = {p: flores_demonstrations(load_flores(*_split_pair(p), data_dir=c.data_dir,
                                                          lines=range(*c.flores_pool_lines)),
                                              tests, c.incontext_shots, seed) for p, tests in flores.items()}
            flores = attach(flores, demos, "flores")
        return xnli, flores, val_by_lang

    def training_pairs(self, stage: str, shots: int, seed: int
                       ) -> tuple[list[tuple[str, str]], list[tuple[str, str]], dict[str, int]]:
        train, val = self.training_examples(stage, shots, seed)
        pairs = [xnli_training_pair(r) for r in train]
        val_pairs = [xnli_training_pair(r) for r in val]
        counts = {"xnli_train": len(pairs), "xnli_val": len(val_pairs)}
        if "flores" in self.config.tasks:
            c = self.config
            n = c.flores_train_pairs or shots
            rng = random.Random(f"flores-{seed}")
            for p in c.flores_pairs:
                lines = load_flores(*_split_pair(p), data_dir=c.data_dir, lines=range(*c.flores_pool_lines))
                chosen = rng.sample(lines, min(n, len(lines)))
                pairs += [flores_training_pair(r) for r in chosen]
                counts[f"flores_train.{p}"] = len(chosen)
        return pairs, val_pairs, counts


def curate_study(data: StudyData, stages: Iterable[str], model_loader: Callable) -> list[str]:
    """Curate each of `stages` not cached yet, before any cell runs; returns the stages it curated. The
    only writer of `OUT/curation/`. When a stage runs C2's perplexity cut, the base model (the model being
    tuned, from `model_loader`) is loaded once for all of them and freed afterwards."""
    config, layout = data.config, data.layout
    missing = sorted(s for s in set(stages) if not layout.curated(s).exists())
    if not missing:
        return []
    needs_ref = any("perplexity" in config.curation_config(s).steps(config.curation_stage(s)) for s in missing)
    model, tokenizer = model_loader() if needs_ref else (None, None)
    protected = [r for rows in data.xnli_eval().values() for r in rows]
    for stage in missing:
        result = curate(data.pool(), list(config.languages), stage=config.curation_stage(stage),
                        reference_model=model, reference_tokenizer=tokenizer, protected=protected,
                        config=config.curation_config(stage), progress=data.progress)
        atomic_write_json(layout.curation_report(stage), result.report)
        atomic_write_jsonl(layout.dropped(stage), result.dropped)
        atomic_write_jsonl(layout.curated(stage), list(result.kept))  # last: its presence marks the stage done
    del model, tokenizer
    return missing


def record_key(record: dict) -> tuple:
    return (record.get("lang"), record.get("id"), record.get("premise"), record.get("hypothesis"))


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


