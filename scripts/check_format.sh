#!/usr/bin/env bash
# clang-format --dry-run --Werror over every C++ source of the project (.clang-format at the
# root); the test command runs it. `bash scripts/check_format.sh --fix` rewrites the files instead.
set -euo pipefail
cd "$(dirname "$0")/.."
# The style is clang-format 14's (Debian 12's, what scripts/setup.sh installs); other versions
# format some constructs differently, so they are not asked to judge (exit 77: ctest "skipped").
version=$(clang-format --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1 || true)
if [ "${version%%.*}" != "14" ]; then
  echo "check_format: clang-format 14 needed, found '${version:-none}'; not checked" >&2
  exit 77
fi
mapfile -t files < <(git ls-files --cached --others --exclude-standard -- '*.cpp' '*.h' | sort -u)
if [ "${1:-}" = "--fix" ]; then
  clang-format -i "${files[@]}"
  exit 0
fi
clang-format --dry-run --Werror "${files[@]}"
echo "clang-format: ${#files[@]} C++ files match .clang-format"
