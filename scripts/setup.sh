#!/usr/bin/env bash
# Sets up bgevl on Debian 12, idempotently: the Debian packages that are missing, a Release
# build in build/, and .venv (Debian's python3 with its site packages, so Debian's torch is
# visible) with the bgevl package installed into it by pip (pyproject.toml + setup.py, offline,
# reusing build/: `pip install --no-build-isolation .`).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(build-essential cmake pkg-config git clang-format clang-14 libclang-rt-14-dev
          libtorch-dev python3-torch libopenblas0-openmp
          pybind11-dev python3-dev python3-venv python3-numpy python3-pil python3-pytest
          libopencv-dev libjpeg-dev libpng-dev libtiff-dev libicu-dev nlohmann-json3-dev libgtest-dev
          libfaiss-dev libcpp-httplib-dev curl python3-setuptools python3-wheel
          libcurl4-openssl-dev python3-dask python3-distributed python3-tqdm)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

JOBS=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE=/usr/bin/python3 >/dev/null
cmake --build build -j"$JOBS"

[ -x .venv/bin/python ] || /usr/bin/python3 -m venv --system-site-packages .venv
BGEVL_CMAKE_BUILD_DIR="$PWD/build" .venv/bin/python -m pip install -q --no-index --no-build-isolation \
  --disable-pip-version-check . >/dev/null
(cd / && "$OLDPWD/.venv/bin/python" -c "import bgevl; print('setup: bgevl', bgevl.__version__, 'installed in .venv')")
