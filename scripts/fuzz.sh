#!/usr/bin/env bash
# The sanitizer build of the torch-free layers (io core, text, vision) and their fuzz targets:
# configures build-san/ with clang 14 (-DBGEVL_TORCH_FREE_ONLY=ON -DBGEVL_SANITIZE=ON
# -DBGEVL_BUILD_FUZZERS=ON, RelWithDebInfo; ccache when present), builds it, runs its ctest
# (the torch-free GoogleTest suites and one replay of each committed corpus) under ASan + UBSan
# (UB fatal, LeakSanitizer on), then each libFuzzer target of tests/fuzz for BGEVL_FUZZ_SECONDS
# (default 10) seconds on a copy of its corpus (nothing is written into the repository). Exits
# non-zero on a failed build or test, or when a target finds a crash, a leak, a timeout or an
# out-of-memory; the inputs that did are copied to $BGEVL_FUZZ_FINDINGS (/tmp/fuzz-findings).
#
#   scripts/fuzz.sh                 build, tests, 10 s per target (what CI runs)
#   scripts/fuzz.sh --long N        build, then each target for N executions (-runs=N), two at a
#                                   time (BGEVL_FUZZ_PARALLEL), with the figures for the README
#   scripts/fuzz.sh [opts] T1 T2    only these targets (names without fuzz_)
# Options: --no-build (use build-san as it is), --no-tests (skip ctest), --keep (keep the work
# folder with the grown corpora). Environment: BGEVL_FUZZ_SECONDS, BGEVL_FUZZ_PARALLEL,
# BGEVL_FUZZ_TIMEOUT (per input: 10 s, 60 s with --long), BGEVL_FUZZ_FINDINGS, BGEVL_JOBS (build
# and ctest jobs, default 2), BGEVL_SAN_BUILD_DIR.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD

