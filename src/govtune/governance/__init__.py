"""Label-free data governance: language identification, exact and near-duplicate removal, quality and
perplexity filters in stages C0 -> C1 -> C2, then a seeded, label-balanced k-shot sampler.

    result = curate(records, ["en", "zh", "hi"], "c2", protected=eval_records)
    shots = sample_kshot(result, ["en", "zh", "hi"], k=32, seed=0)

The same steps run over Hugging Face `datasets` (`curate_dataset`, with `num_proc`) and inside datatrove
pipelines (`govtune.governance.datatrove_steps`).
"""

from govtune.governance.config import (CurationConfig, DedupConfig, LangIdConfig, PerplexityConfig,
                                       QualityConfig)
from govtune.governance.pipeline import CurationResult, curate
from govtune.governance.records import REASONS, Step
from govtune.governance.report import report_markdown
from govtune.governance.sampling import sample_kshot

__all__ = ["curate", "CurationResult", "sample_kshot", "curate_dataset", "CurationConfig", "LangIdConfig",
           "DedupConfig", "QualityConfig", "PerplexityConfig", "REASONS", "Step", "report_markdown"]


def __getattr__(name: str):
    if name == "curate_dataset":  # imports `datasets` only when asked for
        from govtune.governance.hf import curate_dataset

        return curate_dataset
    raise AttributeError(f"module 'govtune.governance' has no attribute {name!r}")
