#!/usr/bin/env bash
# One GPU lease call of the session-by-session training plan (see README "Training on a lent GPU").
# Unlike gpu_train_recipe.sh (everything from one audio folder), this one accumulates: each call
# carries ONE training audio shard folder ($SHARD, e.g. .carry/t1) plus the validation folder
# (.carry/val); example shards are built under data/ex/<name> and kept while the machine stays warm,
# so a later call on the same machine trains on every shard seen so far.
#   SHARD=.carry/t0 MODELS=baselines,scratch-s BATCH=128 bash scripts/gpu_call.sh
set -uo pipefail
T0=$(date +%s)
cd "$(dirname "$0")/.."
CALL_MIN=${CALL_MIN:-9.3}
MODELS=${MODELS:-baselines,scratch-s}
BATCH=${BATCH:-128}
RUNS=${RUNS:-runs/gpu}
OUT=${OUT:-/tmp/pnsc_out}
PY=${PY:-python3}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
mkdir -p "$OUT" "$RUNS" data/ex
elapsed() { echo $(( $(date +%s) - T0 )); }
$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader

build() {  # build <audio dir> <split> <copies> <out>
  [ -f "$4/index.json" ] && return 0
  $PY scripts/build_examples.py --audio "$1" --out "$4" --split "$2" --copies "$3" --workers "$(nproc)" 2>&1 \
    | tr "\r" "\n" | grep -v "^$" | tail -2
}
build .carry/val validation 1 data/ex/val || exit 1
[ -n "${SHARD:-}" ] && { build "$SHARD" train "${COPIES:-3}" "data/ex/$(basename "$SHARD")" || exit 1; }
if ls .carry/runs/runs-*.tar >/dev/null 2>&1 && [ ! -f "$RUNS/.unpacked" ]; then
  $PY -m pnsc.training.lpcnet.pack --unpack .carry/runs/runs-*.tar "$RUNS" && touch "$RUNS/.unpacked"
fi
DATA=(); for d in data/ex/*/; do [ "$d" = data/ex/val/ ] || DATA+=(--data "${d%/}"); done
echo "examples ready after $(elapsed) s: ${DATA[*]}"
BUDGET=$($PY -c "print(round(max(0.5, $CALL_MIN - $(elapsed) / 60 - 0.4), 2))")
echo "training $MODELS for $BUDGET min, batch $BATCH"
$PY -m pnsc.training.lpcnet.multi "${DATA[@]}" --out-root "$RUNS" --budget-min "$BUDGET" --models "$MODELS" \
  --batch "$BATCH" -- --device cuda --amp bf16 --val-data data/ex/val --groups models/training_groups.json \
  --epochs 120 --log-every 20 ${TRAIN_EXTRA:-}
RC=$?
$PY -m pnsc.training.lpcnet.pack "$RUNS" "$OUT" ${PACK_FLAGS:-}
for r in "$RUNS"/*/; do
  n=$(basename "$r"); tail -n 1 "$r/stdout.log" 2>/dev/null | cut -c1-160 | sed "s/^/$n: /"
  [ -f "$r/status.json" ] && echo "$n status: $(cat "$r/status.json" | tr -d '\n' | cut -c1-200)"
done
nvidia-smi --query-gpu=memory.used --format=csv,noheader
echo "call used $(elapsed) s; multi rc=$RC"
exit $RC
