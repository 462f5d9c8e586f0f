#!/usr/bin/env bash
# The GPU check, in one go, on a machine with a CUDA PyTorch 2.x in `python3` (this workplace's
# device machine): build bgevl against that libtorch, then run the checks named (default: bench, the
# one that fits one device call; the others on request):
#   bench  bench/gpu_bench.py: the prepared benchmark, about 8 minutes on an H200 (environment;
#          parity on CUDA vs the transformers 4.45.2 fixtures and vs CPU, bf16 vs fp32; BGE-VL-base
#          and -large throughput, model only, end to end from JPEG files and texts, against
#          transformers' best usage and the model card's; BGE-VL-MLLM composed queries at batch 1
#          and 8 with MFU); OUT/gpu_bench.md, OUT/gpu_bench.json, OUT/gpu_bench.log
#   clip   bench/gpu_check.py (CUDA vs CPU vs the transformers fixtures, throughput)
#   mllm   bench/gpu_check_mllm.py (tiny LLaVA-NeXT fixtures, full-size random BGE-VL-MLLM)
#   serve  bench/bench_server.py on BGE-VL-base geometry on the GPU (text requests)
# The GPU build decodes JPEG and PNG files in C++ (libjpeg-turbo, libpng, as the CPU build does):
# JPEG/PNG decoding no longer needs OpenCV (still off there: BMP/WebP/TIFF files are not decoded);
# scripts/make_gpu_deps.sh packs libjpeg, libpng and zlib with ICU and nlohmann-json.
#   bash scripts/make_gpu_deps.sh          # here, once: the dependencies for that machine
#   bash scripts/gpu_check.sh [OUT_DIR] [bench] [clip] [mllm] [serve]   # there (device tool: carry
#                                                    # .devdeps); mllm and bench's MLLM section need
#                                                    # .devdeps/tokenizer.model; bench uses
#                                                    # .devdeps/clip/{vocab.json,merges.txt} (the real
#                                                    # CLIP vocabulary) when present
# A failing check does not stop the later ones; the script exits 1 if any failed (gpu.txt lists each).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-/tmp/bgevl-gpu}}
shift || true
CHECKS=${*:-bench}
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
  -DBGEVL_WITH_DECODING=ON -DCMAKE_PREFIX_PATH="$TORCH_CMAKE;$PYBIND_CMAKE;$DEPS/usr/share/cmake;$DEPS/usr" \
  > "$OUT/cmake.log" 2>&1 || { tail -30 "$OUT/cmake.log"; exit 1; }
grep -h "Image decoding" "$OUT/cmake.log" | tee -a "$OUT/gpu.txt" || true
cmake --build build-gpu -j"$(nproc)" > "$OUT/build.log" 2>&1 || { grep -m20 -A5 error "$OUT/build.log"; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s" | tee -a "$OUT/gpu.txt"
export PYTHONPATH=$PWD/build-gpu/python PYTHONUNBUFFERED=1 BGEVL_TOKENIZER_MODEL=$PWD/.devdeps/tokenizer.model
status=0
for c in $CHECKS; do
  rc=0
  case $c in
    bench) $PY bench/gpu_bench.py --out "$OUT" 2>&1 | tee "$OUT/gpu_bench.log" || rc=$? ;;
    clip) $PY bench/gpu_check.py 2>&1 | tee "$OUT/gpu_check.md" || rc=$? ;;
    mllm) $PY bench/gpu_check_mllm.py 2>&1 | tee "$OUT/gpu_check_mllm.md" || rc=$? ;;
    serve) $PY bench/bench_server.py --bgevl build-gpu/bgevl --model base --device cuda \
             --kinds text --seconds 3 --json "$OUT/server_gpu.json" 2>&1 | tee "$OUT/server_gpu.md" || rc=$? ;;
    *) echo "unknown check '$c' (bench, clip, mllm, serve)" >&2; rc=2 ;;
  esac
  echo "check $c: exit $rc" | tee -a "$OUT/gpu.txt"
  [ "$rc" -eq 0 ] || status=1
done
exit $status
