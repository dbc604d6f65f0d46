#!/usr/bin/env bash
# GPU call: (1) optionally fine-tune missing personalized decoders, (2) decode held-out speech with
# every decoder family in parallel processes (scripts/gpu_eval_decoders.py), results to $OUT.
#   RUNS=.carry/ev TRAIN="plpcnet-l-g2-ft:L:2:.carry/g2:500" bash scripts/gpu_eval_call.sh
# TRAIN entries: name:size:group:audio-dir:steps (initialised from $RUNS/lpcnet-bl-<size>/last.pt).
set -uo pipefail
T0=$(date +%s)
cd "$(dirname "$0")/.."
RUNS=${RUNS:-.carry/ev}
OUT=${OUT:-/tmp/pnsc_out}
PY=${PY:-python3}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
mkdir -p "$OUT" data/ex
[ -f data/ex/val/index.json ] || $PY scripts/build_examples.py --audio .carry/val --out data/ex/val --split validation \
  --copies 1 --workers "$(nproc)" 2>&1 | tr "\r" "\n" | tail -1
for spec in ${TRAIN:-}; do
  IFS=: read -r name size group audio steps <<<"$spec"
  lo=$(echo "$size" | tr LS ls)
  ex=data/ex/$(basename "$audio")
  [ -f "$ex/index.json" ] || $PY scripts/build_examples.py --audio "$audio" --out "$ex" --split train --copies 3 \
    --workers "$(nproc)" 2>&1 | tr "\r" "\n" | tail -1
  $PY -m pnsc.training.lpcnet.train --data "$ex" --val-data data/ex/val --out "$RUNS/$name" --size "$size" --group "$group" \
    --name "plpcnet-$lo-g$group" --init-from "$RUNS/lpcnet-bl-$lo/last.pt" --groups models/training_groups.json \
    --batch 128 --max-steps "$steps" --budget-min 6 --device cuda --amp bf16 --quantized-after-epoch 0 --adapt all \
    --log-every 50 2>&1 | tail -2
  cp "$RUNS/$name"/{last.pt,log.jsonl,status.json} "$OUT/" 2>/dev/null && mkdir -p "$OUT/$name" && mv "$OUT"/{last.pt,log.jsonl,status.json} "$OUT/$name/"
done
echo "training done after $(( $(date +%s) - T0 )) s"
ARGS=(--audio .carry/testls --per-speaker "${PER_SPEAKER:-2}" --max-seconds "${MAX_SECONDS:-6}")
fam() { local f=$1; shift; local m=(); for x in "$@"; do m+=(--model "$x"); done
  $PY scripts/gpu_eval_decoders.py "${ARGS[@]}" "${m[@]}" --out "/tmp/eval/$f" > "/tmp/eval-$f.log" 2>&1; echo "$f rc=$?"; tail -2 "/tmp/eval-$f.log"; }
mkdir -p /tmp/eval
fam bl-s lpcnet-bl-s="$RUNS/lpcnet-bl-s/last.pt" &
fam bl-l lpcnet-bl-l="$RUNS/lpcnet-bl-l/last.pt" &
S=(); L=(); for g in 0 1 2 3; do S+=("plpcnet-s@$g=$RUNS/plpcnet-s-g$g-ft/last.pt"); L+=("plpcnet-l@$g=$RUNS/plpcnet-l-g$g-ft/last.pt"); done
fam p-s "${S[@]}" &
fam p-l "${L[@]}" &
wait
for f in bl-s bl-l p-s p-l; do cp "/tmp/eval/$f/decoded.npz" "$OUT/decoded-$f.npz"; cp "/tmp/eval/$f/groups.json" "$OUT/groups.json"; done
echo "call used $(( $(date +%s) - T0 )) s"
