"""torchao's and bitsandbytes' start-up messages stay out of runs without a quantised base, and come back when
one is asked for. Each check runs in a fresh interpreter: the messages are written once, at import."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")
# The messages govtune.library_logs holds, as the libraries print them.
NOISE = ("Failed to load CPU gemm_4bit_forward from kernels-community", "is an Enum subclass and is now natively "
         "supported by torch.compile", "torchao/_C")

STUDY_AND_EVAL = """
import json, sys
import govtune.study.cell, govtune.study.grid  # the study path, as `govtune run` imports it
from govtune import library_logs
from govtune.evaluation import evaluate_xnli
from govtune.models import tiny_model
from govtune.tasks import load_xnli

metrics, preds = evaluate_xnli(*tiny_model("tiny-llama"), {"en": load_xnli("en", rows=range(1245, 1249))},
                               robustness=False, progress=False)
print(json.dumps({"examples": len(preds), "imported": [m for m in ("torchao", "bitsandbytes") if m in sys.modules],
                  "held": [r.getMessage() for r in library_logs.held()]}))
"""


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": SRC})


def _needs_a_quant_library():
    if not any(importlib.util.find_spec(m) for m in ("torchao", "bitsandbytes")):
        pytest.skip("neither torchao nor bitsandbytes is installed: nothing of theirs to hold")


def test_study_and_eval_print_none_of_their_startup_messages():
    _needs_a_quant_library()
    done = _python(STUDY_AND_EVAL)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["examples"] == 4 and out["imported"]  # the eval ran and transformers / peft imported them
    for message in NOISE:
        assert message not in done.stderr, done.stderr


def test_a_quantised_base_shows_them_and_other_messages_always_pass():
    _needs_a_quant_library()
    if importlib.util.find_spec("bitsandbytes") is None:
        pytest.skip("nf4 needs bitsandbytes")
    done = _python(STUDY_AND_EVAL + """
import logging
logging.getLogger("torchao").warning("Failed to load the settings file")  # theirs, but not start-up noise
print("--- before quantize", file=sys.stderr, flush=True)
from govtune.quantization import check_scheme
check_scheme("nf4")
print(json.dumps({"held_after": len(library_logs.held())}))
""")
    assert done.returncode == 0, done.stderr
    first, last = (json.loads(line) for line in done.stdout.strip().splitlines()[-2:])
    before, after = done.stderr.split("--- before quantize")
    assert "Failed to load the settings file" in before
    for message in NOISE:
        assert message not in before, before
    for message in first["held"]:  # every held message is printed once a quantised base is asked for
        assert message in after
    assert last["held_after"] == 0
