import pytest


@pytest.fixture
def without_kv_cache(monkeypatch):
    """Make a model's forward return no KV cache (as a model without a transformers Cache does)."""
    def patch(model):
        forward = model.forward

        def no_cache(*args, **kwargs):
            res = forward(*args, **kwargs)
            res.past_key_values = None
            return res

        monkeypatch.setattr(model, "forward", no_cache)
    return patch
