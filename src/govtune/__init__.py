"""govtune: governance-aware hybrid parameter-efficient fine-tuning of multilingual language models.

The public adapter API lives at the top level; the pillars are subpackages:
`govtune.adapters` (LoRA, LoRA-GA, BOFT, unitary, hybrid), `govtune.governance` (curation),
`govtune.evaluation` (metrics, scoring), `govtune.training`; above them `govtune.tasks` (XNLI, FLORES, task
files), `govtune.study` (the study runner), `govtune.report` (its report) and `govtune.cli` (the command).
The layers and why each module sits where it does: docs/architecture.md and pyproject.toml's import-linter
contract."""

from __future__ import annotations

from govtune import library_logs

__version__ = "0.3.0"  # the package's version: pyproject.toml reads it from here

library_logs.install()  # before any module of govtune imports transformers or peft

# Imported lazily so that `govtune curate` or `import govtune.governance` does not pay for torch.
_ADAPTER_API = ("AdapterConfig", "inject", "merge_and_unload", "save_adapter", "load_adapter",
                "trainable_parameters", "mixing")
__all__ = list(_ADAPTER_API) + ["__version__"]


def __getattr__(name: str):
    if name in _ADAPTER_API:
        from govtune import adapters  # torch: only when the adapter API is used (see above)

        return getattr(adapters, name)
    raise AttributeError(f"module 'govtune' has no attribute {name!r}")
