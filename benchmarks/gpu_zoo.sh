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
# LEVER (the builder's levers joined by '+', as in gpu.sh: cuda-graphs on cuda, eager on cpu), LIMIT_S (540: the time
# limit of the build and its checks, from the start; set it below the device time left), DEVICE, QUICK, OUT (./zoo-out), PYTHON; wheels as gpu.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-zoo-out}
LOG_NAME=zoo.log
source benchmarks/gpu_env.sh
ZOO=${ZOO:-formal-lang}
if [ "$QUICK" = 1 ]; then RUNS=${RUNS:-4}; STEPS=${STEPS:-20}; else RUNS=${RUNS:-1000}; STEPS=${STEPS:-20000}; fi
if [ "$DEVICE" = cuda ]; then LEVER=${LEVER:-cuda-graphs}; else LEVER=${LEVER:-eager}; fi
BUDGET_S=${LIMIT_S:-540}
EXTRA=()
[ "$ZOO" = seq-mnist ] && EXTRA=(--mnist "$MNIST")

step "build $ZOO, $RUNS runs x $STEPS steps, device $DEVICE, lever $LEVER, checked" "$BUDGET_S" "$PYTHON" -m benchmarks.build_check \
  build "$ZOO" --out "$SCRATCH/zoo" --runs "$RUNS" --steps "$STEPS" --device "$DEVICE" $(lever_options "$LEVER") "${EXTRA[@]}" --json "$FIGURES"
if [ -f "$SCRATCH/zoo/meta/info.json" ]; then
  log "zoo size: $(du -sh "$SCRATCH/zoo" | cut -f1)"
  step "rnn-zoos verify" 120 "$PYTHON" -m rnn_zoos.cli verify "$SCRATCH/zoo"
fi
finish zoo-report.md
