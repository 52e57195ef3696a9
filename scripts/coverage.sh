#!/usr/bin/env bash
# Line coverage of the protocol core (mqttsn/) by the unit tests, with a gate.
# Builds build-coverage/ with gcc and gcov instrumentation, runs `ctest -L unit`, prints a per-file
# table and a summary, writes build-coverage/coverage.html (with annotated sources beside it), and
# fails when line coverage is below COVERAGE_MIN percent (default 90).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

build_dir=build-coverage
min=${COVERAGE_MIN:-90}

bash scripts/build.sh "$build_dir" -DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=Debug \
  -DMQTTSN_COVERAGE=ON -DMQTTSN_SANITIZE=OFF -DMQTTSN_TESTS=ON

# Counters from an earlier run (or from test discovery at build time) must not count.
find "$build_dir" -name '*.gcda' -delete
ctest --test-dir "$build_dir" -L unit --output-on-failure --no-tests=error -j "$(nproc)"

rm -f "$build_dir"/coverage*.html
status=0
gcovr --root . --filter 'mqttsn/' --object-directory "$build_dir" \
  --exclude-unreachable-branches --exclude-throw-branches -j "$(nproc)" \
  --txt --print-summary \
  --html-details "$build_dir/coverage.html" --html-title "mqttsn protocol core coverage" \
  --fail-under-line "$min" \
  "$build_dir" || status=$?

if [ "$status" -ne 0 ]; then
  if [ "$status" -eq 2 ]; then
    echo "coverage: FAILED: line coverage of mqttsn/ is below ${min}% (see $build_dir/coverage.html)" >&2
  else
    echo "coverage: gcovr failed with status $status" >&2
  fi
  exit 1
fi
echo "coverage: ok: line coverage of mqttsn/ is at least ${min}%; report in $build_dir/coverage.html"
