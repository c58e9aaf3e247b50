"""govtune's steps inside datatrove pipelines, for pools that need a cluster (Slurm, Ray) or many cores.

Per-record steps are datatrove `BaseFilter`s (drops are counted per reason in datatrove's stats, and an
exclusion writer receives them with `filter_reason`); a step that rewrites records (`PiiFilter`, redaction)
updates the document's record and text and counts `changed` and `changed_<TYPE>` in the stats. Deduplication follows datatrove's own MinHash layout:
signatures per task, one task that decides the duplicates in global order (with leakage against protected
records), then a filter per task that drops them. The original record rides in `doc.metadata["record"]`,
so `record_writer_adapter` writes it back unchanged.

    read = JsonlReader(in_dir, adapter=record_reader_adapter)  # or make_record_reader_adapter(columns, labels)
    LocalPipelineExecutor([read, LanguageIdFilter(langs), PiiFilter(), JsonlWriter(mid, adapter=record_writer_adapter)], tasks=N)
    LocalPipelineExecutor([JsonlReader(mid, adapter=record_reader_adapter), DedupSignatures(sig_dir)], tasks=N)
    LocalPipelineExecutor([DedupClusters(sig_dir, drops_dir)], tasks=1)
    LocalPipelineExecutor([JsonlReader(mid, ...), DedupFilter(drops_dir), DecontaminationFilter(eval_sets),
                           QualityFilter(), JsonlWriter(out, ...)], tasks=N)

The perplexity cut is a percentile over a whole language, so it is not offered as a per-task filter;
run `curate` (or `curate_dataset`) on the deduplicated output for it.
"""

from __future__ import annotations

import functools
import json
import pickle
from abc import abstractmethod
from collections.abc import Mapping, Sequence

from datatrove.data import Document, DocumentsPipeline
from datatrove.io import DataFolderLike, get_datafolder
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter

from govtune.governance.columns import map_columns, parse_columns
from govtune.governance.config import DecontamConfig, DedupConfig, LangIdConfig, PiiConfig, QualityConfig
from govtune.governance.decontam import ContaminationIndex, DecontaminationStep
from govtune.governance.dedup import DuplicateIndex
from govtune.governance.langid import LanguageIdStep
from govtune.governance.quality import QualityStep
from govtune.governance.records import (XNLI_LABELS, Labels, Record, Step, check_labels, full_text, invalid_reason, outcome,
                                        with_label_name)


def record_reader_adapter(self, data: dict, path: str, id_in_file: int | str) -> dict:
    """JsonlReader adapter: a govtune record (text or premise+hypothesis) -> Document fields (labels 0/1/2
    become class names, as in `curate`)."""
    return _to_document(data, path, id_in_file, {}, XNLI_LABELS)


def make_record_reader_adapter(columns: Mapping[str, str] | None = None, labels: Labels | str | Sequence = XNLI_LABELS,
                               langid: str | None = "lingua"):
    """A reader adapter for data in its own schema: `columns` maps its field names onto govtune's (as
    `govtune curate --columns` does), `labels` lists the valid labels ("any": not checked); `langid` the
    language-ID settings or backend (then `lang` must be a code govtune.languages knows; it is normalised),
    None for a pipeline without LanguageIdFilter (any non-empty code)."""
    columns, labels = parse_columns(columns), check_labels(labels)
    return functools.partial(_adapter, columns=columns, labels=labels, langid=langid)


def _adapter(self, data: dict, path: str, id_in_file: int | str, *, columns, labels, langid) -> dict:
    return _to_document(data, path, id_in_file, columns, labels, langid)


def _to_document(data: dict, path: str, id_in_file: int | str, columns, labels, langid: str | None = "lingua") -> dict:
    record = map_columns(data, columns, f"{path}, record {id_in_file}")
    problem = invalid_reason(record, None, labels, langid)
    if problem is not None:
        raise ValueError(f"{path}, record {id_in_file}: {problem[1]}")
    return {"text": full_text(record), "id": str(record.get("id", f"{path}/{id_in_file}")),
            "metadata": {"record": with_label_name(record, labels)}}


