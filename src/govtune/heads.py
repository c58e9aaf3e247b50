"""A sequence-classification head on a causal LM's backbone: the model a study with `head: classifier` trains
with its adapter.

`with_classifier_head(causal, tokenizer, labels, seed)` builds transformers' sequence-classification class of
the same architecture (`AutoModelForSequenceClassification`: LlamaForSequenceClassification,
Gemma3TextForSequenceClassification, ...) around the causal LM's own backbone module (the same object, no
copy: adapter target names such as `model.layers.0.self_attn.q_proj` are the ones of the causal LM) and a
fresh `score` Linear(hidden, classes), seeded. The head reads the hidden state of the last real token of a
right-padded row (transformers pools the rightmost token that is not `config.pad_token_id`, set here from
the tokenizer). The LM head is left behind.

    model = with_classifier_head(causal, tokenizer, LABELS, seed=0)
    inject(model, AdapterConfig(method="lora"))   # freezes everything but the adapter ...
    unfreeze_head(model)                           # ... so the head is made trainable again

`save_adapter` then keeps the head beside the adapter (`modules_to_save`, PEFT's word for it) and
`load_adapter` restores it onto a model built the same way."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from govtune.constants import ADAPTER_STATE_ATTR
from govtune.text.class_encoding import is_classifier
from govtune.text.encoding import pad_token_id

HEAD = "score"  # the head module of transformers' decoder *ForSequenceClassification classes


def with_classifier_head(causal: nn.Module, tokenizer, labels: Sequence[str], seed: int = 0) -> nn.Module:
    """The sequence-classification model over `causal`'s backbone, classes `labels` in this order
    (config.id2label), its `score` weight drawn from N(0, initializer_range^2) with its own generator seeded
    by `seed` (the global RNG is left as it was). Call before `inject`."""
    # transformers takes seconds to import: loaded when a head is built, not with `import govtune.heads`
    from transformers import AutoModelForSequenceClassification

    labels = [str(lab) for lab in labels]
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise ValueError(f"a classification head needs two or more distinct labels, got {labels}")
    if getattr(causal, ADAPTER_STATE_ATTR, None) is not None:  # govtune.adapters.inject.adapter_state
        raise ValueError("this model already carries an adapter: build the head first "
                         "(with_classifier_head), then inject the adapter into the model it returns")
    prefix = getattr(causal, "base_model_prefix", "")
    backbone = getattr(causal, prefix, None) if prefix else None
    if not isinstance(backbone, nn.Module):
        raise ValueError(f"{type(causal).__name__} has no backbone module under its base_model_prefix "
                         f"{prefix!r}: a classification head needs a transformers causal LM (Llama, Gemma 3, ...)")
    config = copy.deepcopy(causal.config)
    config.id2label = dict(enumerate(labels))
    config.label2id = {lab: i for i, lab in enumerate(labels)}
    config.pad_token_id = pad_token_id(tokenizer)  # the pooling finds the last token that is not this id
    try:
        # Its own backbone is replaced: built on the meta device, no memory or init is spent on it; and the
        # global RNG is left as it was (the adapter's seeded init after this is the LM option's).
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            model = AutoModelForSequenceClassification.from_config(config)
    except ValueError as e:
        raise ValueError(f"transformers has no sequence-classification class for model type "
                         f"{config.model_type!r} ({str(e).splitlines()[0]}): use head: lm") from None
    score = getattr(model, HEAD, None)
    if getattr(model, "base_model_prefix", None) != prefix or not isinstance(score, nn.Linear) or \
            type(getattr(model, prefix, None)) is not type(backbone):
        raise ValueError(f"{type(model).__name__} is not a backbone plus a `{HEAD}` layer like "
                         f"{type(causal).__name__}'s backbone: head: classifier supports decoder LMs whose "
                         f"classification class is (Llama, Gemma 3, Qwen, BLOOM, ...); use head: lm")
    setattr(model, prefix, backbone)
    ref = next((p for p in backbone.parameters() if p.is_floating_point()), None)
    device, dtype = (ref.device, ref.dtype) if ref is not None else (torch.device("cpu"), torch.float32)
    # built empty: nn.Linear's own init would draw from the global RNG, and ours replaces it
    head = nn.Linear(score.in_features, score.out_features, bias=score.bias is not None, device="meta",
                     dtype=dtype).to_empty(device=device)
    std = getattr(config.get_text_config(), "initializer_range", 0.02)  # transformers' _init_weights for Linear
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=gen) * std)
        if head.bias is not None:
            head.bias.zero_()
    setattr(model, HEAD, head)
    left = [n for n, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    if left:
        raise ValueError(f"{type(model).__name__} has parts besides its backbone and `{HEAD}` ({left[:3]}): "
                         f"head: classifier does not support it; use head: lm")
    return model.train(causal.training)


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The head's parameters (none for a model without a `score` head)."""
    module = getattr(model, HEAD, None)
    return list(module.parameters()) if is_classifier(model) and isinstance(module, nn.Module) else []


def unfreeze_head(model: nn.Module) -> nn.Module:
    """Make the head trainable (inject froze it with the rest of the model)."""
    params = head_parameters(model)
    if not params:
        raise ValueError(f"{type(model).__name__} has no `{HEAD}` head to train: build the model with "
                         f"with_classifier_head(causal, tokenizer, labels)")
    for p in params:
        p.requires_grad_(True)
    return model


def head_labels(model: nn.Module) -> list[str]:
    """The head's classes in its output order (config.id2label)."""
    id2label = model.config.id2label
    return [str(id2label[i]) for i in range(len(id2label))]
