#!/bin/bash
# Judge a round's candidate decoders by decoded speech, as rounds 17-19 did by hand.
#
#   bash scripts/judge_round.sh CANDRUNS OUT STEP [ARGS...]
#
# CANDRUNS: a folder of one entry per slot, named as the shipped slots are (lpcnet-bl-s, lpcnet-bl-l,
#   plpcnet-{s,l}-gG-ft), each a symlink to the run that would fill it (e.g. plpcnet-s-g0-ft ->
#   runs/r19/plpcnet-s-g0-ft.mix0.8); slots left out keep what ships.
# OUT: where everything goes (OUT/cand: the models folder with the candidates exported; OUT/ev: reports;
#   OUT/clips: group clips; OUT/progress.txt: one line per finished job).
# STEP:
#   export            copy models/ to OUT/cand and export CANDRUNS into it (--keep-others)
#   heldout           held-out speech: decoder seeds 0-2 of the 20 utterances in one process and the
#                     55-utterance set in another, side by side (about 17 min on 2 cores)
#   clips G [G...]    each group's training- and validation-speaker clips: the shipped S and L of the slot
#                     (its size's baseline where SHIPPED has no run for the slot, as for group 3), the
#                     candidates of the slot, both candidate baselines (about 10 min a group); EXTRA_G<G>="RUN ..."
#                     adds runs to group G's clips (a second candidate for a slot, a recipe branch)
#   dropout NAME...   dropout scan of the named decoders in OUT/cand (4 seeds, 8 clips): a family, or
#                     family:group for a personalized slot (plpcnet-s:1 lpcnet-bl-s)
#   compare REF       the held-out reports against the release's per-utterance scores REF/{s0,s1,s2,55}.json
#                     (e.g. docs/figures/round19/release_scores), a row per group: OUT/heldout_seeds.md and
#                     OUT/heldout55.md
#   verdict REF       each candidate slot's verdict (ships / level / worse / trade) by the rule "better on new
#                     talkers, worse on none" from the held-out reports (against REF, as compare) and the clips:
#                     OUT/verdict.md and OUT/verdict.json (scripts/round_verdict.py); then the release check: the
#                     shipping slots composed into the release they would make; a fine-tune is "held back" when it
#                     puts its family below the baseline, or when the family loses a score against REF's and the
#                     fine-tune is not better on its own; a better baseline ships, the comparison reported
#   all               export, heldout, then clips of groups 1 0 and 2 3 in two processes
#   release REF DEST SLOT...  the new release's held-out scores, composed from REF's and the candidates' reports
#                     (SLOT as scripts/compose_release_scores.py takes them: lpcnet-bl-l, plpcnet-l:3,none,
#                     plpcnet-s:1), into DEST/release_scores/{s0,s1,s2,55}.json; then the pairings a round reports:
#                     DEST/release_vs_<REF's round>_{seeds,55}.md (e.g. round24 for docs/figures/round24/release_scores),
#                     each family against its baseline, DEST/plpcnet_{s,l}_vs_baseline_{seeds,55}.md, and PLPCNet-S
#                     against the L baseline, DEST/plpcnet_s_vs_bll_{seeds,55}.md (round 25 ran these 16 by hand)
# Then re-pair the clips against another run with scripts/compare_branches.py --from-json OUT/clips/gG.json
# --reference LABEL, and a family against its baseline with scripts/compare_reports.py --old-system.
# SHIPPED (default runs/shipped) holds the shipped runs under the slot names; DRY=1 prints the commands
# instead of running them (tests/test_judge_round.py).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
CAND=$1; OUT=$2; STEP=$3; shift 3
PY=${PY:-.venv/bin/python}; PNSC=${PNSC:-.venv/bin/pnsc}; SHIPPED=${SHIPPED:-runs/shipped}
SYSTEMS=plpcnet-s,plpcnet-l,lpcnet-bl-s,lpcnet-bl-l
[ -d "$CAND" ] || { echo "judge_round: no candidate folder $CAND"; exit 2; }