def record_writer_adapter(self, document: Document) -> dict:
    """JsonlWriter adapter: writes the original record back, unchanged."""
    return document.metadata["record"]


def dropped_writer_adapter(self, document: Document) -> dict:
    """JsonlWriter adapter for exclusion writers: the record plus `reason` and `stage`, as `curate` does."""
    meta = document.metadata
    return {**meta["record"], "reason": meta.get("filter_reason", "unknown"), "stage": meta.get("stage", "")}


class GovtuneFilter(BaseFilter):
    """A govtune per-record Step as a datatrove filter (the step is built lazily, inside the worker)."""

    name = "govtune filter"

    def __init__(self, exclusion_writer=None, batch_size: int = 512):
        super().__init__(exclusion_writer, batch_size)
        self._step: Step | None = None

    @abstractmethod
    def make_step(self) -> Step:
        """The govtune step this filter runs (built in the worker process)."""

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return self.filter_batch([doc])[0]

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        if self._step is None:
            self._step = self.make_step()
        verdicts = self._step.transform([doc.metadata["record"] for doc in batch])
        out: list[bool | tuple[bool, str]] = []
        for doc, verdict in zip(batch, verdicts):
            record, reason, tags = outcome(doc.metadata["record"], verdict)
            if tags is not None:  # kept rewritten: what is written and deduplicated downstream is the new record
                doc.metadata["record"], doc.text = record, full_text(record)
                self.stat_update("changed")
                for tag, n in tags.items():
                    self.stat_update(f"changed_{tag}", value=n)
            if reason is None:
                out.append(True)
            else:
                doc.metadata["stage"] = self._step.stage
                out.append((False, reason))
        return out


class LanguageIdFilter(GovtuneFilter):
    name = "🌐 govtune language ID"

    def __init__(self, langs: Sequence[str], config: LangIdConfig | None = None, exclusion_writer=None,
                 batch_size: int = 512):
        super().__init__(exclusion_writer, batch_size)
        self.langs, self.config = list(langs), config or LangIdConfig()

    def make_step(self) -> Step:
        return LanguageIdStep(self.langs, self.config)


class QualityFilter(GovtuneFilter):
    name = "🧹 govtune quality"

    def __init__(self, config: QualityConfig | None = None, exclusion_writer=None, batch_size: int = 512):
        super().__init__(exclusion_writer, batch_size)
        self.config = config or QualityConfig()

    def make_step(self) -> Step:
        return QualityStep(self.config)


class PiiFilter(GovtuneFilter):
    """The PII step: redacts personal data in the records it keeps (or drops them with `action: drop`).
    Place it before the deduplication stages, as `curate` does, and give DedupClusters the protected records
    redacted alike (`govtune.governance.pii.redact_records`), so that leakage is still found."""

    name = "🔒 govtune PII"

    def __init__(self, config: PiiConfig | None = None, exclusion_writer=None, batch_size: int = 512):
        super().__init__(exclusion_writer, batch_size)
        self.config = config or PiiConfig()

    def make_step(self) -> Step:
        from govtune.governance.pii import PiiStep  # phonenumbers and stdnum: only when the filter is built

        return PiiStep(self.config)


class DecontaminationFilter(GovtuneFilter):
    """Drops a record sharing an n-gram with an evaluation set (`govtune.governance.decontam`); the index of
    the evaluation n-grams is built once per worker. Each drop is also counted per evaluation set in
    datatrove's stats (`contamination:<set>`) and the sets go into `doc.metadata["contamination"]`."""

    name = "🧪 govtune decontamination"

    def __init__(self, eval_sets, config: DecontamConfig | None = None, exclusion_writer=None, batch_size: int = 512):
        super().__init__(exclusion_writer, batch_size)
        self.eval_sets, self.config = eval_sets, config or DecontamConfig()

    def make_step(self) -> Step:
        return DecontaminationStep(ContaminationIndex(self.eval_sets, self.config))

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        out = super().filter_batch(batch)
        for doc, sets in zip(batch, self._step.last):
            if sets:
                doc.metadata["contamination"] = list(sets)
                for name in sets:
                    self.stat_update(f"contamination:{name}")
        return out


