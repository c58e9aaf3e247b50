"""`AdapterConfig`: one dataclass for every adapter method, validated on construction."""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from govtune.constants import METHODS

GA_DIRECTIONS = ("arb2r", "sigma_sqrt")
LAM_SCHEDULES = ("adaptive", "fixed", "anneal", "learned")
BOFT_SIDES = ("output", "input")

# Attention projections per `config.model_type`: the papers adapt attention only.
DEFAULT_TARGETS: dict[str, list[str]] = {
    **{t: ["q_proj", "k_proj", "v_proj", "o_proj"]
       for t in ("llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2",
                 "gemma3_text", "olmo", "olmo2", "smollm3", "granite", "starcoder2", "phi", "cohere")},
    "phi3": ["qkv_proj", "o_proj"],
    "bloom": ["query_key_value"],
    "falcon": ["query_key_value"],
    "gpt_neox": ["query_key_value"],
    "gpt2": ["c_attn"],
    "gpt_bigcode": ["c_attn"],
    "opt": ["q_proj", "k_proj", "v_proj", "out_proj"],
    "xglm": ["q_proj", "k_proj", "v_proj", "out_proj"],
    "t5": ["q", "k", "v", "o"],
    "mt5": ["q", "k", "v", "o"],
    # encoders: self-attention projections only ("dense" would also catch the feed-forward layers)
    **{t: ["query", "key", "value"] for t in ("bert", "roberta", "xlm-roberta", "electra")},
    "distilbert": ["q_lin", "k_lin", "v_lin"],
}


def _check_choice(name: str, value: Any, options: tuple[str, ...]) -> None:
    if value not in options:
        close = difflib.get_close_matches(value, options, n=1, cutoff=0.5) if isinstance(value, str) else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown {name} {value!r}{hint}: use one of {', '.join(options)}")