BUILD=${BGEVL_SAN_BUILD_DIR:-build-san}
[[ $BUILD == /* ]] || BUILD=$ROOT/$BUILD
SECS=${BGEVL_FUZZ_SECONDS:-10}
JOBS=${BGEVL_JOBS:-2}
FINDINGS=${BGEVL_FUZZ_FINDINGS:-/tmp/fuzz-findings}
LONG=0
BUILD_IT=1
TESTS=1
KEEP=0
targets=()
while (($#)); do
  case "$1" in
    --long)
      LONG=${2:?--long needs a number of executions}
      shift
      ;;
    --no-build) BUILD_IT=0 ;;
    --no-tests) TESTS=0 ;;
    --keep) KEEP=1 ;;
    -h | --help)
      sed -n '2,18p' "$0"
      exit 0
      ;;
    -*)
      echo "fuzz.sh: unknown option $1" >&2
      exit 2
      ;;
    *) targets+=("${1#fuzz_}") ;;
  esac
  shift
done
# The per-input time limit (wall clock): 10 s; 60 s for long runs, which run niced beside other
# work on a shared machine, where a 10-s stall of a starved process is no hang.
if ((LONG > 0)); then
  PARALLEL=${BGEVL_FUZZ_PARALLEL:-2}
  TIMEOUT=${BGEVL_FUZZ_TIMEOUT:-60}
else
  PARALLEL=${BGEVL_FUZZ_PARALLEL:-1}
  TIMEOUT=${BGEVL_FUZZ_TIMEOUT:-10}
fi

ALL_TARGETS=(safetensors_header shard_index json_configs tokenizer_configs clip_vocab clip_encode
             sentencepiece_model mistral_encode image_decode)
((${#targets[@]})) || targets=("${ALL_TARGETS[@]}")

# Per target: the dictionary and the largest input (-max_len; above every seed).
dict_of() {
  case "$1" in
    clip_encode | mistral_encode) echo text.dict ;;
    sentencepiece_model) echo sentencepiece.dict ;;
    image_decode) echo image.dict ;;
    *) echo json.dict ;;
  esac
}
max_len_of() {
  case "$1" in
    clip_encode | mistral_encode) echo 1024 ;;
    clip_vocab) echo 8192 ;;
    sentencepiece_model | image_decode) echo 16384 ;;
    *) echo 4096 ;;
  esac
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

status=0

# ---- configure and build --------------------------------------------------------------------
if ((BUILD_IT)); then
  for tool in clang++-14 cmake; do
    command -v "$tool" >/dev/null || {
      echo "fuzz.sh: $tool not found (Debian: clang-14 libclang-rt-14-dev cmake; scripts/setup.sh)" >&2
      exit 1
    }
  done
  t0=$(now)
  gen=()
  command -v ninja >/dev/null && [ ! -f "$BUILD/Makefile" ] && gen=(-G Ninja)
  launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S . -B "$BUILD" "${gen[@]}" "${launcher[@]}" -DCMAKE_CXX_COMPILER=clang++-14 \
    -DBGEVL_TORCH_FREE_ONLY=ON -DBGEVL_SANITIZE=ON -DBGEVL_BUILD_FUZZERS=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 1
  cmake --build "$BUILD" -j"$JOBS" || exit 1
  echo "fuzz.sh: configure + build of $BUILD: $(elapsed "$t0") s"
fi

# ---- the torch-free tests and the corpus replays under the sanitizers ------------------------
if ((TESTS)); then
  t0=$(now)
  ctest --test-dir "$BUILD" --output-on-failure -j"$JOBS" || status=1
  echo "fuzz.sh: ctest (ASan + UBSan + LSan) of $BUILD: $(elapsed "$t0") s"
fi

# ---- the fuzz targets -----------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bgevl-fuzz.XXXXXX")
SCRATCH_BASE=/dev/shm
[ -d /dev/shm ] && [ -w /dev/shm ] || SCRATCH_BASE=$WORK
export BGEVL_FUZZ_TMP
BGEVL_FUZZ_TMP=$(mktemp -d "$SCRATCH_BASE/bgevl-fuzz-run.XXXXXX")
cleanup() {
  rm -rf "$BGEVL_FUZZ_TMP"
  if ((KEEP)) || ((LONG > 0)); then
    echo "fuzz.sh: work folder (grown corpora, logs) kept: $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

# One target: writes $WORK/<t>.log and $WORK/<t>.summary (one line).
run_target() {
  local t=$1 bin="$BIN_DIR/fuzz_$1"
  local corpus="$WORK/corpus/$t" art="$WORK/artifacts/$t/" log="$WORK/$t.log"
  mkdir -p "$corpus" "$art"
  cp "$ROOT/tests/fuzz/corpus/$t/"* "$corpus/"
  local seeds
  seeds=$(find "$corpus" -type f | wc -l)
  local limit=(-max_total_time="$SECS")
  ((LONG > 0)) && limit=(-runs="$LONG")
  local t0 rc
  t0=$(now)
  if [ ! -x "$bin" ]; then
    echo "fuzz.sh: $bin missing (build $BUILD first)" >"$log"
    rc=127
  else
    "$bin" "$corpus" "${limit[@]}" -timeout="$TIMEOUT" -rss_limit_mb=2048 -max_len="$(max_len_of "$t")" \
      -dict="$ROOT/tests/fuzz/$(dict_of "$t")" -artifact_prefix="$art" -print_final_stats=1 \
      >"$log" 2>&1
    rc=$?
  fi
  local secs execs rate units
  secs=$(elapsed "$t0")
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  units=$(find "$corpus" -type f | wc -l)
  local crashes leaks timeouts ooms
  crashes=$(find "$art" -name 'crash-*' -o -name 'deadly-*' | wc -l)
  leaks=$(find "$art" -name 'leak-*' | wc -l)
  timeouts=$(find "$art" -name 'timeout-*' | wc -l)
  ooms=$(find "$art" -name 'oom-*' | wc -l)
  local verdict=OK
  if ((rc != 0 || crashes + leaks + timeouts + ooms > 0)); then
    verdict=FAILED
    ((crashes + leaks + timeouts + ooms == 0)) && crashes=1  # a failure with no input saved
    mkdir -p "$FINDINGS/$t"
    cp "$art"* "$FINDINGS/$t/" 2>/dev/null
    cp "$log" "$FINDINGS/$t/fuzz_$t.log"
  fi
  printf '%-28s %-6s executions %10s  exec/s %7s  time %7s s  crashes %d  leaks %d  timeouts %d  ooms %d  corpus %d -> %d  (rc %d)\n' \
    "fuzz_$t" "$verdict" "${execs:-0}" "${rate:-0}" "$secs" "$crashes" "$leaks" "$timeouts" \
    "$ooms" "$seeds" "$units" "$rc" >"$WORK/$t.summary"
  cat "$WORK/$t.summary"
}

BIN_DIR="$BUILD/fuzz"
if ((LONG > 0)); then
  # A copy of the binaries: rebuilding build-san meanwhile does not touch the running targets.
  mkdir -p "$WORK/bin"
  for t in "${targets[@]}"; do cp "$BIN_DIR/fuzz_$t" "$WORK/bin/" 2>/dev/null; done
  BIN_DIR="$WORK/bin"
  echo "fuzz.sh: long run, $LONG executions per target, $PARALLEL at a time, -timeout=$TIMEOUT; logs in $WORK"
  echo "fuzz.sh: started $(date -u '+%Y-%m-%d %H:%M UTC'), sources at $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' + uncommitted changes')"
else
  echo "fuzz.sh: smoke run, $SECS s per target"
fi
t0=$(now)
running=0
for t in "${targets[@]}"; do
  if ((PARALLEL > 1)); then
    run_target "$t" &
    running=$((running + 1))
    if ((running >= PARALLEL)); then
      wait -n
      running=$((running - 1))
    fi
  else
    run_target "$t"
  fi
done
wait
fuzz_secs=$(elapsed "$t0")

echo "---- fuzz summary ----"
failed=0
for t in "${targets[@]}"; do
  cat "$WORK/$t.summary"
  if grep -q ' FAILED ' "$WORK/$t.summary"; then
    failed=$((failed + 1))
    echo "  log tail of fuzz_$t (full log and inputs in $FINDINGS/$t):"
    grep -E 'ERROR|runtime error|SUMMARY|invariant|deadly|uncaught|Test unit written|ALARM|out-of-memory' \
      "$WORK/$t.log" | head -20 | sed 's/^/    /'
  fi
done
if ((failed)); then
  status=1
  echo "fuzz: $failed of ${#targets[@]} targets FAILED ($fuzz_secs s); reproducers in $FINDINGS"
else
  echo "fuzz: all ${#targets[@]} targets passed: 0 crashes, 0 leaks, 0 timeouts, 0 ooms ($fuzz_secs s)"
fi
exit $status