run() {  # NAME CMD...: run (or print) a job, log it to OUT/NAME.log and note it in OUT/progress.txt
  local name=$1; shift
  if [ -n "${DRY:-}" ]; then echo "$*"; return 0; fi
  mkdir -p "$OUT"; local t=$SECONDS rc=0
  nice "$@" > "$OUT/$name.log" 2>&1 || rc=$?
  echo "$name rc $rc $((SECONDS - t)) s $(date +%T)" >> "$OUT/progress.txt"
  return $rc
}

slot() {  # DIR SIZE G: the run of size SIZE's group-G slot in DIR; a slot without one falls back to the baseline
  local run=$1/plpcnet-$2-g$3-ft
  if [ -e "$run" ]; then echo "$run"; else echo "$1/lpcnet-bl-$2"; fi
}

evaluate() {  # NAME SEED [MORE pnsc eval OPTIONS]: one held-out report of the candidate set
  local name=$1 seed=$2; shift 2
  run "$name" "$PNSC" eval --models-dir "$OUT/cand" --systems "$SYSTEMS" --loss "" --no-wrong-group \
    --seed "$seed" --jobs 1 "$@" --out "$OUT/ev/$name"
}

heldout() {  # three decoder seeds of the 20 utterances beside the 55 (seed 0)
  if [ -n "${DRY:-}" ]; then
    evaluate cand-s0 0; evaluate cand-s1 1; evaluate cand-s2 2; evaluate cand-55 0 --per-speaker 10
    return
  fi
  ( evaluate cand-s0 0 || true; evaluate cand-s1 1 || true; evaluate cand-s2 2 || true ) &
  local a=$!
  evaluate cand-55 0 --per-speaker 10 || true
  wait $a
}

clips() {
  local g
  for g in "$@"; do
    [[ "$g" =~ ^[0-9]+$ ]] || { echo "judge_round: group '$g' is not a number"; exit 2; }
    local runs=() z
    for z in s l; do  # what ships in the slot (group 3's fall back to the baselines), then its candidate
      runs+=("$(slot "$SHIPPED" $z "$g")")
      if [ -e "$CAND/plpcnet-$z-g$g-ft" ]; then runs+=("$CAND/plpcnet-$z-g$g-ft"); fi
    done
    for z in s l; do if [ -e "$CAND/lpcnet-bl-$z" ]; then runs+=("$CAND/lpcnet-bl-$z"); fi; done
    local extra_var="EXTRA_G$g" x
    for x in ${!extra_var:-}; do  # more runs for this group's clips, e.g. EXTRA_G1="runs/r20/plpcnet-s-g1-ft"
      [ -e "$x" ] || { echo "judge_round: $extra_var names $x, which does not exist"; exit 2; }
      runs+=("$x")
    done
    [ -n "${DRY:-}" ] || mkdir -p "$OUT/clips"
    run "clips-g$g" "$PY" scripts/compare_branches.py "${runs[@]}" \
      --train-shard data/audio_shards/audio-train-0000{0..4}.tar --limit 12 --max-seconds 20 \
      --json "$OUT/clips/g$g.json" --markdown "$OUT/clips/g$g.md"
  done
}

case $STEP in
export)
  if [ -n "${DRY:-}" ]; then echo "cp -r models $OUT/cand"; else rm -rf "$OUT/cand"; mkdir -p "$OUT"; cp -r models "$OUT/cand"; fi
  run export "$PY" scripts/export_decoders.py "$CAND" --models-dir "$OUT/cand" --keep-others ;;
