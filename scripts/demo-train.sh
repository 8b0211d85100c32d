#!/usr/bin/env bash
# The training part of the demo: builds the byte-level fortunes dataset (scripts/demo-data.sh),
# trains a tiny T6 (preset tiny-t6, vocab_size 256: one token per byte) with
# configs/demo-fortunes.json -- about 3 minutes on 2 cores -- and prints the validation loss and
# a greedy sample. T6_DEMO_QUICK=1 trains a quarter as long.
# Environment: T6_BIN (default build/t6), T6_DEMO_DATA (data/fortunes), T6_DEMO_OUT
# (out/demo-fortunes; replaced on each run).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
t6="${T6_BIN:-$root/build/t6}"
data="${T6_DEMO_DATA:-$root/data/fortunes}"
out="${T6_DEMO_OUT:-$root/out/demo-fortunes}"
if [ ! -x "$t6" ]; then
    echo "demo: $t6 not found; build first (scripts/build.sh)" >&2
    exit 1
fi

sh scripts/demo-data.sh "$data"

extra=()
if [ "${T6_DEMO_QUICK:-0}" = 1 ]; then
    extra=(max_iters=100 eval_interval=50 warmup_iters=10)
fi
rm -rf "$out"
echo
echo "== training a tiny T6 on the fortunes (byte-level) =="
"$t6" train --config configs/demo-fortunes.json data="$data" out_dir="$out" "${extra[@]}"

# The final numbers, from the run's metrics log.
summary=$(grep '"kind":"summary"' "$out/metrics.jsonl" | tail -n 1)
val=$(printf '%s\n' "$summary" | sed -E 's/.*"final_val_loss":([-0-9.eE+]+).*/\1/')
best=$(printf '%s\n' "$summary" | sed -E 's/.*"best_val_loss":([-0-9.eE+]+).*/\1/')
echo
echo "== result =="
awk -v v="$val" -v b="$best" 'BEGIN {
    printf "validation loss %.4f nats/byte (%.3f bits/byte; best %.4f); uniform over 256 bytes: 5.545\n",
        v, v / log(2), b }'
best="$out/$(sed -E 's/.*"checkpoint":"([^"]+)".*/\1/' "$out/best.json")"
echo
echo "== greedy sample from the best checkpoint ($best), decoded with the factorized KV cache =="
"$t6" generate --model "$best" --prompt "The meaning of life is" --temperature 0 \
    --max-new-tokens 200
echo "checkpoints: $out (weights: $out/ckpt_*/model.safetensors)"
echo "continue training: $t6 train --resume $out max_iters=1000"
