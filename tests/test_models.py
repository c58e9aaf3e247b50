import json

import pytest
import torch

from govtune.data import DATA_DIR, XNLI_EVAL_ROWS, XNLI_POOL_ROWS
from govtune.models import load_model, tiny_model


@pytest.mark.parametrize("kind", ["tiny-llama", "tiny-bloom"])
def test_tiny_model_runs_and_is_seeded(kind):
    m1, tok = tiny_model(kind, seed=3)
    m2, _ = tiny_model(kind, seed=3)
    batch = tok(["hello", "नमस्ते 你好"], return_tensors="pt", padding=True)
    with torch.no_grad():
        a, b = m1(**batch).logits, m2(**batch).logits
    assert a.shape[:2] == batch["input_ids"].shape and a.shape[-1] == len(tok)
    torch.testing.assert_close(a, b)


def test_missing_model_error_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="local directory"):
        load_model(str(tmp_path / "nope"))


def test_shipped_data_is_aligned_and_split_disjoint():
    rows = {lang: [json.loads(l) for l in open(DATA_DIR / "xnli" / f"{lang}.dev.jsonl", encoding="utf-8")]
            for lang in ("en", "zh", "hi")}
    assert {len(r) for r in rows.values()} == {2490}
    assert all(rows["en"][i]["label"] == rows["zh"][i]["label"] == rows["hi"][i]["label"] for i in range(2490))
    assert not set(XNLI_POOL_ROWS) & set(XNLI_EVAL_ROWS)
    flores = {c: (DATA_DIR / "flores" / f"{c}.dev").read_text(encoding="utf-8").splitlines()
              for c in ("eng_Latn", "zho_Hans", "spa_Latn", "hin_Deva")}
    assert {len(v) for v in flores.values()} == {997}


@pytest.mark.slow
def test_smollm2_loads_offline(smollm2):
    model, tok = smollm2
    assert model.config.model_type == "llama" and not hasattr(model.config, "quantization_config")
    ids = tok("The capital of France is", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert "Paris" in tok.decode(out[0])
