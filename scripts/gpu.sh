#!/usr/bin/env bash
# The one entry point for GPU work (training rounds on a lent machine). Subcommands:
#
#  Here (the development machine), before and after device calls:
#   bash scripts/gpu.sh lean on|off         sparse checkout without models/decoders/, docs/, samples/ and
#                                           training/state/ (files training never reads), so they do not travel;
#                                           'off' brings them back (before exporting or testing).
#   bash scripts/gpu.sh carry NAME SHARD... put audio shards (from data/audio_shards) into .carry/NAME, plus
#                                           .carry/val (LibriSpeech validation speakers) when missing;
#                                           CARRY_OPTS="--codec opus --bitrate-kbps K [--part 1/2]" re-encodes them
#   bash scripts/gpu.sh carry-groups [PARTS] the whole training split as Opus slices ordered by speaker group, so each
#                                           group's speech is complete after as few calls as possible: PARTS (default
#                                           "1 3 3 3": slices of groups 3, 0, 1, 2, in that order) -> .carry/tgGpK
#                                           (CARRY_KBPS, default 64: 9 + 55 + 49 + 27 = 140 MiB in round 12)
#   bash scripts/gpu.sh state [RUNS]        put the committed training state (training/state/runs/, one tar per
#                                           run), or that of RUNS (one tar, without the append-only logs, which
#                                           'unpack' joins back), into .carry/state for a call on a fresh machine
#   bash scripts/gpu.sh commit-state [RUNS] write training/state/runs/ (per run: fp16 weights, only the averaged
#                                           ones of --ema-decay runs, but LOGS_ONLY=NAME,... (concluded
#                                           branches: history only); bf16 Adam moments only of OPTIM_RUNS=NAME,...)
#                                           from RUNS (default runs/gpu); an unchanged run's file stays byte for byte
#   bash scripts/gpu.sh reopen RUNS RUN...  runs that --patience finished train on from their best weights (when
#                                           the data changes, e.g. fresh augmentation): done and patience cleared
#   bash scripts/gpu.sh size                what a call carrying .whl + .carry/* sends, against the 64 MiB cap
#   bash scripts/gpu.sh unpack DIR          unpack returned runs-*.tar from DIR into runs/gpu (newer steps win)
#   bash scripts/gpu.sh promote RUNS BRANCH a recipe branch (lpcnet-bl-s.decay5e-5) becomes its base run; the old
#                                           base stays as <base>.before-<tags> (then 'state RUNS' for the call)
#   bash scripts/gpu.sh retire RUNS TAG RUN...  set runs (with weights or logs only) aside as <run>.before-TAG, so that e.g.
#                                           MODELS=ft-s,ft-l fine-tunes afresh from the current baselines instead
#                                           of resuming (commit-state with LOGS_ONLY=<run>.before-TAG,...)
#
#  There (the device machine; the command of a device call):
#   bash scripts/gpu.sh examples            build examples for .carry/val and each .carry/t* not built yet, all at
#                                           once (train runs it first; CARRY_ROOT, EX_ROOT move the folders);
#                                           EX_SEED=N: the training slices' augmentation seed (default 0), a slice
#                                           of another seed is rebuilt (or taken from what EX_NEXT prebuilt)
#   bash scripts/gpu.sh train               build examples for every carried .carry/t* shard not built yet
#                                           (kept on a warm machine), resume runs from runs/gpu (warm) or
#                                           .carry/state (fresh), train $MODELS for the rest of the call, pack
#                                           the runs into $OUT (weights first, then the baselines' Adam moments as bf16,
#                                           other moments while under 60 MiB; when the weights alone would not
#                                           fit, as float16 averaged weights, the form the committed state keeps).
#   Every call may land on a fresh machine (a machine stays warm 30 s after a call): carry .carry/state
#   unless the next call is issued at once; REQUIRE_RUNS=NAME[,NAME...] makes a call stop rather than start NAME anew.
#   multi.py runs with --resume-only: a baseline or scratch run of MODELS/BACKLOG without a checkpoint on the
#   machine is refused (counted as failed; the others train) unless FRESH names it (a new run, first call).
#     env: MODELS (multi.py spec, default baselines), BATCH (1024), LR (2e-3), LR_DECAY (2e-4),
#          CALL_MIN (9.3), COPIES (3), EX_SEED (augmentation seed of this call's training examples, default 0),
#          EX_NEXT=1 (build seed EX_SEED+1's examples in data/ex.next on the idle CPUs while the GPUs train: the
#          next call, with EX_SEED one higher, trains on freshly augmented copies at no example-building cost;
#          0 or unset: off),
#          TRAIN_EXTRA (more train.py options), BENCH_S (seconds of
#          training-path benchmark before training; BENCH_IMPL, BENCH_BATCH, BENCH_SIZE, BENCH_STEPS, BENCH_WINDOW_S
#          (seconds each configuration times its processes together, default 5), BENCH_AMP (bf16, the
#          default, or none: float32 as training runs since round 23), BENCH_PROCS
#          (processes sharing the GPU, e.g. 1,2,4) with BENCH_MULTI_IMPL; BENCH_GPU=N runs it beside the
#          training on GPU N of several), GPUS (the GPUs multi.py spreads the runs over; default all), MPS=1
#          (CUDA MPS daemon for the call: processes on one GPU run concurrently),
#          PNSC_LPCNET_IMPL (fast|old|fold), PNSC_LPCNET_GRU_B (scan, the default here, or cudnn),
#          FT_PATIENCE (multi.py --ft-patience: fine-tunes stop on their best weights after N validations
#          without a better one), BACKLOG (multi.py --backlog, a MODELS spec: started, in order, on a GPU slot
#          a run frees with at least BACKLOG_MIN_LEFT (1.0) minutes of its wave left), FRESH (multi.py --fresh:
#          the runs of MODELS/BACKLOG that may start from random weights, e.g. FRESH=baselines on a first call),
#          START_FROM (multi.py --start NAME=RUN,...: a new run starts from another run on the machine, e.g.
#          START_FROM=plpcnet-l-g0-ft.mix0.5.fp32=lpcnet-bl-l.fp32 fine-tunes afresh from the newer baseline),
#          TEACHER_FROM (multi.py --teacher NAME=RUN,...: the distribution a kdX branch learns, either size, e.g.
#          TEACHER_FROM=plpcnet-l-g1-ft.mix0.5.fp32.kd0.3=lpcnet-bl-l.fp32 holds a fine-tune to its baseline),
#          DDP (multi.py --ddp N: each model of MODELS as N torchrun processes over N GPUs, one model at a time;
#          BATCH is then the global batch; not with BACKLOG or MPS), BATCH_CHECK=RUN (before training, on the first
#          GPU: training/lpcnet/batch_check.py with RUN's weights at each of BATCH_CHECK_SIZES (512,1024), one batch
#          against the mean of its halves and against float32; $OUT/batch_check_B.json; BATCH_CHECK_S (180) seconds at
#          most each; BATCH_CHECK_IMPLS (fast): the training paths checked, e.g. fast,fold -> batch_check_B_fold.json).
set -uo pipefail
T0=$(date +%s)
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
cmd=${1:-}; shift || true
elapsed() { echo $(( $(date +%s) - T0 )); }
done_already() { [ -f "$1/index.json" ] && grep -q '"complete": true' "$1/index.json"; }  # an example folder built whole

