#!/usr/bin/env bash
# The main job: installs dependencies, builds t6 in Release, then trains a tiny T6 on real English
# text (Debian's fortunes, byte-level) for a few minutes, prints the validation loss and a
# greedy sample. Set T6_DEMO_QUICK=1 for a one-minute run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/install-deps.sh
bash scripts/build.sh "$root/build"
exec bash scripts/demo-train.sh
