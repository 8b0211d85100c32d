#!/usr/bin/env bash
# The whole test suite: installs every dependency part (scripts/install-deps.sh all), builds in
# Release with -Werror and runs every test, then builds the core with AddressSanitizer +
# UndefinedBehaviorSanitizer and runs the core tests there. Test data from ../shared is found
# through $T6_SHARED (default ../shared); with CI set, missing data fails the tests that need it.
# Each pass ends with one line "<pass>: N passed, N failed, N skipped".
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/install-deps.sh all
export T6_SHARED="${T6_SHARED:-$root/../shared}"
jobs="$(nproc)"
# Tests run in parallel; threads that sleep instead of spinning keep oversubscribed runs fast.
export OMP_WAIT_POLICY=PASSIVE

# Runs ctest in build dir $2 with the remaining arguments and prints the pass's summary line from
# its JUnit report (ctest's own summary counts a skipped test as passed).
run_ctest() {
  local name=$1 dir=$2
  shift 2
  local rc=0
  (cd "$dir" && ctest --output-on-failure -j"$jobs" --output-junit ctest-junit.xml "$@") || rc=$?
  local head
  # The <testsuite ...> tag, whose attributes ctest writes one per line.
  head=$(head -n 20 "$dir/ctest-junit.xml" 2>/dev/null | tr '\n\t' '  ' | grep -o '<testsuite [^>]*>' || true)
  attr() { printf '%s\n' "$head" | sed -nE "s/.* $1=\"([0-9]+)\".*/\1/p"; }
  local total failed skipped
  total=$(attr tests) failed=$(attr failures) skipped=$(attr skipped)
  if [ -n "$total" ]; then
    echo "$name: $((total - ${failed:-0} - ${skipped:-0})) passed, ${failed:-0} failed, ${skipped:-0} skipped"
  fi
  return $rc
}

echo "== Release build (-Werror) and all tests"
bash scripts/build.sh "$root/build" -DT6_BUILD_TESTS=ON -DT6_MPI=ON
run_ctest release build --timeout 600

echo "== ASan+UBSan build and core tests"
# -O1 without debug info keeps the instrumented build short; the CLI is not built here.
bash scripts/build.sh "$root/build-asan" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-O1 \
  -DT6_SANITIZE=ON -DT6_BUILD_CLI=OFF -DT6_BUILD_TESTS=ON -DT6_MPI=ON
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  run_ctest asan build-asan -L core --timeout 900
