#!/usr/bin/env bash
# The GPU issue's second device call: one paper-size zoo built on the device with one lever, checked (rows per split
# add up, `rnn-zoos verify` finds nothing) and summarised (wall time, rows per split, `accuracy` by snapshot step:
# mean and quartiles). The zoo stays on the device's disk (too large to bring back); $OUT gets zoo-report.md,
# figures.jsonl and zoo.log. Exits non-zero if the build, a check or the report failed, or the time ran out.
#
#   bash benchmarks/gpu_zoo.sh                                  # device: formal-lang, 1000 x 20,000, cuda-graphs
#   DEVICE=cpu QUICK=1 OUT=/tmp/zoo-out bash benchmarks/gpu_zoo.sh   # the same steps at a tiny size on a CPU
#
# Settings (environment): ZOO (formal-lang or seq-mnist), RUNS (1000; QUICK=1: 4), STEPS (20000; QUICK=1: 20),
# LEVER (the builder's levers joined by '+', as in gpu.sh: cuda-graphs on cuda, eager on cpu), LIMIT_S (540: the
# build's time limit; set it below the device time left), DEVICE, QUICK, OUT (./zoo-out), PYTHON; wheels as gpu.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-zoo-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
FIGURES=$OUT/figures.jsonl
LOG=$OUT/zoo.log
: >"$FIGURES"
: >"$LOG"
source benchmarks/gpu_env.sh
ZOO=${ZOO:-formal-lang}
if [ "$QUICK" = 1 ]; then RUNS=${RUNS:-4}; STEPS=${STEPS:-20}; else RUNS=${RUNS:-1000}; STEPS=${STEPS:-20000}; fi
if [ "$DEVICE" = cuda ]; then LEVER=${LEVER:-cuda-graphs}; else LEVER=${LEVER:-eager}; fi
LIMIT_S=${LIMIT_S:-540}
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
EXTRA=()
[ "$ZOO" = seq-mnist ] && EXTRA=(--mnist "$MNIST")
FAILED=()

log "build $ZOO, $RUNS runs x $STEPS steps, device $DEVICE, lever $LEVER, limit ${LIMIT_S} s"
timeout --kill-after=10 "$LIMIT_S" "$PYTHON" -m benchmarks.build_check build "$ZOO" --out "$SCRATCH/zoo" --runs "$RUNS" \
  --steps "$STEPS" --device "$DEVICE" $(lever_options "$LEVER") "${EXTRA[@]}" --json "$FIGURES" >>"$LOG" 2>&1
status=$?
[ $status -eq 0 ] && log "built and checked" || { log "FAILED the build or its checks (status $status$([ $status -eq 124 ] && echo ', timed out'))"; FAILED+=(build); }
if [ -f "$SCRATCH/zoo/meta/info.json" ]; then
  log "zoo size: $(du -sh "$SCRATCH/zoo" | cut -f1)"
  VERIFY_START=$(date +%s)
  if "$PYTHON" -m rnn_zoos.cli verify "$SCRATCH/zoo" >>"$LOG" 2>&1; then
    log "rnn-zoos verify: ok in $(($(date +%s) - VERIFY_START)) s"
  else
    log "FAILED rnn-zoos verify"; FAILED+=(verify)
  fi
fi
"$PYTHON" -m benchmarks.gpu_report "$FIGURES" "$OUT/zoo-report.md" --title "benchmarks/gpu_zoo.sh" --failed "${FAILED[@]}" >>"$LOG" 2>&1 || FAILED+=(report)
log "finished in $(($(date +%s) - START)) s; report in $OUT/zoo-report.md"
if [ ${#FAILED[@]} -ne 0 ]; then
  log "failed: ${FAILED[*]}"
  exit 1
fi
