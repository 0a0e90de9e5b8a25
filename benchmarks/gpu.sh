#!/usr/bin/env bash
# Every speed figure of the GPU goals in one call: builder benchmarks (ours with each lever against the one-run
# baseline, projected full-zoo times), emulation pretraining for all six encoders, a real build (wall time,
# rows, verify) and the drift between the same build on CPU and on the device. Writes $OUT/gpu-report.md
# (a Markdown table of every figure, with the GPU and torch version), $OUT/profiles.md (where the time of a few
# steps of each benchmark goes, from torch.profiler: device busy and idle, top operators), $OUT/figures.jsonl and $OUT/gpu.log;
# exits non-zero if any step failed or did not fit in the time budget.
#
#   bash benchmarks/gpu.sh                          # on the device machine: OUT is set there, DEVICE=cuda
#   DEVICE=cpu QUICK=1 OUT=/tmp/gpu-out bash benchmarks/gpu.sh   # the same steps at tiny sizes, on a CPU
#
# Settings (environment): DEVICE (cuda), QUICK (0; 1 = tiny sizes), OUT (./gpu-out), PYTHON (python3),
# BUDGET_S (450: steps not started by then are skipped and count as failed), LEVERS (the builder options timed:
# on cuda "eager cuda-graphs compile compile+cuda-graphs", on cpu "eager"; "compile" works on cpu but compiling
# takes minutes there). Missing packages (datasets and what it needs) are installed from the wheels in .whl/
# (benchmarks/fetch_gpu_wheels.sh fetches them, and exports the MNIST images to .whl/mnist/).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
BUDGET_S=${BUDGET_S:-450}

# --- the environment ------------------------------------------------------------------------------------
LOG_NAME=gpu.log
source benchmarks/gpu_env.sh
PROFILES=$OUT/profiles.md
printf '# torch.profiler: a few steps of each benchmark after its timed ones\n\n' >"$PROFILES"
if [ "$DEVICE" = cuda ]; then LEVERS=${LEVERS:-eager cuda-graphs compile compile+cuda-graphs}; else LEVERS=${LEVERS:-eager}; fi
if [ "$QUICK" = 1 ]; then
  K=4; STEPS=2; BASELINE_STEPS=3; PRETRAIN_STEPS=1; BUILD_RUNS=4; BUILD_STEPS=20; DRIFT_RUNS=3; DRIFT_STEPS=20
else
  K=1000; STEPS=30; BASELINE_STEPS=200; PRETRAIN_STEPS=10; BUILD_RUNS=1000; BUILD_STEPS=2000; DRIFT_RUNS=16; DRIFT_STEPS=200
fi

log "device $DEVICE, quick $QUICK, levers [$LEVERS], MNIST from $MNIST, budget ${BUDGET_S} s"

# --- steps, most important first ------------------------------------------------------------------------
BENCH=(--device "$DEVICE" --rnns-per-batch "$K" --steps "$STEPS" --baseline-steps "$BASELINE_STEPS" --json "$FIGURES" --profile "$PROFILES")
if [ "$DEVICE" = cuda ]; then BEST=cuda-graphs; else BEST=eager; fi  # the lever of the real build: no compilation wait
FIRST=$(for lever in eager $BEST; do [[ " $LEVERS " == *" $lever "* ]] && echo "$lever"; done | uniq | tr '\n' ' ')
for lever in $FIRST; do
  step "formal-lang builder, $lever" 120 "$PYTHON" -m benchmarks.build_formal_lang "${BENCH[@]}" $(lever_options "$lever")
done
step "real build, formal-lang $BUILD_RUNS x $BUILD_STEPS, $BEST" 180 "$PYTHON" -m benchmarks.build_check build formal-lang \
  --out "$SCRATCH/real-build" --runs "$BUILD_RUNS" --steps "$BUILD_STEPS" --device "$DEVICE" $(lever_options "$BEST") --json "$FIGURES"
rm -rf "$SCRATCH/real-build"
step "pretraining, six encoders" 150 "$PYTHON" -m benchmarks.pretrain --device "$DEVICE" --steps "$PRETRAIN_STEPS" --json "$FIGURES" --profile "$PROFILES"
for lever in $FIRST; do
  step "seq-mnist builder, $lever" 120 "$PYTHON" -m benchmarks.build_seq_mnist "${BENCH[@]}" --mnist "$MNIST" $(lever_options "$lever")
done
DRIFT=(--runs "$DRIFT_RUNS" --steps "$DRIFT_STEPS" --seed 7)
step "drift reference, cpu eager" 120 "$PYTHON" -m benchmarks.build_check build formal-lang --out "$SCRATCH/cpu" "${DRIFT[@]}" --device cpu
for lever in $FIRST; do
  step "drift build, $DEVICE $lever" 90 "$PYTHON" -m benchmarks.build_check build formal-lang --out "$SCRATCH/$DEVICE-$lever" \
    "${DRIFT[@]}" --device "$DEVICE" $(lever_options "$lever")
  step "drift, cpu vs $DEVICE $lever" 60 "$PYTHON" -m benchmarks.build_check compare "$SCRATCH/cpu" "$SCRATCH/$DEVICE-$lever" --json "$FIGURES"
done
for lever in $LEVERS; do  # the remaining levers, one by one (compilation takes a while)
  [[ " $FIRST " == *" $lever "* ]] && continue
  step "formal-lang builder, $lever" 240 "$PYTHON" -m benchmarks.build_formal_lang "${BENCH[@]}" $(lever_options "$lever")
done
if [[ " $LEVERS " == *" compile+cuda-graphs "* ]]; then
  step "seq-mnist builder, compile+cuda-graphs" 240 "$PYTHON" -m benchmarks.build_seq_mnist "${BENCH[@]}" --mnist "$MNIST" --compile --cuda-graphs
fi

# --- the report -----------------------------------------------------------------------------------------
finish gpu-report.md
