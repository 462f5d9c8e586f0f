#!/usr/bin/env bash
# Sets everything up, then runs every test: the C++ suite (ctest: GoogleTest + the install
# consumer test), the sanitizer build of the torch-free layers with their tests and a short run
# of every fuzz target (scripts/fuzz.sh), the decoding tests of a build without OpenCV
# (scripts/test_no_opencv.sh), and the Python suite (pytest, with the server's tests
# over loopback HTTP and the search page in headless Chromium). Exits non-zero if any fails.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
bash scripts/setup_browser.sh || exit 1
status=0
ctest --test-dir build --output-on-failure -j"$(nproc)" || status=1
bash scripts/fuzz.sh || status=1
bash scripts/test_no_opencv.sh || status=1
.venv/bin/python -m pytest tests/python -q -p no:cacheprovider || status=1
exit $status
