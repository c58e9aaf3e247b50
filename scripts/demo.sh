#!/usr/bin/env bash
# Installs what govtune needs, then runs the embedded default study (CPU, offline): Gemma 3 270M
# on the shipped XNLI and FLORES samples. Extra arguments are config overrides (key=value).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
govtune run configs/demo.yaml --out runs/demo --resume "$@"
