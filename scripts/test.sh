#!/usr/bin/env bash
# The project's whole test run, as CI runs it (.ci/run) and as anyone can run it on a fresh Debian 12:
#   1. install the Debian packages it needs (scripts/install-deps.sh)
#   2. build build/ and run the whole ctest suite (every label)
#   3. build build-asan/ with AddressSanitizer + UndefinedBehaviorSanitizer and run the suite again
#   4. fuzz smoke: every libFuzzer target for FUZZ_SECONDS (default 20) each (scripts/fuzz.sh)
#   5. coverage gate: line coverage of mqttsn/ by the unit tests >= 90% (scripts/coverage.sh)
# Stops at the first failing step.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

start=$SECONDS
steps=()
section() {
  echo
  echo "==== $* ===="
}
done_step() {
  steps+=("$1")
  echo "---- $1: ok ($((SECONDS - start))s elapsed)"
}
on_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    echo
    echo "test.sh: FAILED (exit $rc); steps passed before: ${steps[*]:-none}"
  fi
}
trap on_exit EXIT

jobs=2  # CI has 2 cores

section "1/5 dependencies"
bash scripts/install-deps.sh
done_step deps

section "2/5 build (build/) and test suite"
bash scripts/build.sh build
ctest --test-dir build --output-on-failure --no-tests=error -j "$jobs" -LE soak
done_step tests

section "3/5 ASan + UBSan build (build-asan/) and test suite"
bash scripts/build.sh build-asan -DMQTTSN_SANITIZE=ON
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  ctest --test-dir build-asan --output-on-failure --no-tests=error -j "$jobs" -LE soak
done_step sanitizers

section "4/5 fuzz smoke (${FUZZ_SECONDS:-20}s per fuzzer)"
if command -v clang++ >/dev/null 2>&1; then
  FUZZ_SECONDS=${FUZZ_SECONDS:-20} bash scripts/fuzz.sh
  done_step fuzz
else
  echo "clang++ not found: fuzz smoke skipped"
  steps+=("fuzz(skipped)")
fi

section "5/5 coverage gate (mqttsn/, unit tests)"
bash scripts/coverage.sh
done_step coverage

echo
echo "test.sh: all passed: ${steps[*]} in $((SECONDS - start))s"
