#!/usr/bin/env bash
# Builds the arm64 sysroot of the aarch64 cross build (cmake/toolchain-aarch64.cmake) without
# installing any arm64 package on this machine: the arm64 .debs of t6's libraries and everything
# they need are fetched with `apt-get download` and unpacked with `dpkg-deb -x` into DIR. The host's
# amd64 -dev packages stay as they are (multiarch -dev packages installed with dpkg could displace
# them). Needs the arm64 architecture added once (as root):
#   dpkg --add-architecture arm64 && apt-get update
# and the native part `scripts/install-deps.sh aarch64` (cross compiler, qemu-user-static).
# A no-op when DIR/.complete exists.
#
# usage: scripts/aarch64-sysroot.sh [DIR]   (default build-aarch64/sysroot)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "${1:-}" in -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
dir="${1:-$root/build-aarch64/sysroot}"
[ -f "$dir/.complete" ] && exit 0

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "t6: error: aarch64-sysroot: the arm64 architecture is not added; run as root:" \
    "dpkg --add-architecture arm64 && apt-get update" >&2
  exit 1
fi

# What CMakeLists.txt finds (OpenBLAS OpenMP build, oneDNN, Highway, ICU, cpp-httplib, GoogleTest,
# nlohmann-json) plus the C/C++ runtime the binaries load under qemu. MPI is left out: the cross
# build is single-process (T6_MPI=OFF).
top=(libopenblas-openmp-dev libdnnl-dev libhwy-dev libicu-dev libcpp-httplib-dev libgtest-dev
  libc6-dev libstdc++6 libgomp1 libgcc-s1)
# Arch-independent headers (Architecture: all), fetched as they are.
indep=(nlohmann-json3-dev googletest)

# The closure of the arm64 packages' Depends/PreDepends (apt-cache prints real and virtual names;
# virtual ones start with '<' and are skipped; names without :arm64 are the host's own, left out).
mapfile -t pkgs < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances "${top[@]/%/:arm64}" 2>/dev/null |
  grep -E '^[a-z0-9][^ ]*:arm64$' | sort -u)

debs="$(dirname "$dir")/debs"
mkdir -p "$debs" "$dir"
echo "aarch64-sysroot: fetching ${#pkgs[@]} arm64 packages (+ ${#indep[@]} arch-independent) into $debs"
# (apt warns that a root download runs unsandboxed when _apt cannot write the folder: harmless.)
(cd "$debs" && apt-get download -qq "${pkgs[@]}" "${indep[@]}" 2>&1 >/dev/null | grep -v unsandboxed || true)
for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$dir"; done

# Absolute symlinks in the packages (e.g. usr/lib/aarch64-linux-gnu/libfoo.so -> /lib/...) would
# point into the host; make them relative to the sysroot.
find "$dir" -type l -lname '/*' | while read -r l; do
  t="$(readlink "$l")"
  ln -sfn "$(realpath -m --relative-to="$(dirname "$l")" "$dir$t")" "$l"
done
# What update-alternatives does when libopenblas0-openmp is installed: the BLAS/LAPACK sonames in
# the library folder point at the OpenMP build (the binaries load libopenblas.so.0 by soname).
lib="$dir/usr/lib/aarch64-linux-gnu"
for so in libopenblas.so.0 libblas.so.3 liblapack.so.3; do
  [ -e "$lib/openblas-openmp/$so" ] && ln -sfn "openblas-openmp/$so" "$lib/$so"
done
touch "$dir/.complete"
echo "aarch64-sysroot: ready in $dir"
