"""Loading the model a command evaluates: a causal LM by name (quantised on request), a sequence-classification
checkpoint, or a causal LM with a govtune adapter (and the classification head it was trained with). Shared by
`govtune eval`, `govtune eval --task` and `govtune lm-eval`."""

from __future__ import annotations

from pathlib import Path

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "spiece.model", "vocab.json",
                    "vocab.txt", "sentencepiece.bpe.model")


def add_quantize_argument(p) -> None:
    p.add_argument("--quantize", choices=("int8", "int4", "nf4"), default=None,
                   help="evaluate over a quantised base: the frozen linear layers become int8 / int4 weight-only "
                        "(torchao; int4 needs a CUDA GPU) or NF4 (bitsandbytes); an --adapter loads on top")


def load_for_eval(name: str, adapter: str | None = None, quantize: str | None = None):
    """(model, tokenizer): causal LMs through govtune.models.load_model (quantised with `quantize`);
    checkpoints whose architecture is a sequence-classification head through
    AutoModelForSequenceClassification. An adapter saved with a classification head (`head.labels` in its
    adapter_config.json) loads onto the causal LM's backbone with that head (govtune.heads)."""
    # transformers (and with it these govtune modules) takes seconds to import: it loads with the model, not
    # with `govtune --help`
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from govtune.adapters import load_adapter
    from govtune.adapters.io import read_adapter_config
    from govtune.heads import with_classifier_head
    from govtune.models import load_model

    path = Path(name).expanduser()
    if path.is_dir() and (path / "config.json").exists():
        if not any((path / f).exists() for f in _TOKENIZER_FILES):
            raise ValueError(f"model directory {path} has no tokenizer files: save the tokenizer next to the "
                             f"weights (tokenizer.save_pretrained('{path}')) or copy them from the base model")
        archs = AutoConfig.from_pretrained(path).architectures or []
        if any(a.endswith("ForSequenceClassification") for a in archs):
            if quantize is not None:
                raise ValueError(f"--quantize applies to causal LMs; {path} is a sequence classifier: drop "
                                 f"--quantize")
            return AutoModelForSequenceClassification.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    model, tok = load_model(name, quantize=quantize)
    if adapter is not None:
        head = read_adapter_config(adapter)[1].get("head")
        if head:  # an adapter trained with a classification head (a `head: classifier` study's run)
            model = with_classifier_head(model, tok, head["labels"])
        model = load_adapter(model, adapter) or model
        model.eval()
    return model, tok