case "$cmd" in
lean)
  if [ "${1:-on}" = on ]; then
    git sparse-checkout set --no-cone '/*' '!/models/decoders/' '!/docs/' '!/samples/' '!/training/state/'
  else
    git sparse-checkout disable
  fi
  git ls-files -t | grep -c '^S' | sed 's/^/files left out of the working tree: /'
  ;;
carry)
  name=$1; shift
  [ -d .carry/val ] || $PY scripts/select_audio_shards.py --audio data/audio_shards --out .carry/val \
    --files audio-validation-00000.tar --only-source librispeech
  rm -rf ".carry/$name"
  $PY scripts/select_audio_shards.py --audio data/audio_shards --out ".carry/$name" --files "$@" ${CARRY_OPTS:-}
  du -sh .carry/* | sed 's/^/carry: /'
  "$0" size
  ;;
carry-groups)  # [PARTS]: slices per group, for groups 3 0 1 2 in that order (group 3 has the least speech)
  read -r -a parts <<< "${1:-1 3 3 3}"; i=0
  [ ${#parts[@]} = 4 ] || { echo "gpu.sh carry-groups: PARTS names 4 slice counts (groups 3 0 1 2)"; exit 2; }
  for grp in 3 0 1 2; do
    n=${parts[$i]}; i=$((i + 1))
    for k in $(seq 1 "$n"); do
      rm -rf ".carry/tg${grp}p$k"
      $PY scripts/select_audio_shards.py --audio data/audio_shards --out ".carry/tg${grp}p$k" --split train --codec opus \
        --bitrate-kbps "${CARRY_KBPS:-64}" --group-map models/training_groups.json --group "$grp" --part "$k/$n" \
        2>&1 | tr "\r" "\n" | grep -v "^$" | tail -n 1
    done
  done
  du -sh .carry/tg*p* | sed 's/^/carry: /'
  ;;
examples)  # build examples for .carry/val and every .carry/t* not built yet, all at once (each with its share
  # of the CPUs: a build splits into one job per output shard, about 30 for a slice of 1.5 h, so one build alone
  # left most of 64 CPUs idle and five in a row took 75 s of round 12's call 3)
  CARRY_ROOT=${CARRY_ROOT:-.carry}; EX_ROOT=${EX_ROOT:-data/ex}
  # EX_SEED: augmentation seed of the training slices (default 0; the validation set is always seed 0). A slice
  # built with another seed is rebuilt in place; one that the previous call prebuilt for this seed (EX_NEXT, in
  # EX_NEXT_ROOT) takes its place first, and is finished here if that call ended before it was.
  EX_SEED=${EX_SEED:-0}; NEXT_ROOT=${EX_NEXT_ROOT:-data/ex.next}
  seed_of() { $PY -c 'import json, sys; print(json.load(open(sys.argv[1])).get("seed"))' "$1/index.json" 2>/dev/null; }
  built_with_seed() { done_already "$1" && [ "$(seed_of "$1")" = "$EX_SEED" ]; }
  jobs=()  # "audio dir|split|copies|out|seed"
  [ -n "${EX_TRAIN_ONLY:-}" ] || done_already "$EX_ROOT/val" || jobs+=("$CARRY_ROOT/val|validation|1|$EX_ROOT/val|0")
  for d in "$CARRY_ROOT"/t*/; do
    [ -d "$d" ] || continue
    name=$(basename "$d"); out="$EX_ROOT/$name"
    if [ "$NEXT_ROOT" != "$EX_ROOT" ] && [ -f "$NEXT_ROOT/$name/index.json" ] && [ "$(seed_of "$NEXT_ROOT/$name")" = "$EX_SEED" ] \
        && ! built_with_seed "$out"; then
      rm -rf "$out" "$out.log"; mkdir -p "$EX_ROOT"; mv "$NEXT_ROOT/$name" "$out"
      echo "examples: $out prebuilt with seed $EX_SEED by the previous call$(done_already "$out" || echo ' (in part: finished now)')"
    fi
    built_with_seed "$out" || jobs+=("${d%/}|train|${COPIES:-3}|$out|$EX_SEED")
  done
  [ ${#jobs[@]} -gt 0 ] || { echo "examples: all built (seed $EX_SEED)"; exit 0; }
  ncpu=$(getconf _NPROCESSORS_ONLN); workers=$(( ncpu / ${#jobs[@]} )); [ "$workers" -ge 2 ] || workers=2
  build() {  # build <audio dir> <split> <copies> <out> <seed>: one line of result, then the status of the build
    local t; t=$(date +%s)
    $PY scripts/build_examples.py --audio "$1" --out "$4" --split "$2" --copies "$3" --seed "$5" --workers "$workers" \
      --target-mib "${EX_MIB:-12}" > "$4.log" 2>&1
    local rc=$?
    tr "\r" "\n" < "$4.log" | grep -v "^$" | tail -n 1
    echo "examples $4: $(( $(date +%s) - t )) s, rc $rc"
    return $rc
  }
  mkdir -p "$EX_ROOT"; pids=()
  for j in "${jobs[@]}"; do
    IFS='|' read -r audio split copies out seed <<< "$j"
    build "$audio" "$split" "$copies" "$out" "$seed" & pids+=($!)
  done
  rc=0; for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  [ $rc = 0 ] || echo "examples: a build failed (its log: $EX_ROOT/<name>.log)"
  exit $rc
  ;;
size)  # what a call carrying .whl and every .carry/* folder sends: the tree git would copy plus those
  tree=$(git ls-files -t | grep -v '^S' | cut -c3- | xargs -d '\n' stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
  extra=$(du -sb .whl .carry/* 2>/dev/null | awk '{s+=$1} END {print s+0}')
  echo "tree $((tree >> 20)) MiB + carried $((extra >> 20)) MiB = $(((tree + extra) >> 20)) MiB (cap 64 MiB)"
  [ $((tree + extra)) -le $((64 << 20)) ] || { echo "over the 64 MiB carry cap: drop a shard or run 'lean on'"; exit 1; }
  ;;
state)  # [RUNS_DIR]: carry these runs instead of the committed state (training/state/runs/)
  rm -rf .carry/state && mkdir -p .carry/state
  if [ -n "${1:-}" ]; then
    $PY -m pnsc.training.lpcnet.state save "$1" .carry/state/runs-state.tar --without-logs
  else
    cp training/state/runs/*.tar .carry/state/
  fi
  ls -la .carry/state
  ;;
commit-state)  # [RUNS_DIR]: write the durable state of the runs (default runs/gpu) for git
  # No Adam moments unless OPTIM_RUNS names runs: a call carries runs without them (the 64 MiB cap), so every
  # round restarts Adam under --warmup-steps anyway, and the baselines' bf16 moments were 8 of the 30 MiB that
  # round 17 added to git history. STATE_OUT (default training/state/runs) moves the output (tests).
  $PY -m pnsc.training.lpcnet.state save "${1:-runs/gpu}" "${STATE_OUT:-training/state/runs}" --averaged-only \
    --optim-runs "${OPTIM_RUNS:-}" ${LOGS_ONLY:+--logs-only "$LOGS_ONLY"}
  ;;
reopen)  # RUNS RUN...: runs that --patience finished train on (new data), from their best weights
  runs=$1; shift
  $PY -m pnsc.training.lpcnet.state reopen "$runs" "$@"
  ;;
promote)  # RUNS BRANCH: a recipe branch becomes its base run; the old base is kept as <base>.before-<tags>
  runs=$1; branch=$2; base=${branch%%.*}
  [ "$branch" != "$base" ] && [ -f "$runs/$branch/last.pt" ] || { echo "gpu.sh promote: no branch checkpoint $runs/$branch/last.pt"; exit 2; }
  keep="$runs/$base.before-${branch#*.}"
  [ ! -e "$keep" ] || { echo "gpu.sh promote: $keep exists already"; exit 2; }
  mv "$runs/$base" "$keep" && mv "$runs/$branch" "$runs/$base" && echo "promoted $branch to $base (the old $base is now $keep)"
  ;;
retire)  # RUNS TAG RUN...: every RUN becomes RUN.before-TAG; checks all first, moves nothing on a refusal
  runs=$1; tag=$2; shift 2
  [ $# -gt 0 ] && [ -n "$tag" ] && [[ "$tag" != *.* ]] || { echo "gpu.sh retire: usage: retire RUNS TAG RUN..."; exit 2; }
  for r in "$@"; do
    # a run kept as logs only (no last.pt) is set aside too: left under its name, its later step would make
    # unpack keep it over the afresh run's returned files (round 15 moved group 3's two by hand)
    [ -f "$runs/$r/last.pt" ] || [ -f "$runs/$r/status.json" ] || [ -f "$runs/$r/history.json" ] ||
      { echo "gpu.sh retire: no run $runs/$r"; exit 2; }
    [ ! -e "$runs/$r.before-$tag" ] || { echo "gpu.sh retire: $runs/$r.before-$tag exists already"; exit 2; }
  done
  for r in "$@"; do mv "$runs/$r" "$runs/$r.before-$tag" && echo "retired $r (now $r.before-$tag)"; done
  ;;
unpack)
  $PY -m pnsc.training.lpcnet.pack --unpack "$1"/runs-*.tar runs/gpu
  ;;
train)
  CALL_MIN=${CALL_MIN:-9.3}; MODELS=${MODELS:-baselines}; BATCH=${BATCH:-1024}
  RUNS=runs/gpu; OUT=${OUT:-/tmp/pnsc_out}
  export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NCCL_NVLS_ENABLE=0 \
    TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
  mkdir -p "$OUT" "$RUNS" data/ex
  if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  fi
  export PYTHONPATH=/tmp/site:$PWD
  # GRU-B as one Triton kernel: 14-26 % faster than cuDNN on an H100 at batch 512-2048 (round 5 bench);
  # train.py checks it against nn.GRU on the device first and falls back to cuDNN if it disagrees.
  export PNSC_LPCNET_GRU_B=${PNSC_LPCNET_GRU_B:-scan}
  nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
  if [ "${MPS:-0}" = 1 ]; then  # CUDA MPS: the processes sharing a GPU run their kernels concurrently
    # instead of time-slicing it (GRU-A's 2,400-step recurrence is latency-bound at batch 512)
    export CUDA_MPS_PIPE_DIRECTORY=/tmp/pnsc-mps/pipe CUDA_MPS_LOG_DIRECTORY=/tmp/pnsc-mps/log
    mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
    if command -v nvidia-cuda-mps-control >/dev/null && nvidia-cuda-mps-control -d; then
      trap 'echo quit | nvidia-cuda-mps-control >/dev/null 2>&1' EXIT
      # a daemon that starts but cannot serve would fail every run of the call: check a CUDA op first
      if timeout 90 $PY -c "import torch; assert torch.ones(8, device='cuda').sum().item() == 8" 2>&1 | tail -n 2; then
        echo "MPS: on"  # (pipefail: the check's own status)
      else
        echo quit | nvidia-cuda-mps-control >/dev/null 2>&1; unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
        echo "MPS: a CUDA op failed under MPS; processes time-share the GPU"
      fi
    else
      echo "MPS: could not start nvidia-cuda-mps-control; processes time-share the GPU"
      unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
    fi
  fi
  # The call's shell may be pinned to one CPU (nproc said 1 on a 16-core machine, which made example
  # building 15x slower): widen the affinity to every online CPU and use them all.
  NCPU=$(getconf _NPROCESSORS_ONLN); taskset -acp "0-$((NCPU - 1))" $$ >/dev/null 2>&1 || true
  # (not nproc: it answers OMP_NUM_THREADS, 1 here, whatever the affinity)
  echo "cpus: online $NCPU, usable $($PY -c 'import os; print(len(os.sched_getaffinity(0)))'); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
  bash "$0" examples || exit 1  # (bash: the copy on the device machine may not keep the executable bit)
  PACK_SINCE=$T0  # runs restored from .carry/state keep the time the state was saved: not packed unless trained
  if compgen -G ".carry/state/*.tar" >/dev/null && [ ! -f "$RUNS/.resumed" ]; then
    $PY -m pnsc.training.lpcnet.state load .carry/state "$RUNS" && touch "$RUNS/.resumed"
  fi
  REQUIRE_RUNS=${REQUIRE_RUNS:-}  # (unset, set -u ended the call here with rc 127)
  for req in ${REQUIRE_RUNS//,/ }; do  # REQUIRE_RUNS=NAME[,NAME...]
    [ -f "$RUNS/$req/last.pt" ] || {
      echo "no $RUNS/$req/last.pt on this machine (fresh machine, no .carry/state): not starting from scratch"; exit 3; }
  done
  NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true); [ "${NGPU:-0}" -ge 1 ] || NGPU=1
  GPUS=${GPUS:-$(seq -s, 0 $((NGPU - 1)))}
  BENCH_PID=
  if [ -n "${BENCH_S:-}" ]; then  # throughput of the training paths (results in $OUT/bench.json)
    bench() {
      $PY -m pnsc.training.lpcnet.bench --device cuda --size "${BENCH_SIZE:-S}" --impl "${BENCH_IMPL:-scan,fast,folds}" \
        --batch "${BENCH_BATCH:-512,1024,2048,4096}" --procs "${BENCH_PROCS:-1}" --multi-impl "${BENCH_MULTI_IMPL:-scan}" \
        --steps "${BENCH_STEPS:-5}" --window-s "${BENCH_WINDOW_S:-5}" --amp "${BENCH_AMP:-bf16}" --budget-s "$BENCH_S" \
        --out "$OUT/bench.json" 2>&1 | tail -n 40 | sed 's/^/bench: /'
    }
    if [ -n "${BENCH_GPU:-}" ] && [ "$NGPU" -gt 1 ]; then  # on a GPU of its own, beside the training
      GPUS=$(echo ",$GPUS," | sed "s/,$BENCH_GPU,/,/; s/^,//; s/,$//")
      (export CUDA_VISIBLE_DEVICES=$BENCH_GPU; bench) & BENCH_PID=$!
      echo "bench on GPU $BENCH_GPU (pid $BENCH_PID); training on GPUs $GPUS"
    else
      bench
    fi
  fi
  DATA=(); for d in data/ex/*/; do [ "$d" = data/ex/val/ ] || DATA+=(--data "${d%/}"); done
  echo "examples ready after $(elapsed) s: ${DATA[*]}"
  # runs that train on every group's speakers (the baselines and their branches; fine-tunes that mix in the other
  # groups) are told when a group's slices have not reached this machine: rounds 29-31 dropped group 3's slice from
  # the carry lists together with its fine-tunes, and LPCNet-BL-L trained three rounds without those speakers
  C=$(grep -o '"C": *[0-9]*' models/training_groups.json 2>/dev/null | grep -o '[0-9]*$')
  if [ -n "$C" ] && echo ",$MODELS,${BACKLOG:-}," | grep -Eq ',(lpcnet-bl-[sl]|baselines|all10)[,.]|\.mix[0-9]'; then
    missing=""; for g in $(seq 0 $((C - 1))); do compgen -G "data/ex/tg${g}p*/" >/dev/null || missing="$missing $g"; done
    others=$(find data/ex -mindepth 1 -maxdepth 1 -type d ! -name val ! -regex '.*/tg[0-9]+p[0-9]+' | head -n 1)
    [ -z "$missing" ] || [ -n "$others" ] || echo "examples: WARNING: no slice of group(s)$missing on this machine:" \
      "runs that train on every group's speakers go without them this call (carry .carry/tgGp*)"
  fi
  if [ -n "${BATCH_CHECK:-}" ]; then  # RUN: one batch against its halves, per size (results in $OUT/batch_check_B.json)
    for impl in $(echo "${BATCH_CHECK_IMPLS:-fast}" | tr , ' '); do
      sfx=; [ "$impl" = fast ] || sfx=_$impl  # (fast keeps round 22's file names)
      for b in $(echo "${BATCH_CHECK_SIZES:-512,1024}" | tr , ' '); do
        CUDA_VISIBLE_DEVICES=${GPUS%%,*} timeout "${BATCH_CHECK_S:-180}" $PY -m pnsc.training.lpcnet.batch_check \
          --run "$RUNS/$BATCH_CHECK" "${DATA[@]}" --batch "$b" --impl "$impl" --json "$OUT/batch_check_$b$sfx.json" \
          2>&1 | grep "^summary\|^batch \|Error\|error" | tail -n 12 | sed "s/^/batch_check $b: /"
      done
    done
    echo "batch_check done after $(elapsed) s"
  fi
  NEXT_PID=; NEXT_ROOT=${EX_NEXT_ROOT:-data/ex.next}
  if [ -n "${EX_NEXT:-}" ] && [ "$EX_NEXT" != 0 ]; then  # EX_NEXT=0 (a last call) builds nothing ahead
    # fresh augmentation for the next call (EX_SEED+1), built at the lowest CPU priority while the GPUs train
    # (the training examples are held on the GPUs, so the CPUs are mostly idle); in a session of its own, so
    # that it can be stopped whole
    NEXT_SEED=$(( ${EX_SEED:-0} + 1 )); mkdir -p "$NEXT_ROOT"
    EX_ROOT=$NEXT_ROOT EX_SEED=$NEXT_SEED EX_TRAIN_ONLY=1 setsid nice -n 19 bash "$0" examples > "$NEXT_ROOT.log" 2>&1 &
    NEXT_PID=$!
    echo "examples for the next call (seed $NEXT_SEED) building in $NEXT_ROOT (pid $NEXT_PID)"
  fi
  BUDGET=$($PY -c "print(round(max(0.5, $CALL_MIN - $(elapsed) / 60 - 0.5), 2))")
  echo "training $MODELS${BACKLOG:+ (backlog $BACKLOG)} for $BUDGET min, batch $BATCH"
  $PY -m pnsc.training.lpcnet.multi "${DATA[@]}" --out-root "$RUNS" --budget-min "$BUDGET" --models "$MODELS" \
    --batch "$BATCH" --gpus "$GPUS" --ft-patience "${FT_PATIENCE:-0}" --resume-only ${FRESH:+--fresh "$FRESH"} ${START_FROM:+--start "$START_FROM"} ${TEACHER_FROM:+--teacher "$TEACHER_FROM"} \
    ${BACKLOG:+--backlog "$BACKLOG" --backlog-min-left "${BACKLOG_MIN_LEFT:-1.0}"} ${DDP:+--ddp "$DDP"} -- --device cuda --amp bf16 --val-data data/ex/val --groups models/training_groups.json \
    --lr "${LR:-2e-3}" --lr-decay "${LR_DECAY:-2e-4}" --epochs 1000 --log-every 20 ${TRAIN_EXTRA:-}
  RC=$?
  [ -z "$BENCH_PID" ] || wait "$BENCH_PID"
  if [ -n "$NEXT_PID" ]; then  # stopped with the call: nothing may write there once the call has ended
    kill -TERM -- "-$NEXT_PID" 2>/dev/null; wait "$NEXT_PID" 2>/dev/null
    n_next=0; for d in "$NEXT_ROOT"/*/; do done_already "$d" && n_next=$((n_next + 1)); done
    echo "examples for the next call (seed $NEXT_SEED): $n_next slice(s) complete by the end of training; the next call with EX_SEED=$NEXT_SEED takes them (and finishes the rest)"
  fi
  # only the runs this call trained (the rest came with its state): room for their Adam moments
  $PY -m pnsc.training.lpcnet.pack "$RUNS" "$OUT" --optim --changed-since "$PACK_SINCE"
  for r in "$RUNS"/*/; do
    n=$(basename "$r"); tail -n 1 "$r/stdout.log" 2>/dev/null | cut -c1-200 | sed "s/^/$n: /"
  done
  nvidia-smi --query-gpu=memory.used --format=csv,noheader
  echo "call used $(elapsed) s; multi rc=$RC"
  exit $RC
  ;;
*)
  sed -n '2,/^set /{/^#/p}' "$0"; exit 2  # the header comment
  ;;
esac
