#!/usr/bin/env bash
# Configures (Ninja, RelWithDebInfo unless a -DCMAKE_BUILD_TYPE is given) and builds the project.
# usage: scripts/build.sh [BUILD_DIR] [extra cmake args...]    BUILD_DIR defaults to build/
# A relative BUILD_DIR is taken from the repository root, whatever the current directory.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

build_dir=build
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  build_dir=$1
  shift
fi

cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
cmake --build "$build_dir" -j "$(nproc)"
