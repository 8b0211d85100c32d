#!/usr/bin/env bash
# Fetches the official OpenAI JavaScript client, openai@6.49.0 (no dependencies), once, at setup
# time (`npm pack`), checks the tarball against its pinned SHA-256 and unpacks it to
#   ${T6_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/t6}/openai/node_modules/openai
# where tests/test_cli_serve_openai.cpp finds it for tools/openai_client_test.mjs. Test-only: t6
# itself never runs JavaScript or fetches anything.
# Usage: tools/fetch-openai-npm.sh [DEST_DIR]
set -euo pipefail

PKG="openai@6.49.0"
TARBALL="openai-6.49.0.tgz"
SHA_TARBALL="e48de0f4c5dbecebdeb864233f5ea49be07cd3e0ff3bd3e1e6745dc5e168cced"

cache_root="${T6_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/t6}"
dest="${1:-$cache_root/openai}"
pkg_dir="$dest/node_modules/openai"

if [ -f "$pkg_dir/.t6-sha256" ] && [ "$(cat "$pkg_dir/.t6-sha256")" = "$SHA_TARBALL" ]; then
    echo "$PKG already in $pkg_dir"
    exit 0
fi

command -v npm >/dev/null || { echo "fetch-openai-npm: npm not found (apt-get install npm)" >&2; exit 1; }
mkdir -p "$dest/node_modules"
work="$(mktemp -d "$dest/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "$PKG" >/dev/null)
got="$(sha256sum "$work/$TARBALL" | cut -d' ' -f1)"
if [ "$got" != "$SHA_TARBALL" ]; then
    echo "fetch-openai-npm: $TARBALL has SHA-256 $got, expected $SHA_TARBALL" >&2
    exit 1
fi
tar -xzf "$work/$TARBALL" -C "$work"
echo "$SHA_TARBALL" >"$work/package/.t6-sha256"
rm -rf "$pkg_dir"
mv "$work/package" "$pkg_dir"
echo "$PKG installed in $pkg_dir"
