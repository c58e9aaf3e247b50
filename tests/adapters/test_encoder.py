"""BERT-style encoders: the default targets are the self-attention projections, and an adapted encoder
keeps its outputs at init and merges exactly."""

from __future__ import annotations

import pytest
import torch
from adapter_helpers import perturb
from transformers import BertConfig, BertModel

from govtune.adapters import AdapterConfig, adapter_layers, inject, merge_and_unload


def tiny_bert() -> BertModel:
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=32)
    return BertModel(cfg).eval()


@pytest.mark.parametrize("method", ["lora", "boft", "unitary"])
def test_encoder_default_targets_identity_and_merge(method):
    ids = torch.randint(1, 100, (2, 10), generator=torch.Generator().manual_seed(0))
    model = tiny_bert()
    with torch.no_grad():
        base = model(input_ids=ids).last_hidden_state
    inject(model, AdapterConfig(method=method, r=4, boft_block_size=4), progress=False)
    names = sorted(n.rsplit(".", 1)[-1] for n in adapter_layers(model))
    assert names == ["key", "key", "query", "query", "value", "value"]
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).last_hidden_state, base, atol=2e-5, rtol=0)
    perturb(model)
    with torch.no_grad():
        adapted = model(input_ids=ids).last_hidden_state
        assert (adapted - base).abs().max() > 1e-3
        merged = merge_and_unload(model)
        torch.testing.assert_close(merged(input_ids=ids).last_hidden_state, adapted, atol=1e-4, rtol=1e-4)
