#!/usr/bin/env bash
# Sets everything up, then runs the model card's composed-retrieval example on the bundled
# tiny model (random weights). Extra arguments go to examples/composed_retrieval.py,
# e.g. --model BAAI/BGE-VL-base for real weights.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python examples/composed_retrieval.py "$@"
