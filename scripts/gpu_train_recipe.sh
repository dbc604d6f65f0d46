#!/usr/bin/env bash
# GPU recipe for the LPCNet / PLPCNet decoders: one device call = one run of this script.
#
# Each call (the device machine starts bare; only $OUT comes back, at most 8 files of < 16 MiB):
#   0. installs carried wheels (.whl/: soundfile + cffi + pycparser are needed to read FLAC audio shards);
#   1. builds example shards from the carried audio shards (scripts/build_examples.py, 16 workers);
#   2. unpacks the previous call's runs (runs-*.tar carried in $CARRY_RUNS) to continue them;
#   3. trains all models in $MODELS concurrently on the GPU (one process each) until the call's budget;
#   4. packs every run (last.pt weights + logs + curves; no Adam moments unless PACK_FLAGS=--optim)
#      into $OUT/runs-N.tar (< 15.5 MiB each), and prints a summary table.
#
# Call 1 (from scratch, 2 baselines + 8 PLPCNets):
#   run(command="bash scripts/gpu_train_recipe.sh", carry=["data/audio_shards", ".whl"], timeout_s=600)
# Later calls (continue): put the returned runs-*.tar under .carry/runs/ here, then
#   run(command="bash scripts/gpu_train_recipe.sh", carry=["data/audio_shards", ".whl", ".carry/runs"])
# Fine-tuned PLPCNets (need lpcnet-bl-s/-l in the carried runs):
#   run(command="MODELS=ft-s,ft-l bash scripts/gpu_train_recipe.sh", carry=[... same ...])
# Back here: python -m pnsc.training.lpcnet.pack --unpack <files_at>/runs-*.tar runs/
#            python scripts/export_decoders.py runs --fig5 models/fig5_val_loss.png
#
# Knobs (environment): CALL_MIN (whole call, default 9.3), MODELS (default all10), BATCH (global batch per
# model, default 256), EPOCHS (default 120), QEPOCH (quantized-feature adaptation from this epoch; default
# 3/4 of EPOCHS), AMP (bf16|fp16|none), COPIES (augmented copies, default 3), AUDIO, EX, RUNS, CARRY_RUNS,
# TRAIN_EXTRA (more train.py options), PACK_FLAGS (--best / --optim when they fit).
set -uo pipefail
T0=$(date +%s)
cd "$(dirname "$0")/.."
CALL_MIN=${CALL_MIN:-9.3}
MODELS=${MODELS:-all10}
BATCH=${BATCH:-256}
EPOCHS=${EPOCHS:-120}
AMP=${AMP:-bf16}
COPIES=${COPIES:-3}
AUDIO=${AUDIO:-data/audio_shards}
EX=${EX:-/tmp/pnsc_examples}
RUNS=${RUNS:-/tmp/pnsc_runs}
CARRY_RUNS=${CARRY_RUNS:-.carry/runs}
OUT=${OUT:-/tmp/pnsc_out}
PY=${PY:-python3}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
mkdir -p "$OUT" "$RUNS"
elapsed() { echo $(( $(date +%s) - T0 )); }

if [ -z "${SKIP_WHEELS:-}" ] && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:${PYTHONPATH:-} || exit 1
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

# 1. example shards (not carried: they are large; rebuilt each call, deterministic)
for split in train validation; do
  if [ ! -f "$EX/$split/index.json" ]; then
    c=$COPIES; [ "$split" = validation ] && c=1
    $PY scripts/build_examples.py --audio "$AUDIO" --out "$EX/$split" --split "$split" --copies "$c" \
      --workers "$(nproc)" 2>&1 | tr "\r" "\n" | tail -3 || exit 1
  fi
done
echo "examples ready after $(elapsed) s"

# 2. previous runs
if ls "$CARRY_RUNS"/runs-*.tar >/dev/null 2>&1; then
  $PY -m pnsc.training.lpcnet.pack --unpack "$CARRY_RUNS"/runs-*.tar "$RUNS" || exit 1
fi

# 3. train (every process stops and saves inside the budget)
BUDGET=$($PY -c "print(round(max(0.5, $CALL_MIN - $(elapsed) / 60 - ${PACK_MIN:-0.35}), 2))")
QARG=(); [ -n "${QEPOCH:-}" ] && QARG=(--quantized-after-epoch "$QEPOCH")
echo "training $MODELS for $BUDGET min, batch $BATCH, amp $AMP"
$PY -m pnsc.training.lpcnet.multi --data "$EX/train" --out-root "$RUNS" --budget-min "$BUDGET" --models "$MODELS" \
  --batch "$BATCH" -- --device cuda --amp "$AMP" --val-data "$EX/validation" --epochs "$EPOCHS" \
  --log-every 20 "${QARG[@]}" ${TRAIN_EXTRA:-}
RC=$?

# 4. pack back + summary
$PY -m pnsc.training.lpcnet.pack "$RUNS" "$OUT" ${PACK_FLAGS:-} || $PY -m pnsc.training.lpcnet.pack "$RUNS" "$OUT"
$PY - "$RUNS" <<'PYEOF'
import json, sys
from pathlib import Path
root = Path(sys.argv[1])
print(f"{'run':24} {'step':>6} {'epoch':>5} {'val':>7} {'best':>7} {'h/min':>6} done")
for run in sorted(p for p in root.iterdir() if p.is_dir()):
    st = json.loads((run / "status.json").read_text()) if (run / "status.json").is_file() else {}
    recs = [json.loads(l) for l in (run / "log.jsonl").read_text().splitlines()] if (run / "log.jsonl").is_file() else []
    ep = [r for r in recs if r["kind"] == "epoch"]
    sp = [r for r in recs if r["kind"] == "step"]
    val = ep[-1]["val_loss"] if ep and ep[-1].get("val_loss") is not None else float("nan")
    best = st.get("best_val") or float("nan")
    hpm = sp[-1]["audio_h_per_min"] if sp else float("nan")
    print(f"{run.name:24} {st.get('step', 0):>6} {st.get('epoch', 0):>5} {val:7.4f} {best:7.4f} {hpm:6.2f} {st.get('done')}")
PYEOF
echo "call used $(elapsed) s; multi rc=$RC"
exit $RC
