"""Start-up messages of quantisation libraries, kept out of runs that use no quantised base.

govtune imports torchao and bitsandbytes only for a quantised base (govtune.quantization), but when they are
installed (the `quant` and `test` extras) other libraries import them at their own import:
transformers' `modeling_utils` reaches `transformers.quantizers.quantizer_torchao`, which imports torchao, and
`import peft` runs `peft.helpers`, which imports bitsandbytes. Importing them logs, on a CPU-only machine:
- torchao: "Failed to load .../torchao/_C_*.so: Could not load this library" for each kernel library built for
  a GPU or another Python (logger `torchao`);
- torch: "<enum 'KernelPreference'> is an Enum subclass and is now natively supported by torch.compile as an
  opaque value type. Calling register_constant() on Enum subclasses is deprecated ...", once per Enum that
  torchao.utils registers with torch's pytree (logger `torch.utils._pytree`);
- bitsandbytes: "Failed to load CPU gemm_4bit_forward from kernels-community: ..." (its optional hub kernel for
  NF4 on a CPU; logger `bitsandbytes.backends.cpu.ops`).
None of these concerns a run without a quantised base. Each filter below holds exactly one of these messages on
the one logger that writes it (anything else those loggers say passes); `release()`, called when a quantised
base is asked for, logs what was held and lets later ones through. Filters, not a `warnings` filter: the
libraries write through `logging`, and only these messages are meant."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

_TORCHAO_SO = re.compile(r"^Failed to load \S*torchao[/\\]_C[^/\\]*\.so: ")
_ENUM_NOTICE = "is an Enum subclass and is now natively supported by torch.compile as an opaque value type"
_BNB_KERNEL = "Failed to load CPU gemm_4bit_forward from kernels-community: "


def _torchao_enum(record: logging.LogRecord) -> bool:
    cls = record.args[0] if isinstance(record.args, tuple) and record.args else None
    return _ENUM_NOTICE in str(record.msg) and getattr(cls, "__module__", "").startswith("torchao")


# logger name -> which of its records are start-up noise
_MESSAGES: dict[str, Callable[[logging.LogRecord], bool]] = {
    "torchao": lambda r: bool(_TORCHAO_SO.match(r.getMessage())),
    "torch.utils._pytree": _torchao_enum,
    "bitsandbytes.backends.cpu.ops": lambda r: r.getMessage().startswith(_BNB_KERNEL),
}


class _HoldStartupNoise(logging.Filter):
    def __init__(self, matches: Callable[[logging.LogRecord], bool]):
        super().__init__()
        self.matches = matches
        self.held: list[logging.LogRecord] = []
        self.released = False

    def filter(self, record: logging.LogRecord) -> bool:
        if self.released or not self.matches(record):
            return True
        self.held.append(record)
        return False


def install() -> None:
    """Attach the filters (once), before transformers or peft is imported; the loggers may not exist yet."""
    for name, matches in _MESSAGES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _HoldStartupNoise) for f in logger.filters):
            logger.addFilter(_HoldStartupNoise(matches))


def held() -> list[logging.LogRecord]:
    """The messages held so far (none once released)."""
    return [r for f in _filters() for r in f.held]


def release() -> None:
    """A quantised base was asked for: log the held messages now, and let the next ones through."""
    for f in _filters():
        f.released = True
        records, f.held = f.held, []
        for record in records:
            logger = logging.getLogger(record.name)
            if logger.isEnabledFor(record.levelno):
                logger.handle(record)


def _filters() -> list[_HoldStartupNoise]:
    return [f for name in _MESSAGES for f in logging.getLogger(name).filters if isinstance(f, _HoldStartupNoise)]