heldout) heldout ;;
clips) [ $# -gt 0 ] || { echo "judge_round: clips needs groups"; exit 2; }; clips "$@" ;;
dropout)
  [ $# -gt 0 ] || { echo "judge_round: dropout needs decoder names"; exit 2; }
  run "dropout" "$PY" scripts/dropout_scan.py --decoders "$@" --models-dir "$OUT/cand" --seeds 4 --limit 8 \
    --train-shard data/audio_shards/audio-train-00000.tar --json "$OUT/dropout.json" ;;
compare)
  [ $# -eq 1 ] || { echo "judge_round: compare needs the release's scores folder"; exit 2; }
  ref=$1; for f in s0 s1 s2 55; do
    [ -f "$ref/$f.json" ] || { echo "judge_round: no $ref/$f.json"; exit 2; }; done
  run compare-seeds "$PY" scripts/compare_reports.py "$ref/s0.json,$ref/s1.json,$ref/s2.json" \
    "$OUT/ev/cand-s0/scores.json,$OUT/ev/cand-s1/scores.json,$OUT/ev/cand-s2/scores.json" --by-group \
    --markdown "$OUT/heldout_seeds.md"
  run compare-55 "$PY" scripts/compare_reports.py "$ref/55.json" "$OUT/ev/cand-55/scores.json" --by-group \
    --markdown "$OUT/heldout55.md" ;;
verdict)
  [ $# -eq 1 ] || { echo "judge_round: verdict needs the release's scores folder"; exit 2; }
  run verdict "$PY" scripts/round_verdict.py "$CAND" "$OUT" "$1" --shipped "$SHIPPED" \
    --markdown "$OUT/verdict.md" --json "$OUT/verdict.json" ;;
release)
  [ $# -ge 3 ] || { echo "judge_round: release needs REF DEST SLOT..."; exit 2; }
  ref=$1 dest=$2; shift 2
  for f in s0 s1 s2 55; do
    [ -f "$ref/$f.json" ] || { echo "judge_round: no $ref/$f.json"; exit 2; }
    [ -n "${DRY:-}" ] || [ -f "$OUT/ev/cand-$f/scores.json" ] || { echo "judge_round: no $OUT/ev/cand-$f/scores.json (run heldout)"; exit 2; }
  done
  label=$(basename "$(dirname "$ref")")
  [ -n "${DRY:-}" ] || mkdir -p "$dest/release_scores"
  new=$dest/release_scores
  for f in s0 s1 s2 55; do
    run "release-$f" "$PY" scripts/compose_release_scores.py "$ref/$f.json" "$OUT/ev/cand-$f/scores.json" "$new/$f.json" \
      "$@" --old-label "$ref/$f.json" --candidate-label "the candidates' report ($f)"
  done
  seeds() { echo "$1/s0.json,$1/s1.json,$1/s2.json"; }
  pair() {  # NAME OLD NEW MORE...: one pairing, written to DEST/NAME.md
    local name=$1 old=$2 new_=$3; shift 3
    run "pair-$name" "$PY" scripts/compare_reports.py "$old" "$new_" "$@" --markdown "$dest/$name.md"
  }
  pair "release_vs_${label}_seeds" "$(seeds "$ref")" "$(seeds "$new")"
  pair "release_vs_${label}_55" "$ref/55.json" "$new/55.json"
  family() {  # NAME SYSTEM OLD_SYSTEM: SYSTEM against OLD_SYSTEM group by group, on the seeds and on the 55
    pair "$1_seeds" "$(seeds "$new")" "$(seeds "$new")" --old-system "$3" --systems "$2" --by-group
    pair "$1_55" "$new/55.json" "$new/55.json" --old-system "$3" --systems "$2" --by-group
  }
  family plpcnet_s_vs_baseline plpcnet-s lpcnet-bl-s
  family plpcnet_l_vs_baseline plpcnet-l lpcnet-bl-l
  family plpcnet_s_vs_bll plpcnet-s lpcnet-bl-l ;;
all)
  bash "$0" "$CAND" "$OUT" export
  bash "$0" "$CAND" "$OUT" heldout
  if [ -n "${DRY:-}" ]; then bash "$0" "$CAND" "$OUT" clips 1 0 2 3; exit 0; fi
  bash "$0" "$CAND" "$OUT" clips 1 0 & a=$!
  bash "$0" "$CAND" "$OUT" clips 2 3 || true
  wait $a ;;
*) echo "judge_round: unknown step '$STEP' (export, heldout, clips, dropout, compare, verdict, release, all)"; exit 2 ;;
esac
