#!/usr/bin/env bash
# Cross-builds t6 and its core tests for aarch64 Linux (cmake/toolchain-aarch64.cmake) and runs the
# core test suite under qemu-aarch64 (qemu-user-static) with the arm64 sysroot: the kernels with
# their SIMD per-target tests (NEON and scalar against the same references and tolerances as on
# x86), the model gradient checks, conformance, decode == forward, tokenizer, checkpoint and
# data-format tests. Ends with "t6 info --system" under qemu and one line
# "aarch64: N passed, N failed, N skipped".
#
# Needs, once: scripts/install-deps.sh aarch64 (cross compiler, qemu) and, as root,
# `dpkg --add-architecture arm64 && apt-get update` for scripts/aarch64-sysroot.sh (run from
# here: arm64 .debs unpacked into build-aarch64/sysroot, nothing arm64 installed).
# Emulated run times say nothing about ARM speed. Not part of scripts/test.sh (CI's time budget).
#
# usage: scripts/test-aarch64.sh [CTEST_ARGS...]   (e.g. -R 'Simd|Conformance'; default:
#        -L 'core|simd', the core tests and the conformance/training/decoding reruns at T6_SIMD=scalar)
# env:   T6_AARCH64_BUILD (default build-aarch64/build), T6_AARCH64_OPT (default -O1: a short
#        build; the tests do not depend on it), T6_SHARED (default ../shared)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
case "${1:-}" in -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
for tool in aarch64-linux-gnu-g++ qemu-aarch64-static cmake ninja; do
  command -v "$tool" >/dev/null ||
    { echo "t6: error: test-aarch64: $tool not found: run scripts/install-deps.sh aarch64" >&2; exit 1; }
done
sysroot="$root/build-aarch64/sysroot"
bash scripts/aarch64-sysroot.sh "$sysroot"
build="${T6_AARCH64_BUILD:-$root/build-aarch64/build}"
export T6_SHARED="${T6_SHARED:-$root/../shared}"
export QEMU_LD_PREFIX="$sysroot"  # the arm64 loader and libraries for anything run under qemu
export OMP_WAIT_POLICY=PASSIVE

# MPI off: the cross build is single-process (the arm64 Open MPI is not in the sysroot). The
# optimisation level comes through the Debug configuration's flags (no -g).
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_TOOLCHAIN_FILE="$root/cmake/toolchain-aarch64.cmake" \
  -DT6_AARCH64_SYSROOT="$sysroot" -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_FLAGS_DEBUG="${T6_AARCH64_OPT:--O1}" -DT6_WERROR=ON -DT6_BUILD_TESTS=ON \
  -DT6_MPI=OFF >/dev/null
# t6 and the core test programs (not the test_cli* ones, which start t6 as a subprocess).
mapfile -t tests < <(cd tests && ls test_*.cpp | sed 's/\.cpp$//' | grep -v -e '^test_cli' -e '^test_util$')
cmake --build "$build" -j"$(nproc)" --target t6 "${tests[@]}"

echo "== t6 info --system (qemu-aarch64)"
qemu-aarch64-static -L "$sysroot" "$build/t6" info --system

[ $# -gt 0 ] || set -- -L 'core|simd'
echo "== tests under qemu-aarch64 (ctest $*)"
rc=0
(cd "$build" && ctest --output-on-failure -j"$(nproc)" --timeout 1800 --output-junit ctest-junit.xml "$@") || rc=$?
# The pass's summary from ctest's JUnit report (ctest's own counts a skipped test as passed), as
# scripts/test.sh prints it.
head=$(head -n 20 "$build/ctest-junit.xml" 2>/dev/null | tr '\n\t' '  ' | grep -o '<testsuite [^>]*>' || true)
attr() { printf '%s\n' "$head" | sed -nE "s/.* $1=\"([0-9]+)\".*/\1/p"; }
total=$(attr tests) failed=$(attr failures) skipped=$(attr skipped)
echo "aarch64: $((${total:-0} - ${failed:-0} - ${skipped:-0})) passed, ${failed:-0} failed, ${skipped:-0} skipped"
exit $rc
