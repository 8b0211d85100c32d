#!/usr/bin/env bash
# Configures and builds t6. Usage: scripts/build.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
shift || true
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DT6_WERROR=ON "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
