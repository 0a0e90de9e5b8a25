"""A ``--mnist`` folder is untrusted input: an IDX file's header is checked against MNIST's shape and the file's own
size before anything is allocated."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from rnn_zoos import ZooError
from rnn_zoos.zoos.mnist_sources import load_mnist

from test_mnist_sources import write_idx
from test_untrusted_blobs import bounded


def write_zero_idx_gz(path: Path, shape: tuple[int, ...], values: int) -> None:
    """A gzip IDX file of unsigned bytes whose header gives ``shape``, followed by ``values`` zero bytes (compressed
    1 MiB at a time: about 1,000 times smaller than they are)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    header = struct.pack(">HBB", 0, 0x08, len(shape)) + struct.pack(f">{len(shape)}I", *shape)
    parts = [compressor.compress(header)]
    for start in range(0, values, 1 << 20):
        parts.append(compressor.compress(bytes(min(1 << 20, values - start))))
    path.write_bytes(b"".join(parts) + compressor.flush())


def test_a_small_gzip_file_claiming_more_images_than_mnist_is_refused_from_its_header(tmp_path: Path) -> None:
    """A 990 KB gzip file of zeros once unpacked to gigabytes and the build then failed allocating 4 GB."""
    images = tmp_path / "train-images-idx3-ubyte.gz"
    write_zero_idx_gz(images, (120_000, 28, 28), 120_000 * 28 * 28)  # 94 MB of pixels in about 90 KB
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(120_000))
    assert images.stat().st_size < 200_000
    with bounded(seconds=30, memory=40 << 20), pytest.raises(
            ZooError, match=r"train-images-idx3-ubyte.gz: its header gives the shape \(120000, 28, 28\); MNIST's training set has "
                            r"at most 60,000 images of 28x28 pixels"):
        load_mnist(str(tmp_path))


@pytest.mark.parametrize(
    ("shape", "values", "message"),
    [
        ((2**32 - 1,), 0, r"its header gives the shape \(4294967295,\); MNIST's training set has at most 60,000 labels"),
        ((10,), 11, r"it holds more values than its header's shape \(10,\)"),
        ((10,), 9, r"9 values for shape \(10,\): the file is truncated"),
    ],
    ids=["four-billion-labels", "longer-than-its-header", "shorter-than-its-header"],
)
def test_label_files_that_disagree_with_their_header(tmp_path: Path, shape: tuple[int, ...], values: int, message: str) -> None:
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((10, 28, 28)))
    write_zero_idx_gz(tmp_path / "train-labels-idx1-ubyte.gz", shape, values)
    with bounded(seconds=10, memory=40 << 20), pytest.raises(ZooError, match=f"cannot read MNIST file .*train-labels-idx1-ubyte.gz: {message}"):
        load_mnist(str(tmp_path))


def test_a_gzip_file_that_is_not_gzip_is_one_error(tmp_path: Path) -> None:
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((10, 28, 28)))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\0\0\x08\x01\0\0\0\x0a" + bytes(10))[:-12] + b"garbage!....")
    with pytest.raises(ZooError, match="cannot read MNIST file .*train-labels-idx1-ubyte.gz"):
        load_mnist(str(tmp_path))
