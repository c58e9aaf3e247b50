"""Token ids of (premise, hypothesis, class) rows for a sequence-classification head, and padded batches of
them: the one encoding that head training (`govtune.training.train` with `ClassExample` rows) and head
scoring (`govtune.evaluation.scoring.classify_pairs`) share, so a head is trained on exactly the token
sequences it is later scored on.

A row is the tokenizer's own sentence-pair encoding, `tokenizer(premise, hypothesis)`: its special tokens,
and `token_type_ids` where the model has segments (BERT-style encoders); too long, it loses the end of the
premise (`only_first`), never the hypothesis. Batches are padded on the right, with no position ids: the
real tokens of every row then sit at positions 0..n-1, as in the row alone, whatever the tokenizer's own
padding side, and transformers' decoder heads pool the last real token (the rightmost token that is not
the pad id)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from govtune.text.encoding import IGNORE_INDEX, pad_batch, pad_token_id


@dataclass(frozen=True)
class ClassExample:
    """One training row of a head: the sentence pair and the index of its class in the head's label order
    (the task's: XNLI's `LABELS`)."""

    premise: str
    hypothesis: str
    label: int


@dataclass
class EncodedClass:
    input_ids: list[int]
    label: int = IGNORE_INDEX  # IGNORE_INDEX: a row scored, not trained on
    token_type_ids: list[int] | None = None


def encode_class_pair(tokenizer, premise: str, hypothesis: str, max_length: int | None = None,
                      label: int = IGNORE_INDEX) -> EncodedClass:
    """The sentence pair as the tokenizer encodes it, the premise cut from its end to `max_length` tokens
    in all (None: uncut)."""
    enc = tokenizer(premise, hypothesis, truncation="only_first" if max_length else False, max_length=max_length)
    types = enc.get("token_type_ids")
    return EncodedClass(list(enc["input_ids"]), label, list(types) if types is not None else None)


def encode_class_examples(tokenizer, examples: Sequence[ClassExample], max_length: int | None
                          ) -> list[EncodedClass]:
    for i, ex in enumerate(examples):
        if not isinstance(ex, ClassExample):
            raise ValueError(f"row {i} is a {type(ex).__name__}, not a ClassExample: a head trains on "
                             f"ClassExample(premise, hypothesis, label) rows only")
    return [encode_class_pair(tokenizer, ex.premise, ex.hypothesis, max_length, ex.label) for ex in examples]


def head_pad_id(model, tokenizer) -> int:
    """The id the head's pooling takes for padding (its config's `pad_token_id`), else the tokenizer's."""
    config = getattr(base_model(model), "config", None)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    pad = getattr(text, "pad_token_id", None)
    return int(pad) if pad is not None else pad_token_id(tokenizer)


class ClassCollator:
    """Pads EncodedClass rows on the right: input_ids (with `pad_id`), attention_mask, token_type_ids (0 on
    the pads) when the rows have them, and `labels`, one class index per row."""

    def __init__(self, pad_id: int):
        self.pad = pad_id

    def __call__(self, batch: Sequence[EncodedClass]) -> dict[str, torch.Tensor]:
        ids, mask, _ = pad_batch([e.input_ids for e in batch], self.pad, "right")
        out = {"input_ids": ids, "attention_mask": mask,
               "labels": torch.tensor([e.label for e in batch], dtype=torch.long)}
        if all(e.token_type_ids is not None for e in batch):
            out["token_type_ids"] = pad_batch([e.token_type_ids for e in batch], 0, "right")[0]
        return out


def base_model(model):
    """The model a PEFT wrapper holds (`get_base_model`), or the model itself: what its signature, config and
    class name are read from. The evaluator's scoring reads them through this too."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def is_classifier(model) -> bool:
    """Whether `model` is a sequence-classification model (a head over a backbone), not a causal LM: training,
    scoring and govtune.heads all ask, so it lives with the head's encoding."""
    return type(base_model(model)).__name__.endswith("ForSequenceClassification")


class HeadForward:
    """The head's logits (rows x classes) for a collated batch: the same call in training and scoring. The
    model's signature is read once, from the model itself (a DDP wrapper's forward takes anything)."""

    def __init__(self, model):
        params = inspect.signature(base_model(model).forward).parameters
        # no KV cache: nothing is generated after a classification forward
        self.no_cache = "use_cache" in params

    def __call__(self, model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        kwargs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
        if self.no_cache:
            kwargs["use_cache"] = False
        return model(**kwargs).logits
