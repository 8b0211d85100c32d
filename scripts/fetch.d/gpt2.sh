#!/usr/bin/env bash
# GPT-2 vocabulary files into the cache (pinned SHA-256; a no-op when present).
set -euo pipefail
exec bash "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/tools/fetch-gpt2-vocab.sh"