@dataclass
class AdapterConfig:
    """What to adapt and how. Defaults follow the papers (r = 16, alpha = 32, m = 3 butterfly factors)."""

    method: str = "lora"  # one of METHODS
    r: int = 16  # LoRA rank (lora, lora_ga, hybrid)
    alpha: float = 32.0  # LoRA scale s = alpha / r
    # rsLoRA (Kalajdzievski, 2023): s = alpha / sqrt(r), as PEFT's `use_rslora`; the LoRA-GA authors'
    # reproduce recipe turns it on. Off by default, as in PEFT (it changes the scale of every LoRA branch).
    use_rslora: bool = False
    # None = the model type's attention projections (DEFAULT_TARGETS); a list of module names (a module
    # matches when its full name equals the entry or ends with "." + entry, as in PEFT); or a regex string
    # matched against full module names with re.fullmatch.
    target_modules: list[str] | str | None = None
    boft_factors: int = 3  # m: butterfly components in R (boft, hybrid)
    boft_block_size: int = 8  # b: size of each orthogonal block; must divide d_out (d_in for side "input")
    # Which side of W0 the BOFT rotation acts on: "output" (y = R y0, W <- R W0, the bias rotated too) or
    # "input" (y = W0 R x + b, W <- W0 R: PEFT's BOFT, which `export_peft` can write). The hybrid rotates
    # y0, so it is "output" only.
    boft_side: str = "output"
    # Rebuild the rotated weight R W0 (boft, hybrid) in backward instead of storing it: one weight-sized
    # tensor less per adapted layer, for a few small products (no tokens involved) per layer and step.
    boft_checkpoint: bool = True
    # Recompute the structured unitary map U x (unitary) in backward instead of storing its FFT and
    # reflection intermediates: autograd keeps only x, as for LoRA, for one more U x per layer and step.
    unitary_checkpoint: bool = True
    ga_batches: int = 8  # LoRA-GA: calibration batches averaged into the gradient estimate
    ga_gamma: float = 16.0  # LoRA-GA "stable" scale d_out^(1/4) / sqrt(gamma) (arb2r direction)
    ga_direction: str = "arb2r"  # "arb2r" (official code) or "sigma_sqrt" (papers' U Sigma^1/2 form)
    ga_svd_niter: int = 4  # subspace iterations of the randomised SVD
    # hybrid: "adaptive" (gradient norms), "fixed", "anneal", or "learned" (lam = lam_min + (1 - 2 lam_min)
    # sigmoid(phi), phi trained on the validation loss only; needs validation data in training)
    lam_schedule: str = "adaptive"
    lam_init: float = 0.5  # hybrid adaptive and learned: lam before the first update
    lam_fixed: float = 0.5  # hybrid fixed schedule
    lam_anneal: tuple[float, float] = (0.75, 0.25)  # hybrid anneal: lam from start to end over training
    lam_ema: float = 0.9  # hybrid adaptive: lam <- ema * lam + (1 - ema) * raw; 0 = the papers' raw rule
    lam_min: float = 0.05  # hybrid: lam clamped to [lam_min, 1 - lam_min]
    # hybrid learned: every mixer_every optimiser steps, one validation batch updates phi (and only phi)
    # with its own Adam at mixer_lr (first-order bilevel, as in DARTS). An Adam step moves phi by about
    # mixer_lr, and lam by at most (1 - 2 lam_min) mixer_lr / 4.
    mixer_lr: float = 0.05
    mixer_every: int = 1
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes saved with the adapter

    def __post_init__(self) -> None:
        _check_choice("method", self.method, METHODS)
        if not (isinstance(self.r, int) and self.r >= 1):
            raise ValueError(f"r must be a positive integer, got {self.r!r}")
        if not self.alpha > 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha!r}")
        if not isinstance(self.use_rslora, bool):
            raise ValueError(f"use_rslora must be true or false, got {self.use_rslora!r}")
        if isinstance(self.target_modules, str):
            try:
                re.compile(self.target_modules)
            except re.error as e:
                raise ValueError(f"target_modules {self.target_modules!r} is not a valid regex ({e}); pass "
                                 f"a list of module names instead, e.g. ['q_proj', 'v_proj']") from e
        elif self.target_modules is not None:
            self.target_modules = list(self.target_modules)
            if not self.target_modules or not all(isinstance(t, str) and t for t in self.target_modules):
                raise ValueError(f"target_modules must be None, a regex string or a non-empty list of module "
                                 f"names, got {self.target_modules!r}")
        if not (isinstance(self.boft_factors, int) and self.boft_factors >= 1):
            raise ValueError(f"boft_factors must be an integer >= 1, got {self.boft_factors!r}")
        if not (isinstance(self.boft_block_size, int) and self.boft_block_size >= 2):
            raise ValueError(f"boft_block_size must be an integer >= 2, got {self.boft_block_size!r}")
        if self.boft_side not in BOFT_SIDES:
            raise ValueError(f"unknown boft_side {self.boft_side!r}: use one of {', '.join(BOFT_SIDES)}")
        if self.boft_side != "output" and self.method != "boft":
            raise ValueError(f"boft_side={self.boft_side!r} is for method 'boft'; {self.method!r} rotates the "
                             f"layer output: leave boft_side at 'output'")
        if not (isinstance(self.ga_batches, int) and self.ga_batches >= 1):
            raise ValueError(f"ga_batches must be an integer >= 1, got {self.ga_batches!r}")
        if not self.ga_gamma > 0:
            raise ValueError(f"ga_gamma must be > 0, got {self.ga_gamma!r}")
        _check_choice("ga_direction", self.ga_direction, GA_DIRECTIONS)
        _check_choice("lam_schedule", self.lam_schedule, LAM_SCHEDULES)
        if not 0 <= self.lam_min < 0.5:
            raise ValueError(f"lam_min must be in [0, 0.5), got {self.lam_min!r}")
        if not 0 <= self.lam_ema < 1:
            raise ValueError(f"lam_ema must be in [0, 1) (0 = no smoothing), got {self.lam_ema!r}")
        if not self.mixer_lr > 0:
            raise ValueError(f"mixer_lr must be > 0 (the learned mixer's Adam learning rate), got {self.mixer_lr!r}")
        if not (isinstance(self.mixer_every, int) and self.mixer_every >= 1):
            raise ValueError(f"mixer_every must be an integer >= 1 (optimiser steps between mixer updates), "
                             f"got {self.mixer_every!r}")
        if self.lam_schedule == "learned" and not self.lam_min < self.lam_init < 1 - self.lam_min:
            raise ValueError(f"lam_schedule 'learned' starts from lam_init, which must lie strictly inside "
                             f"(lam_min, 1 - lam_min) = ({self.lam_min}, {1 - self.lam_min}) for sigmoid(phi) to "
                             f"reach it; got lam_init={self.lam_init!r}")
        self.lam_anneal = tuple(float(v) for v in self.lam_anneal)  # type: ignore[assignment]
        for name, value in (("lam_init", self.lam_init), ("lam_fixed", self.lam_fixed),
                            ("lam_anneal[0]", self.lam_anneal[0]), ("lam_anneal[1]", self.lam_anneal[-1])):
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if len(self.lam_anneal) != 2:
            raise ValueError(f"lam_anneal must be (start, end), got {self.lam_anneal!r}")

    @property
    def scaling(self) -> float:
        return self.alpha / (math.sqrt(self.r) if self.use_rslora else self.r)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lam_anneal"] = list(self.lam_anneal)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AdapterConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown AdapterConfig fields {unknown}: valid fields are {sorted(known)}")
        return cls(**d)
