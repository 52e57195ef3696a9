#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) in build-fuzz/ and runs each fuzz_* binary
# for FUZZ_SECONDS (default 20) on a temporary copy of its seed corpus
# tests/fuzz/corpus/<name without fuzz_>/, so the checked-in corpus is never rewritten.
#   FUZZ_SECONDS=600 scripts/fuzz.sh            all fuzzers, 10 minutes each
#   FUZZ_SECONDS=60 scripts/fuzz.sh fuzz_decode  only the named ones
# A crash, leak, timeout or sanitizer report fails the script; the reproducer is kept in
# build-fuzz/artifacts/<name>/ (rerun it with: build-fuzz/bin/<name> FILE).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

seconds=${FUZZ_SECONDS:-20}
build_dir=build-fuzz

if ! command -v clang++ >/dev/null 2>&1; then
  echo "fuzz: clang++ not found (scripts/install-deps.sh installs it)" >&2
  exit 1
fi

bash scripts/build.sh "$build_dir" -DCMAKE_CXX_COMPILER=clang++ -DMQTTSN_FUZZ=ON -DMQTTSN_TESTS=OFF

fuzzers=()
if [ $# -gt 0 ]; then
  for name in "$@"; do
    if [ ! -x "$build_dir/bin/$name" ]; then
      echo "fuzz: no fuzzer $build_dir/bin/$name" >&2
      exit 1
    fi
    fuzzers+=("$build_dir/bin/$name")
  done
else
  for bin in "$build_dir"/bin/fuzz_*; do
    if [ -f "$bin" ] && [ -x "$bin" ]; then fuzzers+=("$bin"); fi
  done
fi

if [ ${#fuzzers[@]} -eq 0 ]; then
  echo "fuzz: no fuzz targets were built (none in tests/fuzz yet), nothing to run"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$build_dir/logs"

failed=()
for bin in "${fuzzers[@]}"; do
  name=$(basename "$bin")
  seeds=tests/fuzz/corpus/${name#fuzz_}
  corpus=$work/$name
  mkdir -p "$corpus" "$build_dir/artifacts/$name"
  if [ -d "$seeds" ]; then
    cp -R "$seeds"/. "$corpus"/
    from="$(find "$corpus" -type f | wc -l) seeds from $seeds"
  else
    from="an empty corpus (no $seeds)"
  fi
  log=$build_dir/logs/$name.log
  echo "fuzz: $name for ${seconds}s on $from"
  if "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build_dir/artifacts/$name/" "$corpus" >"$log" 2>&1; then
    echo "fuzz: $name ok: $(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}') runs," \
      "corpus $(find "$corpus" -type f | wc -l) inputs"
  else
    echo "fuzz: $name FAILED; last lines of $log:" >&2
    tail -n 60 "$log" >&2
    ls -1 "$build_dir/artifacts/$name/" >&2 || true
    failed+=("$name")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} of ${#fuzzers[@]} fuzzers failed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: all ${#fuzzers[@]} fuzzers ran ${seconds}s each without a finding"
