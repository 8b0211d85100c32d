#!/usr/bin/env bash
# The MHA -> T6 conversion experiment of docs/convert-to-tpa.md, at CPU scale (char-level
# tinyshakespeare): pretrain MHA, train T6 from scratch on pretraining + recovery tokens, convert,
# recover with and without distillation, plot. Steps whose output exists are skipped, so the
# script resumes after an interruption (delete out/convert to start over).
#   tools/convert_experiment.sh [T6_BINARY]     (needs $T6_SHARED or ../shared for the corpus)
set -euo pipefail
cd "$(dirname "$0")/.."
T6=${1:-build/t6}
SHARED=${T6_SHARED:-../shared}
OUT=out/convert
mkdir -p "$OUT"
export OMP_NUM_THREADS=1
run() { env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$T6" "$@"; }

[ -f data/shakespeare_char/val.bin ] ||
  run prepare "$SHARED/data/tinyshakespeare/input.txt" --tokenizer char --out data/shakespeare_char --quiet
# (a) the MHA source (1.0M tokens) and (b) T6 from scratch (1.5M tokens), in parallel.
[ -d $OUT/mha/ckpt_000500 ] || run train --config configs/convert-mha-pretrain.json > $OUT/mha.log 2>&1 &
[ -d $OUT/t6-scratch/ckpt_000750 ] || run train --config configs/convert-t6-scratch.json > $OUT/t6-scratch.log 2>&1 &
wait
SRC=$OUT/mha/ckpt_000500
# (c) conversion: the shipped method (Tucker + 6 ALS sweeps) and the alternatives (Tucker alone,
# random + ALS), on 4096 calibration tokens of the training split.
for v in "tucker 6" "tucker 0" "random 6"; do
  set -- $v
  f=$OUT/t6-converted-$1-$2.safetensors
  [ -f $f ] || run convert $SRC --to tpa --rank-q 6 --rank-k 2 --rank-v 2 \
      --calib data/shakespeare_char --calib-tokens 4096 --init $1 --als-iters $2 --out $f --json \
      > $OUT/convert-$1-$2.log
done
for m in $SRC $OUT/t6-converted-tucker-6.safetensors $OUT/t6-converted-tucker-0.safetensors $OUT/t6-converted-random-6.safetensors; do
  echo "$m $(run eval ppl --model $m --data data/shakespeare_char --max-tokens 16384 --threads 1 --quiet --json | tail -n 1)"
done > $OUT/eval-conversions.log
# T6_kvonly (query projection kept): which share of the loss comes from Q.
for r in 2 3; do
  [ -f $OUT/t6kv-converted-$r.safetensors ] || run convert $SRC --to tpa-kvonly --rank-k $r --rank-v $r \
      --calib data/shakespeare_char --calib-tokens 4096 --als-iters 6 \
      --out $OUT/t6kv-converted-$r.safetensors --json > $OUT/convert-kvonly-$r.log
  echo "kvonly-$r $(run eval ppl --model $OUT/t6kv-converted-$r.safetensors --data data/shakespeare_char --max-tokens 16384 --threads 1 --quiet --json | tail -n 1)"
done > $OUT/eval-kvonly.log
# Recovery (200 steps = 409,600 tokens each), with and without distillation, in parallel.
[ -d $OUT/recover/ckpt_000200 ] || run train --config configs/convert-recover.json > $OUT/recover.log 2>&1 &
[ -d $OUT/recover-distill/ckpt_000200 ] || run train --config configs/convert-recover-distill.json > $OUT/recover-distill.log 2>&1 &
wait
TARGET=$(python3 -c "import json;print(min(json.loads(l)['val_loss'] for l in open('$OUT/mha/metrics.jsonl') if '\"eval\"' in l))")
run convert curves "MHA (source)=$OUT/mha" "T6 from scratch=$OUT/t6-scratch" \
    "converted + recovery=$OUT/recover@1024000" "converted + recovery + distill=$OUT/recover-distill@1024000" \
    --target "$TARGET" --y-max 2.6 --title "MHA -> T6 conversion, char-level tinyshakespeare" \
    --out docs/convert-to-tpa-loss.svg --json | tee $OUT/curves.log
