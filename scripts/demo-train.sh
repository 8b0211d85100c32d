#!/usr/bin/env bash
# The demo after the build: builds the byte-level fortunes dataset (scripts/demo-data.sh), trains a
# tiny T6 (preset tiny-t6, vocab_size 256: one token per byte) with configs/demo-fortunes.json --
# about 5 minutes on 2 cores -- then shows what TPA is for on this model and this machine:
#   1. the validation loss against the uniform baseline (ln 256 nats/byte);
#   2. a sample (temperature 0.8, top-k 40, the seed printed), decoded from the factorized cache;
#   3. the KV cache per token of T6 against MHA/MQA/GQA/MLA at equal parameters and the longest
#      context each fits in a 1 GiB budget (t6 kv), for this model and at the paper's small size;
#   4. a decode step of small-t6 against small-mha at a 16K context, timed on this machine.
# T6_DEMO_QUICK=1 trains a quarter as long and skips the decode timing.
# Environment: T6_BIN (default build/t6), T6_DEMO_DATA (data/fortunes), T6_DEMO_OUT
# (out/demo-fortunes; replaced on each run), T6_DEMO_SEED (sampling seed, default 1234).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
t6="${T6_BIN:-$root/build/t6}"
data="${T6_DEMO_DATA:-$root/data/fortunes}"
out="${T6_DEMO_OUT:-$root/out/demo-fortunes}"
seed="${T6_DEMO_SEED:-1234}"
quick="${T6_DEMO_QUICK:-0}"
if [ ! -x "$t6" ]; then
    echo "demo: $t6 not found; build first (scripts/build.sh)" >&2
    exit 1
fi
section() { printf '\n== %s ==\n' "$*"; }

sh scripts/demo-data.sh "$data"

extra=()
if [ "$quick" = 1 ]; then
    extra=(max_iters=200 eval_interval=100 warmup_iters=10)
fi
rm -rf "$out"
section "1. training a tiny T6 on the fortunes (byte-level; $("$t6" info --preset tiny-t6 vocab_size=256 --json | tail -n 1 | sed -E 's/.*"params_total":([0-9]+).*/\1/') parameters)"
"$t6" train --config configs/demo-fortunes.json data="$data" out_dir="$out" "${extra[@]}"

# The final numbers, from the run's metrics log.
summary=$(grep '"kind":"summary"' "$out/metrics.jsonl" | tail -n 1)
val=$(printf '%s\n' "$summary" | sed -E 's/.*"final_val_loss":([-0-9.eE+]+).*/\1/')
best_loss=$(printf '%s\n' "$summary" | sed -E 's/.*"best_val_loss":([-0-9.eE+]+).*/\1/')
section "result"
awk -v v="$val" -v b="$best_loss" 'BEGIN {
    u = log(256)
    printf "validation loss %.4f nats/byte (%.3f bits/byte; best %.4f)\n", v, v / log(2), b
    printf "uniform over 256 bytes: %.4f nats/byte -- the model is %.1fx more certain per byte (perplexity %.1f vs 256)\n",
        u, exp(u - v), exp(v) }'
best="$out/$(sed -E 's/.*"checkpoint":"([^"]+)".*/\1/' "$out/best.json")"

section "2. a sample from the best checkpoint, decoded from the factorized KV cache (temperature 0.8, top-k 40, seed $seed)"
"$t6" generate --model "$best" --prompt "The meaning of life is" --temperature 0.8 --top-k 40 \
    --seed "$seed" --max-new-tokens 230
echo "(another sample: T6_DEMO_SEED=<n> bash scripts/demo-train.sh, or $t6 generate --model $best --seed <n>)"

section "3. what TPA caches: this model against the other attention kinds at equal parameters"
"$t6" kv --model "$best" --budget 1GiB
echo
echo "at the paper's small size (124M parameters, 12 layers):"
"$t6" kv --preset small-t6 --budget 1GiB

if [ "$quick" != 1 ]; then
    section "4. one decode step at a 16K context on this machine: small-t6 against small-mha (random weights)"
    "$t6" bench decode --presets small-mha,small-t6 --contexts 16384 --batches 1 --steps 5 \
        --json | tee "$out/decode-bench.txt" | sed '$d'
    # The last line is the JSON: per point (MHA's first) the median step time and bytes read.
    tail -n 1 "$out/decode-bench.txt" | grep -oE '"(bytes_per_step|step_ms)":[0-9.eE+-]+' |
        cut -d: -f2 | paste -sd' ' | awk '$4 > 0 {
            printf "small-t6 decodes %.2fx faster than small-mha at 16K here (%.1f vs %.1f ms per token), reading %.2fx fewer bytes per step (cache + weights)\n",
                $2 / $4, $4, $2, $1 / $3 }'
fi

section "files"
echo "checkpoints: $out (weights: $out/ckpt_*/model.safetensors)"
echo "continue training: $t6 train --resume $out max_iters=4000"
