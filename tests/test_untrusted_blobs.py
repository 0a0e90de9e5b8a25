"""A weights blob is untrusted input: it is checked against its own tensors, within bounds, before anything is allocated."""

from __future__ import annotations

import contextlib
import json
import resource
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

import rnn_zoos
from rnn_zoos import DamagedZooError, ZooError
from rnn_zoos.zoos.formal_lang import FORMAL_LANG
from rnn_zoos.format.blob import encode_weights, weights_header
from rnn_zoos.lstm.functional import LSTMWithHead
from rnn_zoos.hub.verify import verify_zoo

from test_untrusted_zoos import copy_zoo, set_cells, shard

MEMORY_LIMIT = 300 << 20
"""The most a hostile blob or damaged zoo may make the process grow (bytes of peak resident memory)."""


def craft_blob(header: object, data: bytes = b"", size: int | None = None) -> bytes:
    """A safetensors-like blob: an 8-byte header size (the real one unless ``size``), a JSON header, then ``data``."""
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text) if size is None else size) + text + data


def lstm_metadata(hidden_size: int = 32, num_layers: int = 2, **changes: object) -> dict:
    """The ``__metadata__`` of a formal-language blob, with ``changes``."""
    return {"format": "pt", "cell": "lstm", "input_size": "6", "hidden_size": str(hidden_size), "num_layers": str(num_layers),
            "output_size": "6", **changes}


def _peak_rss() -> int:
    """Peak resident memory of this process in bytes since the last reset (Linux: VmHWM, else ru_maxrss)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@contextlib.contextmanager
def bounded(seconds: float = 10.0, memory: int = MEMORY_LIMIT) -> Iterator[None]:
    """Assert that the block grows peak resident memory by at most ``memory`` bytes and takes at most ``seconds``."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak to the current resident size
    before, start = _peak_rss(), time.monotonic()
    yield
    grown, took = _peak_rss() - before, time.monotonic() - start
    assert grown <= memory, f"peak memory grew by {grown / 2**20:.0f} MiB"
    assert took <= seconds, f"took {took:.1f} s"


def test_a_tiny_blob_claiming_a_huge_hidden_size_allocates_nothing() -> None:
    blob = craft_blob({"__metadata__": lstm_metadata(hidden_size=20000), "head.bias": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]}},
                      bytes(24))
    assert len(blob) == 216  # the LSTM it claims would take 6.4 GB
    with bounded(seconds=2), pytest.raises(DamagedZooError, match="weights blob tensors do not match its metadata .*hidden_size=20000.*missing lstm"):
        rnn_zoos.to_module(blob)


def test_a_blob_claiming_millions_of_layers_is_refused_at_once() -> None:
    blob = craft_blob({"__metadata__": lstm_metadata(num_layers=3_000_000), "head.bias": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]}},
                      bytes(24))
    with bounded(seconds=1), pytest.raises(DamagedZooError, match="num_layers='3000000' is not a whole number from 1 to 1,024"):
        rnn_zoos.decode_weights(blob)


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (craft_blob({"__metadata__": ["lstm"]}), r"weights blob metadata is \['lstm'\], not a map of names to strings"),
        (craft_blob({"__metadata__": lstm_metadata(), "head.bias": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]}}, bytes(8)),
         "weights blob tensor 'head.bias' lies at bytes 0 to 24 of the tensor data, but the blob holds only 8: it is truncated"),
        (craft_blob({"__metadata__": lstm_metadata()}, size=1 << 40), "its header size 1,099,511,627,776 exceeds"),
        (craft_blob({"__metadata__": lstm_metadata(), "head.bias": {"dtype": "F16", "shape": [6], "data_offsets": [0, 12]}}, bytes(12)),
         "tensor 'head.bias' has the dtype 'F16'; rnn_zoos format v1 stores float32"),
        (craft_blob({"__metadata__": lstm_metadata(), "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                     "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, bytes(12)), "tensors overlap or leave a gap at byte 8"),
        (craft_blob({"__metadata__": lstm_metadata(), "a": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}}), "tensor 'a' has no valid shape"),
        (b"\x08\0\0\0\0\0\0\0\xff\xfe{}    ", "its header is not UTF-8 JSON"),
        (struct.pack("<Q", 400_000) + b"{\"a\":" + b"[" * 399_995, "its header is not UTF-8 JSON"),
    ],
    ids=["metadata-list", "offsets-past-end", "header-size-past-end", "float16", "overlap", "negative-offset", "not-utf8", "deep-json"],
)
def test_crafted_blobs_raise_one_named_error(blob: bytes, message: str) -> None:
    with bounded(seconds=2), pytest.raises(DamagedZooError, match=message):
        rnn_zoos.decode_weights(blob)


def test_sound_blobs_still_decode_and_foreign_ones_are_named() -> None:
    module = LSTMWithHead(FORMAL_LANG.architecture)
    blob = encode_weights(dict(module.state_dict()), FORMAL_LANG.architecture)
    decoded = rnn_zoos.decode_weights(blob, FORMAL_LANG.architecture)
    assert all(torch.equal(decoded[name], tensor) for name, tensor in module.state_dict().items())
    with pytest.raises(ZooError, match="a weights blob is bytes .*, not NoneType"):
        rnn_zoos.decode_weights(None)
    assert sorted(weights_header(blob)) == sorted([*FORMAL_LANG.architecture.parameter_shapes(), "__metadata__"])


def test_encoding_refuses_weights_that_would_make_a_damaged_blob() -> None:
    params = dict(LSTMWithHead(FORMAL_LANG.architecture).state_dict())
    with pytest.raises(ValueError, match=r"shapes head\.bias \(5,\) \(expected \(6,\)\)"):
        encode_weights({**params, "head.bias": params["head.bias"][:5]}, FORMAL_LANG.architecture)
    with pytest.raises(ValueError, match=r"missing lstm\.bias_hh_l1"):
        encode_weights({name: tensor for name, tensor in params.items() if name != "lstm.bias_hh_l1"}, FORMAL_LANG.architecture)
    with pytest.raises(ValueError, match=r"one RNN's parameters; these have the batch shape \(2,\)"):
        encode_weights({name: torch.stack([tensor, tensor]) for name, tensor in params.items()}, FORMAL_LANG.architecture)


def test_verify_names_the_row_of_a_blob_with_offsets_past_its_end(formal_zoo: Path, tmp_path: Path) -> None:
    zoo = copy_zoo(formal_zoo, tmp_path)
    path = shard(zoo, "validation")
    blobs = pq.read_table(path, columns=["weights"]).column(0).to_pylist()
    set_cells(zoo, path, "weights", {4: blobs[4][:-100], 6: craft_blob({"__metadata__": ["lstm"]})})
    problems = verify_zoo(zoo, sample_rows=0)
    assert len(problems) == 2
    assert problems[0].startswith(f"data/{path.name} row 4 (run ") and "lies at bytes" in problems[0] and "it is truncated" in problems[0]
    assert problems[1].startswith(f"data/{path.name} row 6 (run ") and "weights blob metadata is ['lstm']" in problems[1]
    rows = rnn_zoos.load_zoo(zoo, split="validation")
    with pytest.raises(DamagedZooError, match="it is truncated"):
        rnn_zoos.collate_rows([rows[index] for index in range(5)])
