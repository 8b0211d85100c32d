#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds in Release with -Werror and runs every test,
# then builds the core with AddressSanitizer + UndefinedBehaviorSanitizer and runs the core tests
# there. Test data from ../shared is found through $T6_SHARED (default ../shared).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/install-deps.sh
export T6_SHARED="${T6_SHARED:-$root/../shared}"
jobs="$(nproc)"
# Tests run in parallel; threads that sleep instead of spinning keep oversubscribed runs fast.
export OMP_WAIT_POLICY=PASSIVE

echo "== Release build (-Werror) and all tests"
bash scripts/build.sh "$root/build"
(cd build && ctest --output-on-failure -j"$jobs" --timeout 600)

echo "== ASan+UBSan build and core tests"
# -O1 without debug info keeps the instrumented build short; the CLI is not built here.
bash scripts/build.sh "$root/build-asan" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-O1 \
  -DT6_SANITIZE=ON -DT6_BUILD_CLI=OFF
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure -j"$jobs" -L core --timeout 900)
