#!/usr/bin/env bash
# The GPU check, in one go, on a machine with a CUDA PyTorch 2.x in `python3` (this workplace's
# device machine): build bgevl against that libtorch (no OpenCV there: images go in as PIL
# pixels), then run bench/gpu_check.py (CUDA vs CPU vs the transformers fixtures, throughput).
#   bash scripts/make_gpu_deps.sh          # here, once: ICU + nlohmann-json for that machine
#   bash scripts/gpu_check.sh [OUT_DIR] [clip] [mllm] [serve]   # there (device tool: carry
#                                                    # .devdeps); mllm needs .devdeps/tokenizer.model
# serve: bench/bench_server.py on BGE-VL-base geometry on the GPU (text requests only while that
# build has no file decoding).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-/tmp/bgevl-gpu}}
shift || true
CHECKS=${*:-clip mllm serve}
mkdir -p "$OUT"
DEPS=/tmp/bgevl-deps
mkdir -p $DEPS && tar -C $DEPS -xJf .devdeps/gpu-deps.tar.xz
export LD_LIBRARY_PATH=$DEPS/usr/lib:${LD_LIBRARY_PATH:-}
PY=$(command -v python3)
TORCH_CMAKE=$($PY -c "import torch; print(torch.utils.cmake_prefix_path)")
PYBIND_CMAKE=$($PY -m pybind11 --cmakedir)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
$PY -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"
t0=$(date +%s)
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DBGEVL_WITH_OPENCV=OFF -DBGEVL_BUILD_TESTS=OFF \
  -DBGEVL_USE_PCH=ON -DPython_EXECUTABLE="$PY" -DICU_ROOT=$DEPS/usr \
  -DCMAKE_PREFIX_PATH="$TORCH_CMAKE;$PYBIND_CMAKE;$DEPS/usr/share/cmake" > "$OUT/cmake.log" 2>&1 \
  || { tail -30 "$OUT/cmake.log"; exit 1; }
cmake --build build-gpu -j"$(nproc)" > "$OUT/build.log" 2>&1 || { grep -m20 -A5 error "$OUT/build.log"; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s" | tee -a "$OUT/gpu.txt"
export PYTHONPATH=$PWD/build-gpu/python PYTHONUNBUFFERED=1 BGEVL_TOKENIZER_MODEL=$PWD/.devdeps/tokenizer.model
for c in $CHECKS; do
  case $c in
    clip) $PY bench/gpu_check.py 2>&1 | tee "$OUT/gpu_check.md" ;;
    mllm) $PY bench/gpu_check_mllm.py 2>&1 | tee "$OUT/gpu_check_mllm.md" ;;
    serve) $PY bench/bench_server.py --bgevl build-gpu/bgevl --model base --device cuda \
             --kinds text --seconds 3 --json "$OUT/server_gpu.json" 2>&1 | tee "$OUT/server_gpu.md" ;;
  esac
done
