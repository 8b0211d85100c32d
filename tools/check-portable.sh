#!/usr/bin/env bash
# Checks that a t6 binary uses wide vector instructions only inside run-time dispatched code:
# every function whose disassembly touches a ymm register (AVX/AVX2) or a zmm or mask register
# (AVX-512) must be a Highway per-target function (namespace N_AVX2 / N_AVX3) or one of t6's
# hand-written kernels for a named instruction set (a name containing "native_bf16" or
# "avx512"). Anything else would run on every CPU and crash with SIGILL on one without it.
#
# x86-64 only: for a binary of another architecture (an aarch64 build, whose NEON baseline every
# ARM64 CPU has) it prints that it skipped and exits with status 77 (CTest's SKIP_RETURN_CODE).
#
# usage: tools/check-portable.sh [BINARY]   (default build/t6; needs objdump from binutils)
set -euo pipefail
bin="${1:-build/t6}"
[ -x "$bin" ] || { echo "check-portable: $bin not found" >&2; exit 2; }
# ELF e_machine (2 bytes at offset 18, little-endian): 62 is x86-64.
machine="$(od -An -tu2 -j18 -N2 "$bin" | tr -d ' ')"
if [ "$machine" != 62 ]; then
  echo "check-portable: skipped: $bin is not an x86-64 binary (ELF machine ${machine:-unknown})"
  exit 77
fi
objdump -d --no-show-raw-insn -C "$bin" | awk '
    /^[0-9a-f]+ <.*>:$/ { fn = substr($0, index($0, "<") + 1); sub(/>:$/, "", fn); next }
    /%ymm|%zmm|%k[1-7]/ {
        isa = ($0 ~ /%zmm|%k[1-7]/) ? "avx512" : "avx2"
        if (!(fn in seen) || isa == "avx512") seen[fn] = isa
    }
    END {
        bad = 0; ok = 0
        for (f in seen) {
            if (f ~ /N_AVX2::|N_AVX3::|native_bf16|avx512/) { ok++; continue }
            printf "not dispatched (%s): %s\n", seen[f], f; bad++
        }
        printf "check-portable: %d functions use AVX2/AVX-512 registers; %d dispatched, %d not\n",
            ok + bad, ok, bad
        exit bad > 0
    }'
