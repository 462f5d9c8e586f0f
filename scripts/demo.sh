#!/usr/bin/env bash
# Sets everything up, then runs the main job on the bundled model: indexes the bundled gallery
# (models/gallery), runs composed queries against it printing the top hits, and evaluates the
# held-out queries (Recall@k, mAP@k). Extra arguments go to examples/retrieval_demo.py, e.g.
# --model BAAI/BGE-VL-base --gallery photos/ --queries my_queries.jsonl for real weights.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python examples/retrieval_demo.py "$@"