class DedupSignatures(PipelineStep):
    """Stage 1 of 3: exact keys and MinHash signatures of this task's records, in reading order."""

    type = "🫂 - DEDUP"
    name = "govtune signatures"

    def __init__(self, output_folder: DataFolderLike, config: DedupConfig | None = None, batch_size: int = 4096):
        super().__init__()
        self.output_folder = get_datafolder(output_folder)
        self.config = config or DedupConfig()
        self.batch_size = batch_size

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        index = DuplicateIndex(self.config)
        groups, exact, sigs, ids = [], [], [], []
        batch: list[Record] = []

        def flush():
            e, s = index.signatures(batch)
            groups.extend(index._group(r) for r in batch)
            exact.extend(e)
            sigs.extend(s)
            batch.clear()

        with self.track_time():
            for doc in data:
                self.stat_update("total")
                batch.append(doc.metadata["record"])
                ids.append(doc.id)
                if len(batch) >= self.batch_size:
                    flush()
            flush()
            with self.output_folder.open(f"{rank:05d}.govtune.sig", "wb") as f:
                pickle.dump({"groups": groups, "exact": exact, "sigs": sigs, "ids": ids}, f)
        return
        yield  # a generator that consumes its input, like datatrove's own signature stage


class DedupClusters(PipelineStep):
    """Stage 2 of 3 (one task): decide duplicates over all tasks' signatures in global order (task by task,
    record by record), protected records first; writes per-task drop lists."""

    type = "🫂 - DEDUP"
    name = "govtune duplicates"

    def __init__(self, input_folder: DataFolderLike, output_folder: DataFolderLike,
                 config: DedupConfig | None = None, protected: Sequence[Record] | None = None):
        super().__init__()
        self.input_folder = get_datafolder(input_folder)
        self.output_folder = get_datafolder(output_folder)
        self.config = config or DedupConfig()
        self.protected = list(protected or [])

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if world_size != 1:
            raise ValueError("DedupClusters compares records across all tasks: run it with tasks=1")
        index = DuplicateIndex(self.config)
        if self.protected:
            index.add(self.protected, [("protected", p.get("id", j)) for j, p in enumerate(self.protected)],
                      protected=True)
        with self.track_time():
            for path in sorted(self.input_folder.list_files(glob_pattern="*.govtune.sig")):
                with self.input_folder.open(path, "rb") as f:
                    part = pickle.load(f)
                task = path.split("/")[-1].split(".")[0]
                keys = [(task, i) for i in range(len(part["ids"]))]
                verdicts = index.check(part["groups"], part["exact"], part["sigs"], keys)
                drops = {i: v for i, v in enumerate(verdicts) if v is not None}
                for reason in drops.values():
                    self.stat_update(reason)
                with self.output_folder.open(f"{task}.govtune.drops.json", "w") as f:
                    json.dump(drops, f)
        return
        yield


class DedupFilter(BaseFilter):
    """Stage 3 of 3: drop this task's duplicates (same reader and order as stage 1) with their reason."""

    name = "govtune dedup filter"

    def __init__(self, input_folder: DataFolderLike, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.input_folder = get_datafolder(input_folder)
        self._drops: dict[int, str] = {}
        self._position = 0

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        with self.input_folder.open(f"{rank:05d}.govtune.drops.json", "r") as f:
            self._drops = {int(k): v for k, v in json.load(f).items()}
        self._position = 0
        yield from super().run(data, rank, world_size)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        reason = self._drops.get(self._position)
        self._position += 1
        if reason is None:
            return True
        doc.metadata["stage"] = "c1"
        return False, reason


__all__ = ["record_reader_adapter", "make_record_reader_adapter", "record_writer_adapter", "dropped_writer_adapter",
           "GovtuneFilter", "LanguageIdFilter", "PiiFilter", "QualityFilter", "DecontaminationFilter",
           "DedupSignatures", "DedupClusters", "DedupFilter"]
