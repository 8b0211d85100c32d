#!/usr/bin/env bash
# The openai npm package into the cache (pinned SHA-256; a no-op when present).
set -euo pipefail
exec bash "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/tools/fetch-openai-npm.sh"
