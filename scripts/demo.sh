#!/usr/bin/env bash
# The main job: installs what the build needs (scripts/install-deps.sh, no optional parts), builds
# the t6 program in Release, then runs the demo (scripts/demo-train.sh): trains a tiny T6 on real
# English text (Debian's fortunes, byte-level) for about 5 minutes, samples from it, and shows the
# cache sizes and decode speed that TPA is for. T6_DEMO_QUICK=1 for a shorter run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/install-deps.sh
# The program only: the tests (and GoogleTest) come with scripts/test.sh.
bash scripts/build.sh "$root/build" -DT6_BUILD_TESTS=OFF
exec bash scripts/demo-train.sh
